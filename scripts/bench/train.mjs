// bench:train — hymenoptera, the document's training transforms, batch 32, Adam 1e-3: ours vs the tutorial-style
// Python loop (torchvision DataLoader num_workers=2) in the same run.
// Partial fine-tuning (conv1..layer3 frozen, layer4 + fc trained, the document's augmentation): ours through the
// frozen-prefix cache (K augmented views cached, epoch e trains on view e mod K) and uncached, against PyTorch's same
// recipe in its best configuration.
// usage: node scripts/bench/train.mjs [--full-epochs 2] [--fe-epochs 25] [--full-arch resnet18]
//          [--partial-arch resnet50] [--partial-epochs 6] [--partial-views 2] [--only partial]
import { lib, runPython, seconds, sharedPath } from './common.mjs';
import { parseArgs } from 'node:util';

const { Model, Trainer, ImageFolder, DataLoader, Transform, getNumThreads } = lib;
const { values } = parseArgs({
  options: {
    data: { type: 'string', default: sharedPath('data', 'hymenoptera') },
    'full-epochs': { type: 'string', default: '2' },
    'fe-epochs': { type: 'string', default: '25' },
    'full-arch': { type: 'string', default: 'resnet18' },
    'partial-arch': { type: 'string', default: 'resnet50' },
    'partial-epochs': { type: 'string', default: '6' },
    'partial-views': { type: 'string', default: '2' },
    only: { type: 'string' },
  },
});
const weights = sharedPath('weights', 'squeezenet1_1-imagenet.pth');
const threads = getNumThreads();

function python(arch, strategy, epochs, w, kind = 'default') {
  return runPython(kind, ['scripts/bench/train_py.py', values.data, arch, strategy, String(epochs), w, String(threads)]).pop();
}

async function ours(arch, strategy, epochs, w, extra = {}, trainTransform = Transform.documentTrain()) {
  const train = await ImageFolder.open(`${values.data}/train`, { transform: trainTransform });
  const val = await ImageFolder.open(`${values.data}/val`, { transform: Transform.imagenetEval() });
  const model = await Model.create({ arch, numClasses: 2, classes: train.classes, weights: w, channelsLast: extra.channelsLast ?? true });
  const trainer = new Trainer(model, { strategy, epochs, lr: 1e-3, backboneLr: 1e-3, seed: 0, precision: extra.precision ?? 'auto', featureCache: extra.featureCache, ...(extra.trainFrom ? { trainFrom: extra.trainFrom } : {}), ...(extra.views ? { featureCacheViews: extra.views } : {}) });
  let res;
  const total = await seconds(async () => {
    res = await trainer.fit(new DataLoader(train, { batchSize: 32, shuffle: true, seed: 0 }), new DataLoader(val, { batchSize: 32 }));
  });
  model.dispose();
  return { epoch_seconds: res.history.map((h) => h.seconds), total, val_accuracy: res.history.at(-1).valAccuracy };
}

const fe = Number(values['fe-epochs']);
const fullEpochs = Number(values['full-epochs']);
const arch = values['full-arch'];
const rows = [];
const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
const partial = async () => {
  const pa = values['partial-arch'];
  const pe = Number(values['partial-epochs']);
  const views = Number(values['partial-views']);
  const cached = await ours(pa, 'partial', pe, null, { trainFrom: 'layer4', views, featureCache: true });
  const uncached = await ours(pa, 'partial', pe, null, { trainFrom: 'layer4', featureCache: false });
  const py = python(pa, 'partial-layer4', pe, '-', 'best');
  rows.push([`${pa} partial fine-tuning (layer4 + fc), ${pe} epochs total s (train+val), vs PyPI torch best`, `${cached.total.toFixed(1)} (prefix cache, ${views} views) / ${uncached.total.toFixed(1)} (uncached)`, py.total.toFixed(1), `${(py.total / cached.total).toFixed(2)}× / ${(py.total / uncached.total).toFixed(2)}×`]);
  rows.push([`${pa} partial fine-tuning final val accuracy (random init: no ResNet weights here)`, `${cached.val_accuracy.toFixed(3)} / ${uncached.val_accuracy.toFixed(3)}`, py.val_accuracy.toFixed(3), `${((cached.val_accuracy - uncached.val_accuracy) * 100).toFixed(1)} points cached − uncached`]);
  // the same with real ImageNet features: squeezenet1_1 from features.9 (its last four Fire modules train)
  const sq = await ours('squeezenet1_1', 'partial', pe, weights, { trainFrom: 'features.9', views, featureCache: true });
  const squ = await ours('squeezenet1_1', 'partial', pe, weights, { trainFrom: 'features.9', featureCache: false });
  rows.push([`squeezenet1_1 (ImageNet weights) partial from features.9, ${pe} epochs: total s / final val accuracy`, `${sq.total.toFixed(1)} s, ${sq.val_accuracy.toFixed(3)} (prefix cache, ${views} views)`, '—', `${squ.total.toFixed(1)} s, ${squ.val_accuracy.toFixed(3)} uncached: ${(squ.total / sq.total).toFixed(2)}×, ${((sq.val_accuracy - squ.val_accuracy) * 100).toFixed(1)} points`]);
};
const print = () => {
  console.log(`\nbench:train — ${values.data}, batch 32, Adam 1e-3, ${threads} threads`);
  console.log('| case | ours | Python | speed-up / difference |');
  console.log('|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
};
if (values.only === 'partial') {
  await partial();
  print();
  process.exit(0);
}
const pyFull = python(arch, 'full', fullEpochs, '-');
const ourFullDefault = await ours(arch, 'full', fullEpochs, null);
const ourFullEqual = await ours(arch, 'full', fullEpochs, null, { precision: 'fp32', channelsLast: false });
const pyFullBest = python(arch, 'full', fullEpochs, '-', 'best');
rows.push([`${arch} full fine-tuning, s/epoch (train+val)`, `${mean(ourFullDefault.epoch_seconds).toFixed(1)} (default) / ${mean(ourFullEqual.epoch_seconds).toFixed(1)} (fp32 NCHW)`, mean(pyFull.epoch_seconds).toFixed(1), `${(mean(pyFull.epoch_seconds) / mean(ourFullDefault.epoch_seconds)).toFixed(2)}× / ${(mean(pyFull.epoch_seconds) / mean(ourFullEqual.epoch_seconds)).toFixed(2)}×`]);
rows.push([`${arch} full fine-tuning vs PyPI torch best CPU config (bf16, channels_last, jemalloc), s/epoch`, `${mean(ourFullDefault.epoch_seconds).toFixed(1)} (default)`, mean(pyFullBest.epoch_seconds).toFixed(1), `${(mean(pyFullBest.epoch_seconds) / mean(ourFullDefault.epoch_seconds)).toFixed(2)}×`]);
const pyFe = python('squeezenet1_1', 'feature-extract-fixed', fe, weights);
const ourFe = await ours('squeezenet1_1', 'feature-extract', fe, weights, {}, Transform.imagenetEval());
rows.push([`squeezenet1_1 feature-extract, ${fe} epochs total s (cached features)`, ourFe.total.toFixed(1), pyFe.total.toFixed(1), `${(pyFe.total / ourFe.total).toFixed(2)}×`]);
rows.push([`squeezenet1_1 feature-extract final val accuracy`, ourFe.val_accuracy.toFixed(3), pyFe.val_accuracy.toFixed(3), `${((ourFe.val_accuracy - pyFe.val_accuracy) * 100).toFixed(1)} points`]);
await partial();
print();
