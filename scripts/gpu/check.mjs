// The GPU check proper (run by scripts/gpu/check.sh on the lent machine, or here with GPU_CHECK_DRY_RUN=1).
// Prints one line per check and writes $GPU_CHECK_OUT/gpu-check.json. Exit 1 when a check fails.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const tl = require('../../dist/cjs/index.js');
const { Model, Trainer, DataLoader, ImageFolder, Transform, cuda, version, manualSeed, makeSyntheticDataset } = tl;
const OUT = process.env.GPU_CHECK_OUT ?? '.';
const PY = process.env.GPU_CHECK_PY ?? 'python3';
const dry = process.env.GPU_CHECK_DRY_RUN === '1';
const report = { version: version(), devices: cuda.devices(), checks: [], bench: {} };
let failed = 0;
function record(name, ok, detail) {
  report.checks.push({ name, ok, ...detail });
  if (ok === false) failed++;
  console.log(`${ok === null ? 'SKIP' : ok ? 'PASS' : 'FAIL'} ${name} ${JSON.stringify(detail)}`);
}
const save = () => writeFileSync(join(OUT, 'gpu-check.json'), JSON.stringify(report, null, 2));

console.log('version', JSON.stringify(report.version), 'devices', JSON.stringify(report.devices));
const gpu = cuda.isAvailable();
if (!gpu && !dry) {
  record('cuda available', false, { devices: tl.devices() });
  save();
  process.exit(1);
}
const DEV = gpu ? 'cuda:0' : 'cpu';

const rand = (n, seed) => {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1);
};
const scaledMax = (a, b) => {
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(a[i]));
  }
  return d / Math.max(m, 1e-12);
};

// 1. CPU vs CUDA logits, IEEE fp32 (TF32 off), and the same with libtorch's TF32 default for information.
const tf32Default = cuda.allowTF32();
for (const arch of ['resnet18', 'resnet50', 'squeezenet1_1']) {
  manualSeed(0);
  const m = await Model.create({ arch, weights: null, numClasses: 1000, precision: 'fp32' });
  const shape = [8, 3, 224, 224];
  const x = rand(8 * 3 * 224 * 224, 1);
  const cpu = await m.forward(x, shape);
  await m.to(DEV);
  cuda.setAllowTF32(false);
  const dev = await m.forward(x, shape);
  cuda.setAllowTF32(true);
  const devTf32 = await m.forward(x, shape);
  cuda.setAllowTF32(tf32Default);
  const d = scaledMax(cpu.data, dev.data);
  record(`logits cpu vs ${DEV} ${arch} fp32`, d <= 1e-3, { scaledMaxDiff: d, withTF32: scaledMax(cpu.data, devTf32.data) });
  m.dispose();
}

// 2. One SGD training step: the loss and the updated model agree between CPU and CUDA.
{
  manualSeed(0);
  const a = await Model.create({ arch: 'resnet18', weights: null, numClasses: 10, precision: 'fp32' });
  const path = join(mkdtempSync(join(tmpdir(), 'gpu-check-')), 'r18.safetensors');
  await a.save(path);
  const b = await Model.load(path, { device: DEV, precision: 'fp32' });
  const x = rand(16 * 3 * 128 * 128, 2);
  const shape = [16, 3, 128, 128];
  const labels = Array.from({ length: 16 }, (_, i) => i % 10);
  cuda.setAllowTF32(false);
  const la = await a.sgdStep(x, shape, labels, 0.01);
  const lb = await b.sgdStep(x, shape, labels, 0.01);
  const after = scaledMax((await a.forward(x, shape)).data, (await b.forward(x, shape)).data);
  cuda.setAllowTF32(tf32Default);
  record(`training step cpu vs ${DEV}`, Math.abs(la - lb) <= 1e-3 * Math.abs(la) && after <= 1e-3, { lossCpu: la, lossDevice: lb, logitsAfterScaledMaxDiff: after });
  a.dispose();
  b.dispose();
}

// 3. Trainer epochs on the device: pinned batches, bf16 autocast, and fp16 with dynamic loss scaling.
{
  const root = mkdtempSync(join(tmpdir(), 'gpu-check-data-'));
  await makeSyntheticDataset(root, { classes: 4, trainPerClass: 64, valPerClass: 16, size: 64, seed: 0 });
  const t = Transform.compose(Transform.randomHorizontalFlip(), Transform.toTensor(), Transform.normalize());
  const train = await ImageFolder.open(join(root, 'train'), { transform: t });
  const val = await ImageFolder.open(join(root, 'val'), { transform: Transform.compose(Transform.toTensor(), Transform.normalize()) });
  for (const precision of gpu ? ['bf16', 'fp16'] : ['bf16']) {
    manualSeed(0);
    const m = await Model.create({ arch: 'resnet18', weights: null, classes: train.classes, device: DEV });
    const trainer = new Trainer(m, { strategy: 'full', epochs: 3, lr: 1e-3, precision, seed: 0 });
    const t0 = performance.now();
    const { history } = await trainer.fit(new DataLoader(train, { batchSize: 32, shuffle: true, seed: 0, pinMemory: true }), new DataLoader(val, { batchSize: 64, pinMemory: true }));
    const last = history[history.length - 1];
    record(`trainer ${DEV} ${precision} (pinned batches)`, Number.isFinite(last.loss) && last.loss < history[0].loss, {
      losses: history.map((h) => h.loss),
      valAccuracy: last.valAccuracy,
      lossScale: last.lossScale,
      skippedSteps: last.skippedSteps,
      seconds: (performance.now() - t0) / 1000,
    });
    m.dispose();
  }
  if (!gpu) record('trainer fp16 + loss scaling', null, { reason: 'no CUDA device (dry run)' });
}

// 4. CUDA out of memory is a typed error and the model stays usable.
if (gpu) {
  const m = await Model.create({ arch: 'resnet152', weights: null, numClasses: 10, device: DEV, precision: 'fp32' });
  const shape = [64, 3, 1024, 1024]; // ~270 GB of training activations
  const err = await m.sgdStep(new Float32Array(64 * 3 * 1024 * 1024), shape, Array(64).fill(0), 0.01).catch((e) => e);
  const ok = err instanceof tl.OutOfMemoryError;
  const small = await m.forward(rand(2 * 3 * 64 * 64, 3), [2, 3, 64, 64]).then((r) => r.shape, (e) => String(e));
  record('CUDA out of memory -> OutOfMemoryError, model still usable', ok && Array.isArray(small), { error: err?.constructor?.name, code: err?.code, message: String(err?.message).slice(0, 160), after: small });
  m.dispose();
} else record('CUDA out of memory', null, { reason: 'no CUDA device (dry run)' });

// 5. Transfer decisions on the device: Grad-CAM, the assessment and linear probe, DANN and MMD steps, ONNX export of
// a CUDA model; each against the same on the CPU.
{
  const data = join(mkdtempSync(join(tmpdir(), 'tl-gpu-transfer-')), 'data');
  await makeSyntheticDataset(data, { classes: 3, trainPerClass: 16, valPerClass: 4, size: 64 });
  const t = Transform.compose([Transform.toTensor(), Transform.normalize()]);
  const ds = await ImageFolder.open(join(data, 'train'), { transform: t });
  const image = ds.samples[0].path;
  const results = {};
  for (const dev of ['cpu', DEV]) {
    manualSeed(0);
    const m = await Model.create({ arch: 'resnet18', numClasses: 3, classes: ds.classes, device: dev, precision: 'fp32' });
    const cam = await m.explain(image, { transform: t });
    const a = await tl.assess(m, new DataLoader(ds, { batchSize: 16 }), { precision: 'fp32' });
    const fit = await new Trainer(m, { strategy: 'linear-probe', precision: 'fp32' }).fit(new DataLoader(ds, { batchSize: 16 }));
    const da = {};
    for (const method of ['dann', 'mmd']) {
      const tr = new Trainer(m, { strategy: 'full', epochs: 1, precision: 'fp32', seed: 0, domainAdaptation: { method, target: new DataLoader(ds, { batchSize: 8, shuffle: true, seed: 1 }) } });
      da[method] = (await tr.fit(new DataLoader(ds, { batchSize: 8, shuffle: true, seed: 0 }))).history[0].adaptation;
    }
    const onnx = await m.exportOnnx(join(OUT, `resnet18-${dev.replace(':', '')}.onnx`));
    results[dev] = { heatmap: cam.heatmap, classIndex: cam.classIndex, logme: a.logme, probe: fit.history[0].probe, da, onnxBytes: onnx.bytes };
    m.dispose();
  }
  const c = results.cpu;
  const g = results[DEV];
  const camDiff = scaledMax(c.heatmap, g.heatmap);
  record(`grad-cam cpu vs ${DEV}`, c.classIndex === g.classIndex && camDiff <= 1e-3, { scaledMaxDiff: camDiff });
  record(`assess and linear probe on ${DEV}`, Math.abs(c.logme - g.logme) <= 1e-3 * Math.abs(c.logme) && g.probe.cvAccuracy >= 0, { logmeCpu: c.logme, logmeDevice: g.logme, probeDevice: g.probe });
  record(`domain adaptation steps on ${DEV}`, g.da.dann.loss > 0 && g.da.mmd.loss > 0, { cpu: c.da, device: g.da });
  record(`onnx export of a ${DEV} model`, g.onnxBytes === c.onnxBytes, { bytes: g.onnxBytes });
}

// 6. Data-parallel on the device: 2 ranks on this GPU through Gloo (CUDA gradients staged through host memory, the
// overlapped reducer's hooks on the autograd engine's device thread) equal 1 process x 16; NCCL needs one GPU per
// rank, so its 2-rank run happens only with 2 GPUs.
{
  const backends = report.version.distributed ?? [];
  record('distributed backends of this build', backends.includes('gloo') && (!gpu || backends.includes('nccl')), { backends });
  const data = join(mkdtempSync(join(tmpdir(), 'tl-gpu-ddp-')), 'data');
  await makeSyntheticDataset(data, { classes: 2, trainPerClass: 24, valPerClass: 2, size: 64 });
  const ds = await ImageFolder.open(join(data, 'train'));
  const items = ds.samples.map((x) => ({ path: x.path, label: ds.classes[x.label] }));
  const start = join(data, 'start.pth');
  manualSeed(5);
  const init = await Model.create({ arch: 'resnet18', numClasses: 2, classes: ds.classes, channelsLast: false });
  await init.save(start);
  init.dispose();
  cuda.setAllowTF32(false);
  const trainer = { strategy: 'full', epochs: 1, optimizer: 'sgd', lr: 0.002, precision: 'fp32', freezeBatchNormStats: 'all', seed: 0 };
  const single = await Model.create({ arch: 'resnet18', numClasses: 2, classes: ds.classes, channelsLast: false, device: DEV });
  await single.loadWeights(start);
  const tf = Transform.compose([Transform.resize([64, 64]), Transform.toTensor(), Transform.normalize()]);
  await new Trainer(single, { ...trainer, distributed: false }).fit(new DataLoader(tl.ImageList.from(items, { transform: tf }), { batchSize: 16, shuffle: true, seed: 11 }));
  const ours = await single.stateDict();
  single.dispose();
  const runs = [['gloo', true]];
  if (backends.includes('nccl') && cuda.deviceCount() >= 2) runs.push(['nccl', true]);
  else record('nccl 2 ranks', null, { reason: `needs 2 GPUs (NCCL refuses two ranks on one), ${cuda.deviceCount()} visible` });
  for (const [backend] of runs) {
    const cfg = join(data, `${backend}.json`);
    const out = join(data, backend);
    const device = backend === 'nccl' ? 'cuda' : DEV; // NCCL: cuda:$LOCAL_RANK
    writeFileSync(cfg, JSON.stringify({ items, classes: ds.classes, start, out, device, trainer: { ...trainer, distributed: { backend } }, batchSize: 8, seed: 11 }));
    let log = '';
    const r = await tl.launch({ nprocPerNode: 2, masterPort: 29700 + Math.floor(Math.random() * 200), script: 'test/scripts/ddp-rank.js', args: [cfg], stdio: 'pipe', onOutput: (rank, st, t) => (log += t) });
    let worst = Infinity;
    if (r.ok) {
      worst = 0;
      const theirs = await tl.readStateDict(`${out}.rank0.pth`);
      for (const k of theirs.keys) {
        const [a, b] = [ours[k].data, theirs.tensors[k].data];
        if (a.constructor.name !== 'Float32Array') continue;
        for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
      }
    }
    record(`${backend} 2 ranks on ${backend === 'nccl' ? 'cuda:0, cuda:1' : DEV} = 1 process (3 SGD steps)`, r.ok && worst <= 1e-4, { worst, failed: r.ok ? undefined : log.slice(-1500) });
  }
}

// 7. Benchmark: resnet50, batch 128 (dry run: 8), bf16 autocast, channels_last; ours vs this machine's Python torch.
{
  const batch = gpu ? 128 : 8;
  const iters = gpu ? 20 : 2;
  const size = 224;
  cuda.setCudnnBenchmark(true);
  const m = await Model.create({ arch: 'resnet50', weights: null, numClasses: 1000, device: DEV });
  const x = rand(batch * 3 * size * size, 4);
  const shape = [batch, 3, size, size];
  const labels = Array.from({ length: batch }, (_, i) => i % 1000);
  const time = async (fn) => {
    for (let i = 0; i < 3; i++) await fn();
    const t0 = performance.now();
    for (let i = 0; i < iters; i++) await fn();
    return (batch * iters) / ((performance.now() - t0) / 1000);
  };
  const infer = await time(() => m.forward(x, shape, { precision: 'bf16' }));
  const train = await time(() => m.sgdStep(x, shape, labels, 0.01, { precision: 'bf16' }));
  m.dispose();
  let py = {};
  try {
    py = JSON.parse(execFileSync(PY, ['scripts/gpu/bench_py.py', DEV, String(batch), String(iters)], { encoding: 'utf8' }).trim().split('\n').pop());
  } catch (e) {
    py = { error: String(e).slice(0, 300) };
  }
  report.bench = { arch: 'resnet50', batch, size, precision: 'bf16', device: DEV, ours: { infer, train }, python: py, ratio: { infer: infer / py.infer, train: train / py.train } };
  console.log('bench', JSON.stringify(report.bench));
}
save();
console.log(failed ? `${failed} check(s) failed` : 'all checks passed');
process.exit(failed ? 1 : 0);
