// Measures event-loop lag (a 10 ms interval) while native work runs, in a plain Node process (no test sandbox).
// usage: node test/scripts/lag.js forward|fit [hogs] [seconds]
//   -> prints {"maxLag": ms, "ticks": n, "seconds": s, "steps": n}
// `hogs` busy-loop processes (default 0) saturate the machine while it measures: the property must hold when other
// CPU-bound work competes for the cores, not only on an idle machine. The work repeats (forward) or trains (fit,
// stopped through its signal) for `seconds` (default: one forward / one epoch).
const { spawn } = require('node:child_process');
const { ResNet, Model, Trainer, ImageFolder, DataLoader, Transform } = require('../..');

const shared = process.env.TORCH_RESNET_TL_SHARED || require('node:path').join(__dirname, '..', '..', '..', 'shared');
const [kind, hogCount = '0', secondsArg] = process.argv.slice(2);
const budget = secondsArg === undefined ? 0 : Number(secondsArg) * 1000;

async function work() {
  if (kind === 'forward') {
    const model = await ResNet.create({ arch: 'resnet50', precision: 'fp32' });
    const input = new Float32Array(16 * 3 * 224 * 224).fill(0.5);
    return async (t0) => {
      let steps = 0;
      do {
        const out = await model.forward(input, [16, 3, 224, 224]);
        if (out.shape[0] !== 16) throw new Error('bad output');
        steps++;
      } while (performance.now() - t0 < budget);
      return steps;
    };
  }
  const train = await ImageFolder.open(`${shared}/data/hymenoptera/train`, { transform: Transform.imagenetTrain() });
  const val = await ImageFolder.open(`${shared}/data/hymenoptera/val`, { transform: Transform.imagenetEval() });
  const model = await Model.create({ arch: 'squeezenet1_1', numClasses: 2, weights: `${shared}/weights/squeezenet1_1-imagenet.pth` });
  const stop = new AbortController();
  const trainer = new Trainer(model, { strategy: 'full', epochs: budget ? 1000 : 1, seed: 0, signal: stop.signal });
  return async () => {
    let steps = 0;
    trainer.on('batchEnd', () => steps++);
    const timer = budget ? setTimeout(() => stop.abort(), budget) : undefined;
    await trainer.fit(new DataLoader(train, { batchSize: 32, shuffle: true, seed: 0 }), new DataLoader(val, { batchSize: 32 }));
    clearTimeout(timer);
    return steps;
  };
}

(async () => {
  const run = await work();
  const hogs = Array.from({ length: Number(hogCount) }, () => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
  process.on('exit', () => hogs.forEach((h) => h.kill('SIGKILL')));
  if (hogs.length) await new Promise((r) => setTimeout(r, 300)); // the hogs are running
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
  const steps = await run(t0);
  clearInterval(timer);
  hogs.forEach((h) => h.kill('SIGKILL'));
  console.log(JSON.stringify({ maxLag, ticks, seconds: (performance.now() - t0) / 1000, steps }));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
