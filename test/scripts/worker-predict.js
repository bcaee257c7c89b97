// worker_threads body for the robustness test: loads the addon in this worker's environment, predicts, posts back.
const { parentPort, workerData } = require('node:worker_threads');
const { Model } = require('../..');

(async () => {
  const model = await Model.create({ arch: 'squeezenet1_1', weights: workerData.weights });
  const out = [];
  for (let round = 0; round < workerData.rounds; round++) out.push(await model.predict(workerData.images, { topk: 3 }));
  // a data pipeline in the worker too
  const { ImageList, DataLoader, Transform } = require('../..');
  const list = ImageList.from(workerData.images.map((p) => ({ path: p, label: 0 })), { transform: Transform.compose(Transform.resize([32, 32]), Transform.toTensor()) });
  let n = 0;
  for await (const b of new DataLoader(list, { batchSize: 4, workers: 2 })) {
    n += b.size;
    b.dispose();
  }
  model.dispose();
  parentPort.postMessage({ predictions: out, loaded: n });
})().catch((e) => parentPort.postMessage({ error: `${e.code}: ${e.message}` }));
