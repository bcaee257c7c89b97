// bench:compute — ResNet-18/50, 224², batch 32: inference and one SGD training step, ours vs Python torchvision
// in the same run on the same machine; inference also against PyTorch's best CPU configuration (eager and
// torch.compile) and onnxruntime-node on our own exported ONNX file. Prints img/s and ratios.
// usage: node scripts/bench/compute.mjs [--archs resnet18,resnet50] [--batch 32] [--iters 3] [--no-compile]
import { lib, runPython, throughput } from './common.mjs';
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import { cpus, tmpdir } from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const ort = createRequire(import.meta.url)('onnxruntime-node');

const { ResNet, getNumThreads, version } = lib;
// forward FLOPs per 224² image (2 × multiply-adds), for the share of the bf16 convolution peak
const GFLOP = { resnet18: 3.64, resnet34: 7.34, resnet50: 8.18, resnet101: 15.6, resnet152: 23.1 };
const { values } = parseArgs({
  options: { archs: { type: 'string', default: 'resnet18,resnet50' }, batch: { type: 'string', default: '32' }, iters: { type: 'string', default: '3' }, 'no-compile': { type: 'boolean', default: false } },
});
const batch = Number(values.batch);
const iters = Number(values.iters);
const threads = getNumThreads();

const timeit = (fn) => throughput(batch, iters, fn);

const rows = [];
const bestRows = [];
let peak = 0;
let peakDtype = '';
const tmp = mkdtempSync(join(tmpdir(), 'bench-compute-'));
for (const arch of values.archs.split(',')) {
  const args = ['scripts/bench/compute_py.py', arch, String(batch), String(iters), String(threads)];
  const py = runPython('default', args);
  const best = runPython('best', values['no-compile'] ? [...args, '--no-compile'] : args);
  const pyBest = best.find((r) => r.layout === 'best');
  const pyCompile = best.find((r) => r.layout === 'compile');
  const peakRow = best.find((r) => r.peak);
  peak = Math.max(peak, peakRow.peak);
  peakDtype = peakRow.dtype;
  const pyN = py.find((r) => r.layout === 'nchw');
  const pyCL = py.find((r) => r.layout === 'channels_last');
  const x = new Float32Array(batch * 3 * 224 * 224).map(() => Math.random() * 2 - 1);
  const labels = Array.from({ length: batch }, (_, i) => i % 1000);
  const ours = {};
  const shape = [batch, 3, 224, 224];
  const onnx = join(tmp, `${arch}.onnx`);
  for (let [name, opts, precision] of [['fp32 NCHW', { channelsLast: false }, 'fp32'], ['channels_last fp32 unfused', { fuse: false }, 'fp32'], ['channels_last fp32', {}, 'fp32'], ['default (channels_last, fused, precision auto)', {}, undefined]]) {
    const m = await ResNet.create({ arch, ...opts });
    if (name === 'channels_last fp32') await m.exportOnnx(onnx);
    const infer = await timeit(() => m.forward(x, [batch, 3, 224, 224], { precision }));
    const train = precision === 'fp32' ? await timeit(() => m.sgdStep(x, [batch, 3, 224, 224], labels, 0.01)) : NaN;
    if (precision === undefined) name += ` = ${m.precision('auto')}`;
    ours[name] = { infer, train };
    m.dispose();
  }
  // onnxruntime-node on the same model's ONNX file (fp32; it folds BatchNorm and fuses ReLU itself), batch `batch`
  const session = await ort.InferenceSession.create(onnx, { intraOpNumThreads: threads, interOpNumThreads: 1 });
  const feed = { [session.inputNames[0]]: new ort.Tensor('float32', x, shape) };
  const ortInfer = await timeit(() => session.run(feed));
  await session.release();
  const f = (v) => (Number.isFinite(v) ? v.toFixed(1) : '—');
  rows.push([arch, 'Python fp32 NCHW (default)', f(pyN.infer), f(pyN.train), '1.00', '1.00']);
  rows.push([arch, 'Python channels_last', f(pyCL.infer), f(pyCL.train), (pyCL.infer / pyN.infer).toFixed(2), (pyCL.train / pyN.train).toFixed(2)]);
  for (const [name, r] of Object.entries(ours))
    rows.push([arch, `ours ${name}`, f(r.infer), f(r.train), (r.infer / pyN.infer).toFixed(2), Number.isFinite(r.train) ? (r.train / pyN.train).toFixed(2) : '—']);
  const def = Object.entries(ours).find(([n]) => n.startsWith('default'))[1];
  bestRows.push({ arch, ours: def.infer, ours32: ours['channels_last fp32'].infer, unfused32: ours['channels_last fp32 unfused'].infer, python: pyBest.infer, compile: pyCompile?.infer, dtype: pyBest.dtype, ort: ortInfer, torch: pyBest.torch });
}
rmSync(tmp, { recursive: true, force: true });
console.log(`\nbench:compute — batch ${batch}, 224², ${iters} timed iterations, ${threads} threads (${cpus()[0].model})`);
console.log('| arch | setting | inference img/s | train-step img/s | infer ×Python default | train ×Python default |');
console.log('|---|---|---|---|---|---|');
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
const share = (arch, ips) => (GFLOP[arch] ? `${((100 * ips * GFLOP[arch]) / peak).toFixed(1)} %` : '—');
const f1 = (v) => (v === undefined ? '—' : v.toFixed(1));
const ratio = (a, b) => (b === undefined ? '—' : `${(a / b).toFixed(2)}×`);
console.log(`\ninference against PyPI's torch ${bestRows[0]?.torch} in its best CPU configuration on this CPU (channels_last + ${bestRows[0]?.dtype}${bestRows[0]?.dtype === 'bfloat16' ? ' autocast' : ' (no native BF16 here)'} + inference_mode, jemalloc decay off; eager and torch.compile) and onnxruntime-node ${ort.env.versions?.common ?? ''} on our exported ONNX file (fp32)`);
console.log(`ours: libtorch ${version().libtorch} (${version().variant}); measured ${peakDtype} convolution peak ${peak.toFixed(0)} GFLOP/s`);
console.log('| arch | ours default img/s | PyTorch eager | torch.compile | ours × eager | ours × compile | ours % of peak | compile % of peak |');
console.log('|---|---|---|---|---|---|---|---|');
for (const r of bestRows) console.log(`| ${r.arch} | ${f1(r.ours)} | ${f1(r.python)} | ${f1(r.compile)} | ${ratio(r.ours, r.python)} | ${ratio(r.ours, r.compile)} | ${share(r.arch, r.ours)} | ${r.compile ? share(r.arch, r.compile) : '—'} |`);
console.log('\nfp32 against onnxruntime-node on the same ONNX file; fused = BatchNorm folded into the convolutions (ModelOptions.fuse)');
console.log('| arch | ours fp32 fused img/s | ours fp32 unfused | onnxruntime-node | fused × ORT | fused × unfused |');
console.log('|---|---|---|---|---|---|');
for (const r of bestRows) console.log(`| ${r.arch} | ${f1(r.ours32)} | ${f1(r.unfused32)} | ${f1(r.ort)} | ${ratio(r.ours32, r.ort)} | ${ratio(r.ours32, r.unfused32)} |`);
