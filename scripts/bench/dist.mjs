// bench:dist — data-parallel training on this machine: 1 process x all threads vs N ranks x (threads / N) on the
// same data (ResNet-18, 112 px, SGD; the ranks with the all-reduce overlapped with backward and after it), and the time of one gradient all-reduce (Gloo, 25 MiB buckets) for ResNet-18
// and ResNet-50 between two ranks over loopback and over a veth pair between two network namespaces (root).
// Then what ring all-reduce would cost at 8 nodes on 10 and 25 Gbit/s against the measured compute per step.
// usage: node scripts/bench/dist.mjs [--ranks 2] [--epochs 2] [--iterations 5]
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { lib } from './common.mjs';

const { makeSyntheticDataset, launch } = lib;
const { values } = parseArgs({ options: { ranks: { type: 'string', default: '2' }, epochs: { type: 'string', default: '2' }, iterations: { type: 'string', default: '5' } } });
const ranks = Number(values.ranks);
const WORKER = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, 'dist-worker.mjs');
const PARAMS = { resnet18: 11_689_512, resnet50: 25_557_032 };
const port = () => 31000 + Math.floor(Math.random() * 900);

function run(cmd, args, env = {}) {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}`))));
  });
}
const lastJson = (s) => JSON.parse(s.trim().split('\n').filter((l) => l.startsWith('{')).pop());

async function ranked(args) {
  let out = '';
  const r = await launch({ nprocPerNode: ranks, masterPort: port(), script: WORKER, args, stdio: 'pipe', onOutput: (rank, s, t) => (s === 'stdout' ? (out += t) : process.stderr.write(t)) });
  if (!r.ok) throw new Error(`ranks failed: ${JSON.stringify(r.failed)}`);
  return lastJson(out);
}

const data = join(mkdtempSync(join(tmpdir(), 'tl-bench-dist-')), 'data');
await makeSyntheticDataset(data, { classes: 4, trainPerClass: 64, valPerClass: 4, size: 112 });
const cores = cpus().length;
console.log(`bench:dist on ${cores} cores; ResNet-18 full training at 112 px, 256 images, epoch ${values.epochs} timed`);
const single = lastJson(await run(process.execPath, [WORKER, 'train', data, '32', values.epochs]));
const multi = await ranked(['train', data, String(32 / ranks), values.epochs, 'overlap']);
const after = await ranked(['train', data, String(32 / ranks), values.epochs, 'after']);
const perRank = `${Math.max(1, Math.floor(cores / ranks))} thread(s) each`;
const rows = [
  ['1 process', `${single.threads} threads`, 32, single.imgPerSec.toFixed(1), '1.00'],
  [`${ranks} ranks, all-reduce during backward`, perRank, `${32 / ranks} per rank`, multi.imgPerSec.toFixed(1), (multi.imgPerSec / single.imgPerSec).toFixed(2)],
  [`${ranks} ranks, all-reduce after backward`, perRank, `${32 / ranks} per rank`, after.imgPerSec.toFixed(1), (after.imgPerSec / single.imgPerSec).toFixed(2)],
];
console.table(rows.map(([how, threads, batch, ips, ratio], i) => {
  const r = [single, multi, after][i];
  return { how, threads, 'global batch 32': batch, 'img/s': ips, 'vs 1 process': ratio, 'all-reduce wait ms/step': i ? r.waitMsPerStep.toFixed(1) : '-', 'buckets started in backward': i ? `${(100 * r.duringBackward).toFixed(0)} % of ${r.bucketsPerStep.toFixed(0)}` : '-' };
}));

// all-reduce over loopback
const allreduce = {};
for (const [arch, numel] of Object.entries(PARAMS)) {
  const r = await ranked(['allreduce', String(numel), values.iterations]);
  allreduce[`${arch} loopback`] = r.median;
}
// and over a veth pair between two namespaces (two hosts)
if (process.getuid?.() === 0) {
  const ns = ['tl-bench-a', 'tl-bench-b'];
  const ip = (...a) => execFileSync('ip', a, { stdio: 'pipe' });
  const clean = () => ns.forEach((n) => { try { ip('netns', 'del', n); } catch { /* absent */ } });
  clean();
  try {
    ns.forEach((n) => ip('netns', 'add', n));
    ip('link', 'add', 'tl-bveth-a', 'type', 'veth', 'peer', 'name', 'tl-bveth-b');
    ns.forEach((n, i) => {
      const dev = i ? 'tl-bveth-b' : 'tl-bveth-a';
      ip('link', 'set', dev, 'netns', n);
      ip('-n', n, 'addr', 'add', `10.231.9.${i + 1}/24`, 'dev', dev);
      ip('-n', n, 'link', 'set', dev, 'up');
      ip('-n', n, 'link', 'set', 'lo', 'up');
    });
    for (const [arch, numel] of Object.entries(PARAMS)) {
      const p = String(port());
      const outs = await Promise.all([0, 1].map((r) => run('ip', ['netns', 'exec', ns[r], process.execPath, WORKER, 'allreduce', String(numel), values.iterations], { RANK: String(r), WORLD_SIZE: '2', MASTER_ADDR: '10.231.9.1', MASTER_PORT: p, OMP_NUM_THREADS: '1' })));
      allreduce[`${arch} veth`] = lastJson(outs[0]).median;
    }
  } finally {
    clean();
  }
} else console.log('(not root: no veth measurement)');
console.table(Object.entries(allreduce).map(([what, s]) => {
  const bytes = PARAMS[what.split(' ')[0]] * 4;
  return { 'all-reduce of gradients': what, MB: (bytes / 1e6).toFixed(1), 'ms (median)': (s * 1000).toFixed(1), 'bus GB/s': ((2 * (2 - 1) / 2) * bytes / s / 1e9).toFixed(2) };
}));

// 8 nodes, ring all-reduce: 2 (N-1)/N x bytes / bandwidth, against this machine's compute per step (ResNet-18
// measured; ResNet-50 scaled by the FLOP ratio 4.1 / 1.8 GFLOPs per 224 px image)
const stepCompute = (32 / ranks) / (multi.imgPerSec / ranks); // seconds per step of one rank at its batch
const flops = { resnet18: 1, resnet50: 4.1 / 1.82 };
console.log(`\n8 nodes, ring all-reduce (2 (N-1)/N x gradient bytes / link), not overlapped, vs one rank's step of compute here (ResNet-18 measured, batch ${32 / ranks}: ${(stepCompute * 1000).toFixed(0)} ms; ResNet-50 scaled by FLOPs):`);
console.table(Object.entries(PARAMS).flatMap(([arch, numel]) =>
  [10, 25].map((gbit) => {
    const comm = ((2 * 7) / 8) * numel * 4 / (gbit * 1e9 / 8);
    const compute = stepCompute * flops[arch];
    return { arch, link: `${gbit} Gbit/s`, 'all-reduce ms': (comm * 1000).toFixed(0), 'compute ms': (compute * 1000).toFixed(0), 'communication share': `${((100 * comm) / (comm + compute)).toFixed(0)} %` };
  }),
));
