// Few-shot classes without training (model.withPrototypes): accuracy from 5 examples per class with squeezenet1_1's
// real ImageNet features, predictions equal to the nearest prototype computed here from the embeddings, save/load and
// ONNX export of the prototype head, adding and replacing a class in one call, and the errors.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointError, DatasetError, InvalidOptionError, Model, Transform } from '../../lib';
import { seededSample } from '../../lib/random';
import { PYTHON, ROOT, sharedPath } from '../helpers';

const tmp = mkdtempSync(join(tmpdir(), 'tl-proto-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const root = () => sharedPath('data', 'hymenoptera');
const files = (split: string, c: string) => readdirSync(join(root(), split, c)).filter((f) => /\.(jpe?g|png)$/i.test(f)).sort().map((f) => join(root(), split, c, f));
const CLASSES = ['ants', 'bees'];
let base: Model;

beforeAll(async () => {
  base = await Model.create({ arch: 'squeezenet1_1', weights: sharedPath('weights', 'squeezenet1_1-imagenet.pth'), precision: 'fp32' });
});

const draw = seededSample;

const accuracy = async (m: Model, val: { path: string; label: string }[]) => {
  const preds = await m.predict(val.map((s) => s.path), { topk: 1 });
  return preds.filter((p, i) => p[0].label === val[i].label).length / val.length;
};

test('5 examples per class of ants/bees, 5 seeded draws: mean accuracy on every validation photo >= 0.75', async () => {
  const val = CLASSES.flatMap((c) => files('val', c).map((path) => ({ path, label: c })));
  const accs: number[] = [];
  for (let d = 0; d < 5; d++) {
    const m = await base.withPrototypes(Object.fromEntries(CLASSES.map((c, ci) => [c, draw(files('train', c), 5, 5000 + 10 * d + ci)])));
    expect(m.classes).toEqual(CLASSES);
    expect(m.head).toBe('linear');
    expect(m.prototypes?.examples).toEqual({ ants: 5, bees: 5 });
    accs.push(await accuracy(m, val));
    m.dispose();
  }
  const mean = accs.reduce((a, b) => a + b, 0) / accs.length;
  console.log(`5-shot ants/bees over ${val.length} val photos: ${accs.map((a) => a.toFixed(3)).join(', ')} (mean ${mean.toFixed(3)})`);
  expect(mean).toBeGreaterThanOrEqual(0.75);
});

test('predictions are the nearest prototype (cosine of the embeddings, computed here); the source model is unchanged; save/load and ONNX keep them', async () => {
  const support = { ants: files('train', 'ants').slice(0, 4), bees: files('train', 'bees').slice(0, 4) };
  const query = [...files('val', 'ants').slice(0, 12), ...files('val', 'bees').slice(0, 12)];
  const before = await base.predict(query.slice(0, 4), { topk: 3 });
  const m = await base.withPrototypes(support);
  expect(await base.predict(query.slice(0, 4), { topk: 3 })).toEqual(before);
  expect(base.prototypes).toBeUndefined();
  // embeddings of the base model, exact decoding as in the loader that built the prototypes
  const embed = async (paths: string[]) => {
    const xs = await Promise.all(paths.map((p) => Transform.imagenetEval().apply(p)));
    const data = new Float32Array(xs.length * 3 * 224 * 224);
    xs.forEach((x, i) => data.set(x.data as Float32Array, i * 3 * 224 * 224));
    const e = await base.embed(data, [xs.length, 3, 224, 224], { precision: 'fp32' });
    const d = e.shape[1];
    return Array.from({ length: xs.length }, (_, i) => {
      const row = Array.from((e.data as Float32Array).subarray(i * d, (i + 1) * d));
      const n = Math.hypot(...row);
      return row.map((x) => x / n);
    });
  };
  const protos = await Promise.all(
    CLASSES.map(async (c) => {
      const zs = await embed(support[c as 'ants' | 'bees']);
      const mean = zs[0].map((_, j) => zs.reduce((s, z) => s + z[j], 0) / zs.length);
      const n = Math.hypot(...mean);
      return mean.map((x) => x / n);
    }),
  );
  const zq = await embed(query);
  const cos = zq.map((z) => protos.map((p) => z.reduce((s, x, j) => s + x * p[j], 0)));
  const preds = (await m.predict(query, { topk: 2, fastDecodeMinSide: 0 })) as { label: string; probability: number }[][];
  const scale = m.prototypes!.scale;
  let worstP = 0;
  preds.forEach((p, i) => {
    const margin = Math.abs(cos[i][0] - cos[i][1]);
    if (margin > 1e-4) expect(p[0].label).toBe(CLASSES[cos[i][0] > cos[i][1] ? 0 : 1]);
    // probabilities: softmax(s·cos·|x|/r) — the order of s·cos, within the spread of the embedding norms
    const pAnts = p.find((x) => x.label === 'ants')!.probability;
    const ref = 1 / (1 + Math.exp(-scale * (cos[i][0] - cos[i][1])));
    worstP = Math.max(worstP, Math.abs(pAnts - ref));
  });
  console.log(`prototype head: scale ${scale.toFixed(2)}, leave-one-out accuracy ${m.prototypes!.looAccuracy}, largest |p - softmax(s·cos)| ${worstP.toFixed(3)}`);
  expect(worstP).toBeLessThan(0.25);
  expect(scale).toBeGreaterThan(1);

  // save / load: the same predictions and the prototype record
  const file = join(tmp, 'few.pth');
  await m.save(file);
  const loaded = await Model.load(file, { precision: 'fp32' });
  expect(loaded.classes).toEqual(CLASSES);
  expect(loaded.prototypes).toEqual(m.prototypes);
  expect(await loaded.predict(query, { topk: 2, fastDecodeMinSide: 0 })).toEqual(preds);
  // PyTorch reads it back as a plain state dict with a Linear head
  const keys = execFileSync(PYTHON, ['-c', 'import torch, sys; sd = torch.load(sys.argv[1]); print(list(sd["classifier.1.weight"].shape), "classifier.1.bias" in sd)', file], { encoding: 'utf8' }).trim();
  expect(keys).toBe('[2, 512] True');

  // ONNX: onnxruntime-node gives the head's logits
  const onnx = join(tmp, 'few.onnx');
  await m.exportOnnx(onnx);
  const x = (await Transform.imagenetEval().apply(query[0])).data as Float32Array;
  writeFileSync(join(tmp, 'x.f32'), x);
  execFileSync(process.execPath, [join(ROOT, 'test', 'scripts', 'ort-run.js'), onnx, join(tmp, 'y'), `${join(tmp, 'x.f32')}:1x3x224x224`], { encoding: 'utf8' });
  const b = readFileSync(join(tmp, 'y-0.f32'));
  const theirs = Array.from(new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4));
  const ours = Array.from((await m.forward(x, [1, 3, 224, 224], { precision: 'fp32' })).data as Float32Array);
  const s = Math.max(...ours.map(Math.abs));
  expect(Math.max(...ours.map((o, i) => Math.abs(o - theirs[i]))) / s).toBeLessThan(1e-4);
  m.dispose();
  loaded.dispose();
});

test('adding a class keeps the other rows bit for bit; replacing one changes only its row; keep: false starts over', async () => {
  const m = await base.withPrototypes({ ants: files('train', 'ants').slice(0, 5), bees: files('train', 'bees').slice(0, 5) });
  const w = async (x: Model) => (await x.stateDict())['classifier.1.weight'].data as Float32Array;
  const w0 = await w(m);
  const imagenet = sharedPath('data', 'imagenet-samples');
  const photos = readdirSync(imagenet).filter((f) => /\.jpe?g$/i.test(f)).sort().slice(0, 6).map((f) => join(imagenet, f));
  const wider = await m.withPrototypes({ other: photos.slice(0, 5) });
  expect(wider.classes).toEqual(['ants', 'bees', 'other']);
  expect(wider.prototypes?.examples).toEqual({ ants: 5, bees: 5, other: 5 });
  const w1 = await w(wider);
  expect(Array.from(w1.subarray(0, 2 * 512))).toEqual(Array.from(w0));
  // the new class's own examples are closest to it
  const own = await wider.predict(photos.slice(0, 5), { topk: 1 });
  expect(own.filter((p) => p[0].label === 'other').length).toBeGreaterThanOrEqual(4);

  const replaced = await wider.withPrototypes({ ants: files('train', 'ants').slice(10, 15) });
  expect(replaced.classes).toEqual(['ants', 'bees', 'other']);
  const w2 = await w(replaced);
  expect(Array.from(w2.subarray(512))).toEqual(Array.from(w1.subarray(512)));
  expect(Array.from(w2.subarray(0, 512))).not.toEqual(Array.from(w1.subarray(0, 512)));

  const fresh = await wider.withPrototypes({ x: photos.slice(0, 2), y: photos.slice(2, 4) }, { keep: false, scale: 20 });
  expect(fresh.classes).toEqual(['x', 'y']);
  expect(fresh.prototypes?.scale).toBe(20);
  for (const x of [m, wider, replaced, fresh]) x.dispose();
});

test('bad input: a clear error naming the option or file, nothing created', async () => {
  const a = files('train', 'ants').slice(0, 2);
  await expect(base.withPrototypes({})).rejects.toThrow(InvalidOptionError);
  await expect(base.withPrototypes({ ants: a })).rejects.toThrow(/at least 2 classes/);
  await expect(base.withPrototypes({ ants: a, bees: [] })).rejects.toThrow(/examples\["bees"\]/);
  await expect(base.withPrototypes({ ants: a, bees: [42 as unknown as string] })).rejects.toThrow(/examples\["bees"\]\[0\]/);
  await expect(base.withPrototypes({ ants: a, bees: a }, { keep: true })).rejects.toThrow(/keep/);
  await expect(base.withPrototypes({ ants: a, bees: a }, { scale: -1 })).rejects.toThrow(/scale/);
  await expect(base.withPrototypes({ ants: a, bees: a }, { bogus: 1 } as never)).rejects.toThrow(/bogus/);
  const bad = join(tmp, 'corrupt.jpg');
  writeFileSync(bad, Buffer.from('not a jpeg at all'));
  await expect(base.withPrototypes({ ants: a, bees: [bad] })).rejects.toThrow(DatasetError);
  await expect(base.withPrototypes({ ants: a, bees: [bad] })).rejects.toThrow(/corrupt\.jpg/);
  // a file whose prototype record is malformed is refused on load, naming the file and the field
  const m = await base.withPrototypes({ ants: a, bees: files('train', 'bees').slice(0, 2) });
  const file = join(tmp, 'bad-meta.pth');
  await m._handle().save(file, { format: 'torch-resnet-tl/1', arch: 'squeezenet1_1', num_classes: '2', head: 'linear', prototypes: '{"scale": "big"}' });
  await expect(Model.load(file)).rejects.toThrow(CheckpointError);
  await expect(Model.load(file)).rejects.toThrow(/bad-meta\.pth: metadata "prototypes"/);
  m.dispose();
});
