// bench:da — unsupervised domain adaptation MNIST → USPS (../shared/data/mnist_usps: 2000 MNIST digits labelled,
// 1800 USPS digits whose labels are used only to score): ResNet-18 from scratch at 32×32, 8 epochs, source-only vs
// DANN vs multi-kernel MMD, 3 seeds each, all in this run on the same data. Prints the USPS accuracy of the final
// weights (mean ± sd over seeds) beside the published figures, and writes bench-da.json.
// usage: node scripts/bench/da.mjs [--epochs 8] [--seeds 0,1,2] [--methods none,dann,mmd] [--out bench-da.json]
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { lib, seconds as timed, sharedPath } from './common.mjs';

const { DataLoader, ImageFolder, ResNet, Trainer, Transform, manualSeed, version } = lib;
const { values } = parseArgs({
  options: { epochs: { type: 'string', default: '8' }, seeds: { type: 'string', default: '0,1,2' }, methods: { type: 'string', default: 'none,dann,mmd' }, out: { type: 'string', default: 'bench-da.json' }, lr: { type: 'string', default: '0.001' } },
});
const root = sharedPath('data', 'mnist_usps');
const epochs = Number(values.epochs);
const seeds = values.seeds.split(',').map(Number);
const methods = values.methods.split(',');
const transform = Transform.compose([Transform.resize([32, 32]), Transform.toTensor(), Transform.normalize([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])]);
const mnist = await ImageFolder.open(join(root, 'mnist'), { transform });
const usps = await ImageFolder.open(join(root, 'usps'), { transform });
if (mnist.classes.join() !== usps.classes.join()) throw new Error('MNIST and USPS class folders differ');
// published target accuracies on MNIST→USPS (../shared/data/README.md)
const PUBLISHED = { none: 'ADDA table: 75.2 (LeNet); TLlib: 82.1', dann: 'ADDA table: 77.1 (LeNet); TLlib: 91.7', mmd: 'TLlib (DAN): 86.0' };

const rows = [];
for (const method of methods) {
  for (const seed of seeds) {
    manualSeed(seed);
    const model = await ResNet.create({ arch: 'resnet18', numClasses: 10, classes: mnist.classes });
    const train = new DataLoader(mnist, { batchSize: 64, shuffle: true, seed, dropLast: true });
    const target = new DataLoader(usps, { batchSize: 64, shuffle: true, seed: seed + 100, dropLast: true });
    const trainer = new Trainer(model, {
      strategy: 'full',
      epochs,
      optimizer: 'adam',
      lr: Number(values.lr),
      backboneLr: Number(values.lr),
      seed,
      precision: 'fp32',
      ...(method === 'none' ? {} : { domainAdaptation: { method, target } }),
    });
    let fit;
    const seconds = await timed(async () => {
      fit = await trainer.fit(train);
    });
    const rep = await trainer.evaluate(new DataLoader(usps, { batchSize: 256 }));
    const last = fit.history[fit.history.length - 1];
    const row = { method, seed, targetAccuracy: rep.accuracy, sourceTrainAccuracy: last.accuracy, adaptation: last.adaptation ?? null, seconds };
    console.log(JSON.stringify(row));
    rows.push(row);
    model.dispose();
  }
}
const stats = (xs) => {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  return { mean: m, sd: Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / Math.max(1, xs.length - 1)) };
};
const summary = methods.map((method) => ({ method, ...stats(rows.filter((r) => r.method === method).map((r) => r.targetAccuracy)), seconds: stats(rows.filter((r) => r.method === method).map((r) => r.seconds)).mean }));
const base = summary.find((s) => s.method === 'none');
console.log(`\nMNIST → USPS, ResNet-18 from scratch at 32×32, ${epochs} epochs, Adam ${values.lr}, seeds ${seeds.join(',')} (libtorch ${version().libtorch})`);
console.log('method      USPS accuracy (mean ± sd)   vs source-only   s/run   published');
for (const s of summary)
  console.log(`${s.method.padEnd(11)} ${(100 * s.mean).toFixed(1).padStart(6)} ± ${(100 * s.sd).toFixed(1).padEnd(18)} ${base ? ((s.mean - base.mean >= 0 ? '+' : '') + (100 * (s.mean - base.mean)).toFixed(1)).padStart(8) : '     n/a'}     ${s.seconds.toFixed(0).padStart(5)}   ${PUBLISHED[s.method] ?? ''}`);
writeFileSync(values.out, JSON.stringify({ epochs, seeds, rows, summary }, null, 1));
