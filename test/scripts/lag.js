// Measures event-loop lag (a 10 ms interval) while native work runs, in a plain Node process (no test sandbox).
// usage: node test/scripts/lag.js forward|fit  -> prints {"maxLag": ms, "ticks": n, "seconds": s}
const { ResNet, Model, Trainer, ImageFolder, DataLoader, Transform } = require('../..');

const shared = process.env.TORCH_RESNET_TL_SHARED || require('node:path').join(__dirname, '..', '..', '..', 'shared');

async function work(kind) {
  if (kind === 'forward') {
    const model = await ResNet.create({ arch: 'resnet50', precision: 'fp32' });
    const input = new Float32Array(16 * 3 * 224 * 224).fill(0.5);
    return async () => {
      const out = await model.forward(input, [16, 3, 224, 224]);
      if (out.shape[0] !== 16) throw new Error('bad output');
    };
  }
  const train = await ImageFolder.open(`${shared}/data/hymenoptera/train`, { transform: Transform.imagenetTrain() });
  const val = await ImageFolder.open(`${shared}/data/hymenoptera/val`, { transform: Transform.imagenetEval() });
  const model = await Model.create({ arch: 'squeezenet1_1', numClasses: 2, weights: `${shared}/weights/squeezenet1_1-imagenet.pth` });
  const trainer = new Trainer(model, { strategy: 'full', epochs: 1, seed: 0 });
  return () => trainer.fit(new DataLoader(train, { batchSize: 32, shuffle: true, seed: 0 }), new DataLoader(val, { batchSize: 32 }));
}

(async () => {
  const run = await work(process.argv[2]);
  let last = performance.now();
  let maxLag = 0;
  let ticks = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    maxLag = Math.max(maxLag, now - last - 10);
    last = now;
    ticks++;
  }, 10);
  const t0 = performance.now();
  await run();
  clearInterval(timer);
  console.log(JSON.stringify({ maxLag, ticks, seconds: (performance.now() - t0) / 1000 }));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
