// Runs an ONNX file with onnxruntime-node in plain Node (jest's sandbox gives typed arrays of another realm, which
// onnxruntime refuses): ort-run.js MODEL.onnx OUT_PREFIX N1.f32:SHAPE [N2.f32:SHAPE ...]. For each input file
// (raw float32, SHAPE like 3x3x64x64) writes OUT_PREFIX-K.f32 with the logits; prints {inputs, outputs, dims}.
const { readFileSync, writeFileSync } = require('node:fs');
const ort = require('onnxruntime-node');

(async () => {
  const [model, prefix, ...inputs] = process.argv.slice(2);
  const session = await ort.InferenceSession.create(model);
  const dims = [];
  for (const [k, spec] of inputs.entries()) {
    const [file, shape] = spec.split(':');
    const b = readFileSync(file);
    const x = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x, shape.split('x').map(Number)) });
    const y = out[session.outputNames[0]];
    writeFileSync(`${prefix}-${k}.f32`, Buffer.from(y.data.buffer, y.data.byteOffset, y.data.byteLength));
    dims.push(y.dims);
  }
  console.log(JSON.stringify({ inputs: session.inputNames, outputs: session.outputNames, dims }));
  await session.release();
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
