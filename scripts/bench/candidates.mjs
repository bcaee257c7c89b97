// bench:candidates — source-model choice: `assess(candidates, loader)` ranks candidate backbones on the training
// images (cross-validated linear probe, then LogME), and each candidate is then actually trained on the same images
// and scored on held-out ones: the linear probe ('linear-probe', the head fitted on the frozen features) and a short
// fine-tune ('lp-ft', the probe then `--epochs` epochs of the whole network). The ranking should order the
// candidates as their held-out accuracies do. Datasets: ants/bees (train → val, 224 px) and the MNIST digits
// (every other file of each class → train / val, 64 px). Candidates: squeezenet1_1 with its real ImageNet weights,
// and random initialisations of squeezenet1_1 and resnet18 (no ResNet weights exist here).
// usage: node scripts/bench/candidates.mjs [--datasets hymenoptera,digits] [--epochs 2]
import { lib, sharedPath } from './common.mjs';
import { parseArgs } from 'node:util';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const { DataLoader, ImageFolder, ImageList, Trainer, Transform, assess, manualSeed } = lib;
const { values } = parseArgs({ options: { datasets: { type: 'string', default: 'hymenoptera,digits' }, epochs: { type: 'string', default: '2' } } });
const epochs = Number(values.epochs);
const SQUEEZE = sharedPath('weights', 'squeezenet1_1-imagenet.pth');
const candidates = [
  { arch: 'squeezenet1_1', weights: SQUEEZE, name: 'squeezenet1_1 ImageNet' },
  { arch: 'squeezenet1_1', weights: null, name: 'squeezenet1_1 random init' },
  { arch: 'resnet18', weights: null, name: 'resnet18 random init' },
];

async function splits(name) {
  if (name === 'hymenoptera') {
    const root = sharedPath('data', 'hymenoptera');
    const t = Transform.imagenetEval();
    return { size: 224, train: await ImageFolder.open(join(root, 'train'), { transform: t }), val: await ImageFolder.open(join(root, 'val'), { transform: t }) };
  }
  const root = sharedPath('data', 'mnist_usps', 'mnist');
  const classes = readdirSync(root).sort();
  const items = classes.flatMap((c) => readdirSync(join(root, c)).sort().map((f, i) => ({ path: join(root, c, f), label: c, i })));
  const t = Transform.compose([Transform.resize([64, 64]), Transform.toTensor(), Transform.normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]);
  const pick = (odd) => ImageList.from(items.filter((it) => it.i % 2 === odd).map(({ path, label }) => ({ path, label })), { classes, transform: t });
  return { size: 64, train: pick(0), val: pick(1) };
}

const spearman = (a, b) => {
  const rank = (x) => x.map((v) => x.filter((w) => w > v).length + (x.filter((w) => w === v).length - 1) / 2);
  const ra = rank(a), rb = rank(b);
  const n = a.length;
  return 1 - (6 * ra.reduce((s, r, i) => s + (r - rb[i]) ** 2, 0)) / (n * (n * n - 1));
};

const results = [];
for (const name of values.datasets.split(',')) {
  const { train, val } = await splits(name);
  const loader = () => new DataLoader(train, { batchSize: 32 });
  const t0 = performance.now();
  const r = await assess(candidates, loader());
  const rankSeconds = (performance.now() - t0) / 1000;
  const rows = [];
  for (const c of candidates) {
    const row = { name: c.name, rank: r.ranking.find((x) => x.name === c.name).rank, ...pick(r.ranking.find((x) => x.name === c.name).assessment) };
    for (const strategy of ['linear-probe', 'lp-ft']) {
      manualSeed(0);
      const { model } = await lib.chooseModel([c], loader());
      const fit = await new Trainer(model, { strategy, ...(strategy === 'lp-ft' ? { epochs } : {}), seed: 0 }).fit(new DataLoader(train, { batchSize: 32, shuffle: true, seed: 0 }), new DataLoader(val, { batchSize: 32 }), { probeData: loader() });
      row[strategy] = fit.history[fit.history.length - 1].valAccuracy;
      model.dispose();
    }
    rows.push(row);
  }
  rows.sort((a, b) => a.rank - b.rank);
  const agree = { 'linear-probe': spearman(rows.map((x) => -x.rank), rows.map((x) => x['linear-probe'])), 'lp-ft': spearman(rows.map((x) => -x.rank), rows.map((x) => x['lp-ft'])) };
  console.log(`\n${name}: ${train.length} training / ${val.length} held-out images; ranking ${rankSeconds.toFixed(1)} s (${r.orderedBy})`);
  console.log('| rank | candidate | linear probe (CV) | LogME | k-NN (CV) | held-out: linear probe | held-out: LP-FT ' + `${epochs} epochs |`);
  console.log('|---|---|---|---|---|---|---|');
  for (const x of rows) console.log(`| ${x.rank} | ${x.name} | ${x.linear.toFixed(3)} | ${x.logme.toFixed(3)} | ${x.knn.toFixed(3)} | ${x['linear-probe'].toFixed(3)} | ${x['lp-ft'].toFixed(3)} |`);
  console.log(`Spearman correlation of the ranking with the held-out accuracies: linear probe ${agree['linear-probe'].toFixed(2)}, LP-FT ${agree['lp-ft'].toFixed(2)}`);
  results.push({ dataset: name, rows, agree, rankSeconds });
}
console.log(JSON.stringify({ bench: 'candidates', epochs, results }));

function pick(a) {
  return { linear: a.linearProbeAccuracy, logme: a.logme, knn: a.knnAccuracy };
}
