// bench:compute — ResNet-18/50, 224², batch 32: inference and one SGD training step, ours vs Python torchvision
// in the same run on the same machine. Prints img/s and ratios.
// usage: node scripts/bench/compute.mjs [--archs resnet18,resnet50] [--batch 32] [--iters 3]
import { lib, runPython, throughput } from './common.mjs';
import { parseArgs } from 'node:util';
import { cpus } from 'node:os';

const { ResNet, getNumThreads, version } = lib;
// forward FLOPs per 224² image (2 × multiply-adds), for the share of the bf16 convolution peak
const GFLOP = { resnet18: 3.64, resnet34: 7.34, resnet50: 8.18, resnet101: 15.6, resnet152: 23.1 };
const { values } = parseArgs({
  options: { archs: { type: 'string', default: 'resnet18,resnet50' }, batch: { type: 'string', default: '32' }, iters: { type: 'string', default: '3' } },
});
const batch = Number(values.batch);
const iters = Number(values.iters);
const threads = getNumThreads();

const timeit = (fn) => throughput(batch, iters, fn);

const rows = [];
const bestRows = [];
let peak = 0;
for (const arch of values.archs.split(',')) {
  const args = ['scripts/bench/compute_py.py', arch, String(batch), String(iters), String(threads)];
  const py = runPython('default', args);
  const best = runPython('best', args);
  const pyBest = best.find((r) => r.layout === 'best');
  peak = Math.max(peak, best.find((r) => r.peak).peak);
  const pyN = py.find((r) => r.layout === 'nchw');
  const pyCL = py.find((r) => r.layout === 'channels_last');
  const x = new Float32Array(batch * 3 * 224 * 224).map(() => Math.random() * 2 - 1);
  const labels = Array.from({ length: batch }, (_, i) => i % 1000);
  const ours = {};
  for (let [name, opts, precision] of [['fp32 NCHW', { channelsLast: false }, 'fp32'], ['channels_last fp32', {}, 'fp32'], ['default (channels_last, precision auto)', {}, undefined]]) {
    const m = await ResNet.create({ arch, ...opts });
    const infer = await timeit(() => m.forward(x, [batch, 3, 224, 224], { precision }));
    const train = precision === 'fp32' ? await timeit(() => m.sgdStep(x, [batch, 3, 224, 224], labels, 0.01)) : NaN;
    if (precision === undefined) name += ` = ${m.precision('auto')}`;
    ours[name] = { infer, train };
    m.dispose();
  }
  const f = (v) => (Number.isFinite(v) ? v.toFixed(1) : '—');
  rows.push([arch, 'Python fp32 NCHW (default)', f(pyN.infer), f(pyN.train), '1.00', '1.00']);
  rows.push([arch, 'Python channels_last', f(pyCL.infer), f(pyCL.train), (pyCL.infer / pyN.infer).toFixed(2), (pyCL.train / pyN.train).toFixed(2)]);
  for (const [name, r] of Object.entries(ours))
    rows.push([arch, `ours ${name}`, f(r.infer), f(r.train), (r.infer / pyN.infer).toFixed(2), Number.isFinite(r.train) ? (r.train / pyN.train).toFixed(2) : '—']);
  const def = Object.entries(ours).find(([n]) => n.startsWith('default'))[1];
  bestRows.push({ arch, ours: def.infer, python: pyBest.infer, torch: pyBest.torch });
}
console.log(`\nbench:compute — batch ${batch}, 224², ${iters} timed iterations, ${threads} threads (${cpus()[0].model})`);
console.log('| arch | setting | inference img/s | train-step img/s | infer ×Python default | train ×Python default |');
console.log('|---|---|---|---|---|---|');
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
const share = (arch, ips) => (GFLOP[arch] ? `${((100 * ips * GFLOP[arch]) / peak).toFixed(1)} %` : '—');
console.log(`\ninference against PyPI's torch ${bestRows[0]?.torch} in its best CPU configuration (channels_last + bf16 autocast + inference_mode, jemalloc decay off);`);
console.log(`ours: libtorch ${version().libtorch} (${version().variant}), default settings; measured bf16 convolution peak ${peak.toFixed(0)} GFLOP/s`);
console.log('| arch | ours img/s | Python best img/s | ours × Python best | ours % of bf16 conv peak | Python % of peak |');
console.log('|---|---|---|---|---|---|');
for (const r of bestRows) console.log(`| ${r.arch} | ${r.ours.toFixed(1)} | ${r.python.toFixed(1)} | ${(r.ours / r.python).toFixed(2)} | ${share(r.arch, r.ours)} | ${share(r.arch, r.python)} |`);
