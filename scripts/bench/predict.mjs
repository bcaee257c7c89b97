// bench:predict — classify a folder end to end (decode + resize + crop + normalize + forward + top-5), the way a user
// calls `model.predict(files)`, against the Python a user would write (PIL + torchvision transforms + a DataLoader
// with 2 workers + PyPI's PyTorch in its best CPU configuration with jemalloc), same run, the same 1000 ImageNet
// photos. squeezenet1_1 carries real ImageNet weights (top-1 is printed for both sides); ResNet weights do not exist
// here, so ResNet-50 runs with random weights (speed only).
// usage: node scripts/bench/predict.mjs [--archs squeezenet1_1,resnet50] [--images 1000]
import { lib, runPython, sharedPath } from './common.mjs';
import { parseArgs } from 'node:util';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const { Model, getNumThreads } = lib;
const { values } = parseArgs({ options: { archs: { type: 'string', default: 'squeezenet1_1,resnet50' }, images: { type: 'string', default: '1000' } } });
const dir = sharedPath('data', 'imagenet-samples');
const rows = readFileSync(join(dir, 'labels.tsv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split('\t')).slice(0, Number(values.images));
const files = rows.map((r) => join(dir, r[0]));
const labels = rows.map((r) => Number(r[1]));
const tmp = mkdtempSync(join(tmpdir(), 'bench-predict-'));
const list = join(tmp, 'files.tsv');
writeFileSync(list, files.map((f, i) => `${f}\t${labels[i]}`).join('\n') + '\n');
const threads = getNumThreads();
const weightsOf = (arch) => (arch === 'squeezenet1_1' ? sharedPath('weights', 'squeezenet1_1-imagenet.pth') : null);

const out = [];
for (const arch of values.archs.split(',')) {
  const m = await Model.create({ arch, weights: weightsOf(arch), ...(weightsOf(arch) ? {} : { numClasses: 1000 }) });
  await m.predict(files.slice(0, 32), { topk: 5 }); // warm-up, as on the Python side
  const t0 = performance.now();
  const preds = await m.predict(files, { topk: 5 });
  const ours = files.length / ((performance.now() - t0) / 1000);
  const top1 = preds.filter((p, i) => p[0].index === labels[i]).length / files.length;
  const precision = m.precision(undefined);
  m.dispose();
  const [py] = runPython('best', ['scripts/bench/predict_py.py', arch, list, String(threads), weightsOf(arch) ?? 'none']);
  out.push({ arch, ours, oursTop1: top1, precision, py: py.img_per_s, pyTop1: py.top1, pyDtype: py.dtype });
}
rmSync(tmp, { recursive: true, force: true });

console.log(`\npredict(${files.length} ImageNet photos), top-5, ${threads} threads; Python: PIL + torchvision + DataLoader(2 workers), PyTorch best config + jemalloc`);
console.log('| arch | ours img/s | Python img/s | ratio | top-1 ours / Python |');
console.log('|---|---|---|---|---|');
for (const r of out) {
  const acc = r.arch === 'squeezenet1_1' ? `${r.oursTop1.toFixed(3)} / ${r.pyTop1.toFixed(3)}` : '(random weights)';
  console.log(`| ${r.arch} (${r.precision} / ${r.pyDtype}) | ${r.ours.toFixed(1)} | ${r.py.toFixed(1)} | ${(r.ours / r.py).toFixed(2)}× | ${acc} |`);
}
