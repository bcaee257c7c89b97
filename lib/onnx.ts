// ONNX export: the model's eval-mode forward pass, described natively as ONNX operators with PyTorch's parameter
// names (cpp/export/graph.h), encoded here with onnx's published protobuf schema (the onnx-proto package, generated
// by protobufjs from onnx.proto) and written atomically.
import { onnx } from 'onnx-proto';
import { extname, resolve as resolvePath } from 'node:path';
import { writeFileDurable } from './durable';
import type { Model } from './model';
import { packageVersion } from './native';
import { IMAGENET_MEAN, IMAGENET_STD } from './transform';
import * as v from './validate';

export interface OnnxExportOptions {
  /** Operator set version, 13–21. Default 17. */
  opset?: number;
  /** A symbolic batch dimension (`'batch'`): one file for any batch size. Default true; false fixes it to `batchSize`. */
  dynamicBatch?: boolean;
  /** Batch size of a fixed-batch export. Default 1. */
  batchSize?: number;
}

/** `exportOnnx`'s defaults (defined here only). */
export const ONNX_DEFAULTS = { opset: 17, dynamicBatch: true, batchSize: 1 };

/** IR version matching an opset (onnx's versioning table). */
function irVersionFor(opset: number): number {
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  return 10;
}

const { AttributeType } = onnx.AttributeProto;

/** @internal Writes `model` as an ONNX file; the input is `input` `[batch, 3, height, width]` float32, normalised as the model's training data. */
export async function exportOnnx(model: Model, path: string, options: OnnxExportOptions = {}): Promise<{ path: string; bytes: number; nodes: number; opset: number }> {
  v.nonEmptyString('path', path);
  if (extname(path).toLowerCase() !== '.onnx') throw v.invalid('path', 'a file name ending in .onnx', path);
  const o = v.plainObject('options', options);
  v.knownKeys('options', o, ['opset', 'dynamicBatch', 'batchSize']);
  const opset = options.opset === undefined ? ONNX_DEFAULTS.opset : v.positiveInt('opset', options.opset);
  if (opset < 13 || opset > 21) throw v.invalid('opset', 'integer in 13..21', opset);
  const dynamicBatch = options.dynamicBatch === undefined ? ONNX_DEFAULTS.dynamicBatch : v.bool('dynamicBatch', options.dynamicBatch);
  if (options.batchSize !== undefined && dynamicBatch) throw v.invalid('batchSize', 'no batchSize with dynamicBatch (or dynamicBatch: false)', options.batchSize);
  const batchSize = options.batchSize === undefined ? ONNX_DEFAULTS.batchSize : v.positiveInt('batchSize', options.batchSize);
  const g = await model._run((h) => h.exportGraph('input'));
  const output = 'logits';
  const nodes = g.nodes.map((n) => ({
    opType: n.op,
    name: n.name,
    input: n.inputs,
    output: n.outputs.map((x) => (x === g.output ? output : x)),
    attribute: [
      ...Object.entries(n.ints).map(([name, ints]) => ({ name, type: AttributeType.INTS, ints })),
      ...Object.entries(n.intAttrs).map(([name, i]) => ({ name, type: AttributeType.INT, i })),
      ...Object.entries(n.floatAttrs).map(([name, f]) => ({ name, type: AttributeType.FLOAT, f })),
    ],
  }));
  const initializer = g.initializers.map((t) => {
    const data = t.data as Float32Array;
    return { name: t.name, dims: t.shape, dataType: onnx.TensorProto.DataType.FLOAT, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  });
  const batch = dynamicBatch ? { dimParam: 'batch' } : { dimValue: batchSize };
  const tensor = (dims: ({ dimParam: string } | { dimValue: number })[]) => ({ tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: dims } } });
  const proto = onnx.ModelProto.create({
    irVersion: irVersionFor(opset),
    opsetImport: [{ domain: '', version: opset }],
    producerName: 'torch-resnet-tl',
    producerVersion: packageVersion(),
    docString: `${model.arch} (${model.head} head), ${model.numClasses} classes. Input: RGB float32 [batch, 3, height, width], values in [0, 1] normalised with mean ${JSON.stringify(IMAGENET_MEAN)} and std ${JSON.stringify(IMAGENET_STD)}. Output: logits [batch, ${model.numClasses}].`,
    graph: onnx.GraphProto.create({
      name: model.arch,
      node: nodes,
      initializer,
      input: [{ name: 'input', type: tensor([batch, { dimValue: 3 }, { dimParam: 'height' }, { dimParam: 'width' }]) }],
      output: [{ name: output, type: tensor([batch, { dimValue: model.numClasses }]) }],
    }),
    metadataProps: [
      { key: 'arch', value: model.arch },
      { key: 'head', value: model.head },
      { key: 'num_classes', value: String(model.numClasses) },
      ...(model.classes ? [{ key: 'classes', value: JSON.stringify(model.classes) }] : []),
      { key: 'mean', value: JSON.stringify(IMAGENET_MEAN) },
      { key: 'std', value: JSON.stringify(IMAGENET_STD) },
    ],
  });
  const bytes = onnx.ModelProto.encode(proto).finish();
  const abs = resolvePath(path);
  await writeFileDurable(abs, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  return { path: abs, bytes: bytes.byteLength, nodes: nodes.length, opset };
}
