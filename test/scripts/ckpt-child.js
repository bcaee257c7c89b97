// A training run with checkpoints, for the crash-consistency test: the parent SIGKILLs it at random moments.
// usage: node test/scripts/ckpt-child.js DIR fresh|resume
//   prints "ready" when training starts and "done <sha256 of the final state dict> <epochs in history>" at the end.
//   resume: continues from DIR's newest complete generation (from scratch when a kill came before the first one).
const { createHash } = require('node:crypto');
const { join } = require('node:path');
const { Model, Trainer, ImageFolder, ImageList, DataLoader, Transform, setNumThreads, manualSeed } = require('../..');

const shared = process.env.TORCH_RESNET_TL_SHARED || join(__dirname, '..', '..', '..', 'shared');

(async () => {
  const [dir, mode] = process.argv.slice(2);
  setNumThreads(1);
  const folder = await ImageFolder.open(`${shared}/data/hymenoptera/val`);
  const pick = folder.samples.filter((_, i) => i % 9 === 0).slice(0, 16);
  const data = ImageList.from(pick.map((s) => ({ path: s.path, label: folder.classes[s.label] })), {
    transform: Transform.compose(Transform.resize([64, 64]), Transform.randomHorizontalFlip(), Transform.toTensor(), Transform.normalize()),
  });
  manualSeed(11);
  const model = await Model.create({ arch: 'squeezenet1_1', numClasses: 2, classes: data.classes });
  const opts = { strategy: 'full', epochs: 5, optimizer: 'adam', lr: 1e-3, seed: 3, schedule: { type: 'cosine' }, checkpointDir: dir };
  let trainer = new Trainer(model, { ...opts, resumeFrom: mode === 'resume' ? dir : undefined });
  const loader = () => new DataLoader(data, { batchSize: 8, shuffle: true, seed: 4, workers: 1 });
  process.stdout.write('ready\n');
  let result;
  try {
    result = await trainer.fit(loader());
  } catch (e) {
    if (!(mode === 'resume' && /no complete checkpoint generation|no such run directory/.test(e.message))) throw e; // killed before any generation (or before the folder existed)
    trainer = new Trainer(model, opts);
    result = await trainer.fit(loader());
  }
  const sd = await model.stateDict();
  const hash = createHash('sha256');
  for (const k of Object.keys(sd).sort()) hash.update(k).update(Buffer.from(sd[k].data.buffer, sd[k].data.byteOffset, sd[k].data.byteLength));
  process.stdout.write(`done ${hash.digest('hex')} ${result.history.length}\n`);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
