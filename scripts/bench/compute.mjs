// bench:compute — ResNet-18/50, 224², batch 32: inference and one SGD training step, ours vs Python torchvision
// in the same run on the same machine. Prints img/s and ratios.
// usage: node scripts/bench/compute.mjs [--archs resnet18,resnet50] [--batch 32] [--iters 3]
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { cpus } from 'node:os';

const require = createRequire(import.meta.url);
const { ResNet, getNumThreads } = require('../../dist/cjs/index.js');
const { values } = parseArgs({
  options: { archs: { type: 'string', default: 'resnet18,resnet50' }, batch: { type: 'string', default: '32' }, iters: { type: 'string', default: '3' } },
});
const batch = Number(values.batch);
const iters = Number(values.iters);
const threads = getNumThreads();

async function timeit(fn) {
  await fn();
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) await fn();
  return (batch * iters) / ((performance.now() - t0) / 1000);
}

const rows = [];
for (const arch of values.archs.split(',')) {
  const py = execFileSync('/usr/bin/python3', ['scripts/bench/compute_py.py', arch, String(batch), String(iters), String(threads)], { encoding: 'utf8' })
    .trim().split('\n').map((l) => JSON.parse(l));
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
}
console.log(`\nbench:compute — batch ${batch}, 224², ${iters} timed iterations, ${threads} threads (${cpus()[0].model})`);
console.log('| arch | setting | inference img/s | train-step img/s | infer ×Python default | train ×Python default |');
console.log('|---|---|---|---|---|---|');
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
