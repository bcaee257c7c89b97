// bench:serve — squeezenet1_1 (ImageNet weights, re-headed for ants/bees; --arch another model) behind HTTP, the hymenoptera val photos
// as request bodies, closed-loop clients at concurrency 1, 16, 64, 256, all in this run on this machine:
//   (a) `torch-resnet-tl serve --max-batch 1` (batching off)
//   (b) `torch-resnet-tl serve` (dynamic batching, defaults: --max-batch 32 --max-delay-ms 5; the model's precision)
//   (b32) the same in fp32 (`--precision fp32`, the precision onnxruntime runs)
//   (c) onnxruntime-node on the model's exported ONNX file, one session.run per request (scripts/bench/serve-ort.mjs)
// Prints req/s and p50/p99 latency of the 200 answers per row, the targets at 64 clients, and writes bench-serve.json.
// The queue bound is raised (--max-queue 4096) so that no row sheds: every row answers every request it is sent.
// usage: node scripts/bench/serve.mjs [--arch squeezenet1_1] [--seconds 6] [--warmup 2] [--concurrency 1,16,64,256] [--rows a,b,b32,c]
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { lib, sharedPath } from './common.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const CLI = join(HERE, '..', '..', 'dist', 'cjs', 'cli', 'index.js');
const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '6' },
    warmup: { type: 'string', default: '2' },
    concurrency: { type: 'string', default: '1,16,64,256' },
    rows: { type: 'string', default: 'a,b,b32,c' },
    out: { type: 'string', default: 'bench-serve.json' },
    arch: { type: 'string', default: 'squeezenet1_1' },
  },
});
const seconds = Number(values.seconds);
const levels = values.concurrency.split(',').map(Number);

const tmp = mkdtempSync(join(tmpdir(), 'tl-bench-serve-'));
const arch = values.arch;
const modelPath = join(tmp, `${arch}-ants-bees.pth`);
const onnxPath = join(tmp, `${arch}-ants-bees.onnx`);
{
  // squeezenet1_1: its real ImageNet weights; other archs (no ResNet weights can be had offline here): random
  // weights, which cost the same arithmetic
  const weights = arch === 'squeezenet1_1' ? sharedPath('weights', 'squeezenet1_1-imagenet.pth') : null;
  const m = await lib.Model.create({ arch, numClasses: 2, classes: ['ants', 'bees'], weights });
  await m.save(modelPath);
  await m.exportOnnx(onnxPath);
  m.dispose();
}
const val = sharedPath('data', 'hymenoptera', 'val');
const photos = ['ants', 'bees'].flatMap((c) => readdirSync(join(val, c)).map((f) => readFileSync(join(val, c, f))));

const serveArgs = ['--max-queue', '4096', '--timeout-ms', '120000'];
const ROWS = {
  a: { name: '(a) serve --max-batch 1', cmd: [CLI, 'serve', '--model', modelPath, '--port', '0', '--max-batch', '1', ...serveArgs] },
  b: { name: '(b) serve (dynamic batching)', cmd: [CLI, 'serve', '--model', modelPath, '--port', '0', ...serveArgs] },
  b32: { name: '(b) serve, fp32', cmd: [CLI, 'serve', '--model', modelPath, '--port', '0', '--precision', 'fp32', ...serveArgs] },
  c: { name: '(c) onnxruntime-node, run per request', cmd: [join(HERE, 'serve-ort.mjs'), onnxPath] },
};

/** Starts a server process; resolves with its port once it prints it. */
function startServer(cmd) {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, cmd, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /(?:listening |127\.0\.0\.1:)(\d+)/.exec(out);
      if (m) resolve({ proc, port: Number(m[1]) });
    });
    proc.on('exit', (code) => reject(new Error(`${cmd.join(' ')} exited ${code}: ${out}`)));
  });
}

/** `clients` closed loops (send, await the answer, send again) for `ms`; latencies of 200s, counts by status. */
async function load(port, clients, ms) {
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const lat = [];
  const codes = {};
  let next = 0;
  const end = performance.now() + ms;
  const one = () =>
    new Promise((resolve) => {
      const body = photos[next++ % photos.length];
      const t0 = performance.now();
      const req = request({ host: '127.0.0.1', port, path: '/predict?topk=1', method: 'POST', agent, headers: { 'content-type': 'image/jpeg', 'content-length': body.length } }, (res) => {
        res.resume();
        res.on('end', () => {
          codes[res.statusCode] = (codes[res.statusCode] ?? 0) + 1;
          if (res.statusCode === 200 && performance.now() <= end) lat.push(performance.now() - t0);
          resolve();
        });
      });
      req.on('error', (e) => {
        codes[e.code ?? 'error'] = (codes[e.code ?? 'error'] ?? 0) + 1;
        resolve();
      });
      req.end(body);
    });
  const t0 = performance.now();
  await Promise.all(Array.from({ length: clients }, async () => {
    while (performance.now() < end) await one();
  }));
  const wall = (Math.min(performance.now(), end) - t0) / 1000;
  agent.destroy();
  lat.sort((x, y) => x - y);
  const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : NaN);
  return { reqPerSecond: lat.length / wall, p50: q(0.5), p99: q(0.99), codes };
}

const results = [];
try {
  for (const key of values.rows.split(',')) {
    const row = ROWS[key];
    const { proc, port } = await startServer(row.cmd);
    try {
      for (const c of levels) {
        await load(port, Math.min(c, 16), Number(values.warmup) * 1000);
        const r = await load(port, c, seconds * 1000);
        results.push({ row: key, name: row.name, concurrency: c, ...r });
        console.log(JSON.stringify(results.at(-1)));
      }
    } finally {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
    }
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '–');
console.log(`\nbench:serve — ${arch}, hymenoptera val photos, ${seconds} s per point, ${lib.getNumThreads()} threads (${lib.version().libtorch} libtorch)\n`);
console.log('| server | clients | req/s | p50 ms | p99 ms |');
console.log('|---|---|---|---|---|');
for (const r of results) console.log(`| ${r.name} | ${r.concurrency} | ${f(r.reqPerSecond)} | ${f(r.p50, 0)} | ${f(r.p99, 0)} |`);
const at = (key, c) => results.find((r) => r.row === key && r.concurrency === c);
const [a, b, c] = [at('a', 64), at('b', 64), at('c', 64)];
if (a && b) console.log(`\nat 64 clients: (b)/(a) req/s ${f(b.reqPerSecond / a.reqPerSecond, 2)}× (target ≥ 3), p99 (b) ${f(b.p99, 0)} ms vs (a) ${f(a.p99, 0)} ms (target: below)`);
if (b && c) console.log(`at 64 clients: (b)/(c) req/s ${f(b.reqPerSecond / c.reqPerSecond, 2)}× (target ≥ 1.5)`);
const b32 = at('b32', 64);
if (b32 && c) console.log(`at 64 clients: (b, fp32)/(c) req/s ${f(b32.reqPerSecond / c.reqPerSecond, 2)}×`);
writeFileSync(values.out, JSON.stringify(results, null, 2));
