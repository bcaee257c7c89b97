// bench:serve's peer: what a Node user writes with onnxruntime-node — a node:http route that runs one
// `session.run` per request on the model's exported ONNX file. Preprocessing is ours (Transform.imagenetEval(), decoded
// and resized on a native thread), so the two services differ only in how they run the model.
// usage: node scripts/bench/serve-ort.mjs MODEL.onnx   (prints "listening PORT")
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { lib } from './common.mjs';

const ort = createRequire(import.meta.url)('onnxruntime-node');
const session = await ort.InferenceSession.create(process.argv[2]);
const transform = lib.Transform.imagenetEval();

const server = createServer(async (req, res) => {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  try {
    const x = await transform.apply(Buffer.concat(chunks));
    const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x.data, [1, ...x.shape]) });
    const logits = out[session.outputNames[0]].data;
    const max = Math.max(...logits);
    const e = Array.from(logits, (l) => Math.exp(l - max));
    const sum = e.reduce((a, b) => a + b, 0);
    const best = e.indexOf(Math.max(...e));
    const body = JSON.stringify({ predictions: [{ index: best, label: String(best), probability: e[best] / sum }] });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
  } catch (err) {
    res.writeHead(500).end(String(err));
  }
});
server.listen(0, '127.0.0.1', () => console.log(`listening ${server.address().port}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
