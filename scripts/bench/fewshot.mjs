// bench:fewshot — few-shot classes without training (`model.withPrototypes`): k examples per class of ants/bees
// (k = 1, 5, 10, 20; 5 seeded draws each) through squeezenet1_1's real ImageNet features, accuracy on every
// validation photo. The same draws go to the nearest-prototype classifier written directly in PyTorch (torchvision
// preprocessing, L2-normalised embeddings, normalised class means, cosine), same run: the two accuracies must agree.
// usage: node scripts/bench/fewshot.mjs [--shots 1,5,10,20] [--draws 5]
import { lib, runPython, seconds, sharedPath } from './common.mjs';
import { parseArgs } from 'node:util';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

const { Model } = lib;
const { values } = parseArgs({ options: { shots: { type: 'string', default: '1,5,10,20' }, draws: { type: 'string', default: '5' } } });
const shots = values.shots.split(',').map(Number);
const draws = Number(values.draws);
const root = sharedPath('data', 'hymenoptera');
const classes = ['ants', 'bees'];
const files = (split, c) => readdirSync(join(root, split, c)).filter((f) => /\.(jpe?g|png)$/i.test(f)).sort().map((f) => join(root, split, c, f));
const train = Object.fromEntries(classes.map((c) => [c, files('train', c)]));
const val = classes.flatMap((c, label) => files('val', c).map((path) => ({ path, label })));

// a seeded draw without replacement, the same list for both sides
const { seededSample: sample } = require(join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cjs', 'random.js'));
const plan = shots.flatMap((k) => Array.from({ length: draws }, (_, d) => ({ k, draw: d, support: Object.fromEntries(classes.map((c, ci) => [c, sample(train[c], k, 1000 * k + 10 * d + ci)])) })));

const base = await Model.create({ arch: 'squeezenet1_1', weights: sharedPath('weights', 'squeezenet1_1-imagenet.pth'), precision: 'fp32' });
const ours = [];
const oursPreds = [];
const secs = await seconds(async () => {
  for (const p of plan) {
    const m = await base.withPrototypes(p.support);
    // exact decoding (predict's default decodes JPEGs at a reduced DCT scale when the image stays >= the resize size)
    const preds = await m.predict(val.map((s) => s.path), { topk: 1, fastDecodeMinSide: 0 });
    ours.push(preds.filter((pr, i) => pr[0].label === classes[val[i].label]).length / val.length);
    oursPreds.push(preds.map((pr) => classes.indexOf(pr[0].label)));
    m.dispose();
  }
});

const tmp = mkdtempSync(join(tmpdir(), 'bench-fewshot-'));
const spec = join(tmp, 'plan.json');
writeFileSync(spec, JSON.stringify({ weights: sharedPath('weights', 'squeezenet1_1-imagenet.pth'), classes, val, plan: plan.map((p) => p.support) }));
const [py] = runPython('debian', [join(dirname(fileURLToPath(import.meta.url)), 'fewshot_py.py'), spec]);
rmSync(tmp, { recursive: true, force: true });

// predictions that differ between the two sides, and the cosine margin PyTorch had on them
const disagree = plan.flatMap((_, i) => oursPreds[i].flatMap((c, j) => (c !== py.predictions[i][j] ? [py.margins[i][j]] : [])));
const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
console.log(`\nfew-shot ants/bees, squeezenet1_1 ImageNet features, ${val.length} validation photos, ${draws} draws per k (${secs.toFixed(1)} s for ours)`);
console.log('| examples per class | ours mean | ours min–max | PyTorch nearest-prototype mean | largest per-draw difference |');
console.log('|---|---|---|---|---|');
let worst = 0;
for (const k of shots) {
  const idx = plan.map((p, i) => (p.k === k ? i : -1)).filter((i) => i >= 0);
  const a = idx.map((i) => ours[i]);
  const b = idx.map((i) => py.accuracy[i]);
  const diff = Math.max(...idx.map((i) => Math.abs(ours[i] - py.accuracy[i])));
  worst = Math.max(worst, diff);
  console.log(`| ${k} | ${mean(a).toFixed(3)} | ${Math.min(...a).toFixed(3)}–${Math.max(...a).toFixed(3)} | ${mean(b).toFixed(3)} | ${diff.toFixed(3)} |`);
}
console.log(`${disagree.length} of ${plan.length * val.length} predictions differ between the sides${disagree.length ? `; PyTorch's cosine margin on them at most ${Math.max(...disagree).toExponential(1)}` : ''}`);
console.log(JSON.stringify({ bench: 'fewshot', shots, draws, ours, python: py.accuracy, worstDifference: worst, disagreements: disagree.length, maxDisagreeMargin: disagree.length ? Math.max(...disagree) : 0 }));
