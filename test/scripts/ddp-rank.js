// One rank of the data-parallel tests (started by `launch`): trains as CONFIG.json says and saves its weights.
// usage: node test/scripts/ddp-rank.js CONFIG.json
// CONFIG: { items: [{path, label}], classes, start (.pth), out (.pth prefix), trainer (TrainerOptions), batchSize, seed,
//          device (optional; 'cuda' is cuda:$LOCAL_RANK) }
// TL_KILL_AT=rank:epoch:batch kills that rank after that batch.
const { readFileSync } = require('node:fs');
const { DataLoader, ImageList, Model, Trainer, Transform, rankDevice } = require('../..');

(async () => {
  const c = JSON.parse(readFileSync(process.argv[2], 'utf8'));
  const data = ImageList.from(c.items, { transform: Transform.compose([Transform.resize([64, 64]), Transform.toTensor(), Transform.normalize()]) });
  const model = await Model.create({ arch: 'resnet18', numClasses: c.classes.length, classes: c.classes, channelsLast: false, device: rankDevice(c.device) });
  await model.loadWeights(c.start);
  const trainer = new Trainer(model, c.trainer);
  // TL_KILL_AT=rank:epoch:batch: that rank dies (SIGKILL) after that batch, as a crashed host would
  const [kr, ke, kb] = (process.env.TL_KILL_AT ?? '').split(':').map(Number);
  if (process.env.TL_KILL_AT && Number(process.env.RANK) === kr)
    trainer.on('batchEnd', (e) => e.epoch === ke && e.batch === kb && process.kill(process.pid, 'SIGKILL'));
  const res = await trainer.fit(new DataLoader(data, { batchSize: c.batchSize, shuffle: true, seed: Number(process.env.RANK) === 0 ? c.seed : c.seed + 1000 }));
  await model.save(`${c.out}.rank${process.env.RANK}.pth`);
  process.stdout.write(`${JSON.stringify({ rank: process.env.RANK, history: res.history.map((h) => ({ loss: h.loss, accuracy: h.accuracy, allReduce: h.allReduce })) })}\n`);
  model.dispose();
})().catch((e) => {
  process.stderr.write(`rank ${process.env.RANK}: ${e.code ?? ''} ${e.stack}\n`);
  process.exit(1);
});
