// One rank of the data-parallel tests (started by `launch`): trains as CONFIG.json says and saves its weights.
// usage: node test/scripts/ddp-rank.js CONFIG.json
// CONFIG: { items: [{path, label}], classes, start (.pth), out (.pth prefix), trainer (TrainerOptions), batchSize, seed }
const { readFileSync } = require('node:fs');
const { DataLoader, ImageList, Model, Trainer, Transform } = require('../..');

(async () => {
  const c = JSON.parse(readFileSync(process.argv[2], 'utf8'));
  const data = ImageList.from(c.items, { transform: Transform.compose([Transform.resize([64, 64]), Transform.toTensor(), Transform.normalize()]) });
  const model = await Model.create({ arch: 'resnet18', numClasses: c.classes.length, classes: c.classes, channelsLast: false });
  await model.loadWeights(c.start);
  const trainer = new Trainer(model, c.trainer);
  const res = await trainer.fit(new DataLoader(data, { batchSize: c.batchSize, shuffle: true, seed: Number(process.env.RANK) === 0 ? c.seed : c.seed + 1000 }));
  await model.save(`${c.out}.rank${process.env.RANK}.pth`);
  process.stdout.write(`${JSON.stringify({ rank: process.env.RANK, history: res.history.map((h) => ({ loss: h.loss, accuracy: h.accuracy })) })}\n`);
  model.dispose();
})().catch((e) => {
  process.stderr.write(`rank ${process.env.RANK}: ${e.stack}\n`);
  process.exit(1);
});
