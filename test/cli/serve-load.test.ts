// `torch-resnet-tl serve` under load (autocannon): its capacity, then 3x that arrival rate — memory stays bounded, the
// excess gets 503 + Retry-After, nothing crashes — and 500 slow clients do not stop /healthz answering within 1 s.
import { readFileSync } from 'node:fs';
import { connect, Socket } from 'node:net';
import { join } from 'node:path';
import { Model } from '../../lib';
import { serveHarness, sharedPath } from '../helpers';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const autocannon = require('autocannon') as (o: object) => Promise<{ requests: { average: number; total: number }; latency: { p50: number; p99: number }; non2xx: number; errors: number; timeouts: number; '2xx': number; statusCodeStats: Record<string, { count: number }> }>;

const { tmp, start } = serveHarness('tl-load-');

const health = async (base: string) => (await (await fetch(`${base}/healthz`)).json()) as { rssBytes: number; queued: number; shed: number; expired: number; cancelled: number; served: number; connections: number };

test('serve at 3x capacity sheds with 503 + Retry-After, memory bounded; /healthz answers through 500 slow clients', async () => {
  const modelPath = join(tmp, 'squeezenet.pth');
  const m = await Model.create({ arch: 'squeezenet1_1', numClasses: 2, classes: ['ants', 'bees'], weights: sharedPath('weights', 'squeezenet1_1-imagenet.pth') });
  await m.save(modelPath);
  m.dispose();
  const base = await start(modelPath, ['--max-batch', '16', '--max-queue', '32', '--timeout-ms', '3000', '--request-timeout-ms', '20000']);
  const photo = readFileSync(join(sharedPath('data', 'hymenoptera', 'val'), 'ants', '10308379_1b6c72e180.jpg'));
  const request = { url: `${base}/predict?topk=1`, method: 'POST', body: photo, headers: { 'content-type': 'image/jpeg' } };

  // capacity: enough connections to keep full batches in flight, never more than the queue holds
  await autocannon({ ...request, connections: 16, duration: 2 }); // warm-up
  const cap = await autocannon({ ...request, connections: 24, duration: 6 });
  const capacity = cap['2xx'] / 6;
  const rssBase = (await health(base)).rssBytes;
  console.log(`serve capacity: ${capacity.toFixed(1)} req/s (${cap['2xx']} answered in 6 s, ${cap.non2xx} non-2xx), latency p50 ${cap.latency.p50} ms, p99 ${cap.latency.p99} ms, RSS ${(rssBase / 2 ** 20).toFixed(0)} MiB`);
  expect(cap.errors).toBe(0);
  expect(capacity).toBeGreaterThan(5);

  // 3x capacity for 8 s, RSS sampled meanwhile
  let rssMax = 0;
  const sampler = setInterval(() => health(base).then((h) => (rssMax = Math.max(rssMax, h.rssBytes)), () => undefined), 250);
  const over = await autocannon({ ...request, connections: 200, overallRate: Math.ceil(3 * capacity), duration: 8 });
  clearInterval(sampler);
  const h = await health(base);
  const codes = Object.fromEntries(Object.entries(over.statusCodeStats).map(([k, v]) => [k, v.count]));
  console.log(`serve at 3x capacity (${Math.ceil(3 * capacity)} req/s offered): status codes ${JSON.stringify(codes)}, errors ${over.errors}, ` +
    `latency p50 ${over.latency.p50} ms, p99 ${over.latency.p99} ms; RSS max ${(rssMax / 2 ** 20).toFixed(0)} MiB (at capacity ${(rssBase / 2 ** 20).toFixed(0)} MiB); ` +
    `shed ${h.shed}, expired ${h.expired}, cancelled ${h.cancelled}`);
  expect(over.errors).toBe(0); // every request got an HTTP answer: none was reset or timed out
  expect(h.shed).toBeGreaterThan(0);
  expect(codes['503'] ?? 0).toBeGreaterThan(0);
  expect(Object.keys(codes).sort()).toEqual(['200', '503']);
  expect(codes['200']).toBeGreaterThan(capacity * 8 * 0.5);
  expect(rssMax - rssBase).toBeLessThan(300 * 2 ** 20);
  expect(h.queued).toBeLessThanOrEqual(32);

  // a burst over the queue: the excess is told when to come back
  const burst = await Promise.all(Array.from({ length: 100 }, () => fetch(request.url, { method: 'POST', body: photo })));
  const refused = burst.filter((r) => r.status === 503);
  expect(refused.length).toBeGreaterThan(0);
  for (const r of refused) expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  await Promise.all(burst.map((r) => r.arrayBuffer()));

  // 500 slow clients: headers sent, the body trickles; /healthz still answers quickly. They arrive once the burst's
  // work is done (over the queue bound they would get their 503 at once and be gone).
  for (const t0 = performance.now(); (await health(base)).queued > 0 && performance.now() - t0 < 5000; ) await new Promise((r) => setTimeout(r, 50));
  const slow: Socket[] = [];
  const url = new URL(base);
  await Promise.all(Array.from({ length: 500 }, () => new Promise<void>((resolve, reject) => {
    const s = connect(Number(url.port), url.hostname, () => {
      s.write(`POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n\xff\xd8\xff`);
      resolve();
    });
    s.on('error', reject);
    slow.push(s);
  })));
  const trickle = setInterval(() => slow.forEach((s) => s.writable && s.write('\x00')), 200);
  const times: number[] = [];
  try {
    // until the server has accepted all 500 (they are parked in readBody), then time /health
    const t0 = performance.now();
    while ((await health(base)).connections < 500 && performance.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 50));
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      const r = await fetch(`${base}/healthz`);
      expect(r.status).toBe(200);
      const j = (await r.json()) as { connections: number };
      times.push(performance.now() - t);
      expect(j.connections).toBeGreaterThanOrEqual(500);
      await new Promise((r2) => setTimeout(r2, 100));
    }
  } finally {
    clearInterval(trickle);
    slow.forEach((s) => s.destroy());
  }
  console.log(`serve: /healthz with 500 slow clients connected: ${times.map((t) => t.toFixed(0)).join(', ')} ms`);
  expect(Math.max(...times)).toBeLessThan(1000);
  // and it still predicts
  const ok = await fetch(request.url, { method: 'POST', body: photo });
  expect(ok.status).toBe(200);
});
