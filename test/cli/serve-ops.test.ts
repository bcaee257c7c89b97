// `torch-resnet-tl serve` operations: 2000 concurrent connections all get an HTTP answer (200, or 503 with
// Retry-After); /metrics is Prometheus text; SIGHUP and POST /admin/reload reload the model during a 200-request stream
// with no failure;
// SIGTERM drains (accepted requests complete, new ones get 503) and exits 0.
import { request } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Model } from '../../lib';
import { serveHarness, sharedPath } from '../helpers';

const { tmp, start, proc } = serveHarness('tl-serve-ops-');
let base: string;
let photo: Buffer;

/** One POST on its own connection (no agent): its status and Retry-After, or the socket error. */
function post(path: string, body: Buffer): Promise<{ status?: number; retryAfter?: string; error?: string; body?: string }> {
  const url = new URL(base);
  return new Promise((resolve) => {
    const req = request({ host: url.hostname, port: url.port, path, method: 'POST', agent: false, headers: { 'content-type': 'image/jpeg', 'content-length': body.length } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode, retryAfter: res.headers['retry-after'] as string | undefined, body: text }));
    });
    req.on('error', (e: Error & { code?: string }) => resolve({ error: e.code ?? e.message }));
    req.end(body);
  });
}

const tally = (rs: { status?: number; retryAfter?: string; error?: string }[]) => {
  const c: Record<string, number> = {};
  for (const r of rs) {
    const k = r.error ? `error ${r.error}` : r.status === 503 ? (Number(r.retryAfter) >= 1 ? '503 retry-after' : '503 without retry-after') : String(r.status);
    c[k] = (c[k] ?? 0) + 1;
  }
  return c;
};

beforeAll(async () => {
  const modelPath = join(tmp, 'squeezenet.pth');
  const m = await Model.create({ arch: 'squeezenet1_1', numClasses: 2, classes: ['ants', 'bees'], weights: sharedPath('weights', 'squeezenet1_1-imagenet.pth') });
  await m.save(modelPath);
  m.dispose();
  photo = readFileSync(join(sharedPath('data', 'hymenoptera', 'val'), 'ants', '10308379_1b6c72e180.jpg'));
  base = await start(modelPath, ['--max-queue', '128', '--max-batch', '32']);
});

test('2000 concurrent connections: every one gets 200 or 503 with Retry-After, none is reset', async () => {
  const t0 = performance.now();
  const rs = await Promise.all(Array.from({ length: 2000 }, () => post('/predict?topk=1', photo)));
  const c = tally(rs);
  console.log(`serve: 2000 concurrent connections answered in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${JSON.stringify(c)}`);
  expect(Object.keys(c).filter((k) => k !== '200' && k !== '503 retry-after')).toEqual([]);
  expect(c['200']).toBeGreaterThan(0);
  expect(c['200'] + c['503 retry-after']).toBe(2000);
});

test('/metrics is Prometheus text with requests by status, queue depth and batch sizes', async () => {
  const r = await fetch(`${base}/metrics`);
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toMatch(/^text\/plain/);
  const text = await r.text();
  const sample = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? -?(\d+(\.\d+)?([eE][-+]?\d+)?|\+Inf|NaN)$/;
  const bad = text.split('\n').filter((l) => l && !l.startsWith('# HELP ') && !l.startsWith('# TYPE ') && !sample.test(l));
  expect(bad).toEqual([]);
  expect(text).toMatch(/^tl_requests_total\{status="200"\} [1-9]\d*$/m);
  expect(text).toMatch(/^tl_requests_total\{status="503"\} [1-9]\d*$/m);
  expect(text).toMatch(/^tl_queue_depth \d+$/m);
  expect(text).toMatch(/^# TYPE tl_batch_size histogram$/m);
  expect(text).toMatch(/^tl_batch_size_count [1-9]\d*$/m);
  expect(text).toMatch(/^# TYPE tl_request_duration_seconds histogram$/m);
  expect((await fetch(`${base}/readyz`)).status).toBe(200);
});

test('SIGHUP reloads the model during a 200-request stream: no request fails', async () => {
  const stream = (async () => {
    const out = [];
    for (let i = 0; i < 20; i++) out.push(...(await Promise.all(Array.from({ length: 10 }, () => post('/predict?topk=1', photo)))));
    return out;
  })();
  let log = '';
  proc().stdout!.on('data', (d) => (log += d));
  await new Promise((r) => setTimeout(r, 300));
  proc().kill('SIGHUP');
  const rs = await stream;
  const c = tally(rs);
  console.log(`serve: reload during 200 requests: ${JSON.stringify(c)}`);
  expect(c).toEqual({ 200: 200 });
  expect(log).toMatch(/reloaded .*squeezenet\.pth/);
});

test('POST /admin/reload during a 200-request stream: 200, no request fails; a failed reload is 500 ERR_RELOAD and the old model serves on', async () => {
  const modelPath = join(tmp, 'squeezenet.pth');
  const stream = (async () => {
    const out = [];
    for (let i = 0; i < 20; i++) out.push(...(await Promise.all(Array.from({ length: 10 }, () => post('/predict?topk=1', photo)))));
    return out;
  })();
  await new Promise((r) => setTimeout(r, 300));
  const reload = await post('/admin/reload', Buffer.alloc(0));
  const rs = await stream;
  expect(tally(rs)).toEqual({ 200: 200 });
  expect(reload.status).toBe(200);
  expect(JSON.parse(reload.body!)).toEqual({ reloaded: modelPath, arch: 'squeezenet1_1', numClasses: 2 });
  expect((await fetch(`${base}/admin/reload`)).status).toBe(405);
  // the file replaced by garbage: the reload fails, the model loaded before keeps answering
  const good = readFileSync(modelPath);
  writeFileSync(modelPath, Buffer.from('not a checkpoint'));
  try {
    const failed = await post('/admin/reload', Buffer.alloc(0));
    expect(failed.status).toBe(500);
    expect(JSON.parse(failed.body!).error.code).toBe('ERR_RELOAD');
    expect((await post('/predict?topk=1', photo)).status).toBe(200);
  } finally {
    writeFileSync(modelPath, good);
  }
});

test('SIGTERM drains: accepted requests complete, new ones get 503, /readyz 503, exit 0', async () => {
  const server = proc();
  const exited = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)));
  let log = '';
  server.stdout!.on('data', (d) => (log += d));
  const accepted = Array.from({ length: 40 }, () => post('/predict?topk=1', photo));
  await new Promise((r) => setTimeout(r, 100));
  server.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 50));
  const [late, ready] = await Promise.all([post('/predict?topk=1', photo), fetch(`${base}/readyz`).then((r) => r.status, (e: Error) => e.message)]);
  const c = tally(await Promise.all(accepted));
  console.log(`serve: drain: accepted ${JSON.stringify(c)}, a request after SIGTERM ${late.status ?? late.error}, /readyz ${ready}`);
  expect(c).toEqual({ 200: 40 });
  // while draining the server still answers (503); once drained it has closed and a new connection is refused
  if (late.status !== undefined) expect([late.status, Number(late.retryAfter) >= 1]).toEqual([503, true]);
  else expect(late.error).toBe('ECONNREFUSED');
  expect(await exited).toBe(0);
  expect(log).toMatch(/SIGTERM: draining[^]*drained: every accepted request was answered/);
});
