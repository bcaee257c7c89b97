// The model's own methods beyond forward/save (those are in checkpoint and parity tests): embed, to() and
// test-time augmentation.
import { DataLoader, DeviceError, devices, ImageFolder, ImageList, Model, ResNet, TensorData, Transform } from '../../lib';
import { sharedPath } from '../helpers';

async function subset(n: number, transform: Transform) {
  const folder = await ImageFolder.open(sharedPath('data', 'hymenoptera', 'val'));
  const pick = folder.samples.filter((_, i) => i % Math.floor(folder.length / n) === 0).slice(0, n);
  return ImageList.from(pick.map((s) => ({ path: s.path, label: folder.classes[s.label] })), { transform });
}
const eval64 = () => Transform.compose([Transform.resize([64, 64]), Transform.toTensor(), Transform.normalize()]);

describe('model: embed, to(), test-time augmentation', () => {
  let model: Model;
  let images: TensorData;
  beforeAll(async () => {
    model = await ResNet.create({ arch: 'resnet18', numClasses: 3, channelsLast: false, precision: 'fp32' });
    const data = await subset(4, eval64());
    for await (const b of new DataLoader(data, { batchSize: 4 })) {
      images = b.images();
      b.dispose();
    }
  });
  afterAll(() => model.dispose());

  test('embed gives the pooled features the head maps to the logits', async () => {
    const e = await model.embed(images.data, images.shape);
    expect(e.shape).toEqual([4, 512]);
    expect(model.featureDim).toBe(512);
    const logits = await model.forward(images.data, images.shape);
    const sd = await model.stateDict();
    const [w, b] = [sd['fc.weight'].data, sd['fc.bias'].data];
    let worst = 0;
    for (let n = 0; n < 4; n++)
      for (let c = 0; c < 3; c++) {
        let z = b[c];
        for (let k = 0; k < 512; k++) z += w[c * 512 + k] * e.data[n * 512 + k];
        worst = Math.max(worst, Math.abs(z - logits.data[n * 3 + c]));
      }
    expect(worst).toBeLessThanOrEqual(1e-4);
  });

  test('to(): cpu works; a missing CUDA device or a bad name is a DeviceError listing the devices', async () => {
    await expect(model.to('cpu')).resolves.toBe(model);
    expect(model.device).toBe('cpu');
    if (!devices().includes('cuda:0')) await expect(model.to('cuda:0')).rejects.toThrow(DeviceError);
    await expect(model.to('tpu')).rejects.toThrow(/available devices: cpu/);
    expect(model.device).toBe('cpu');
  });

  test('tta: predictions average the logits of the image and its horizontal flip', async () => {
    const [n, c, h, w] = images.shape;
    const flipped = new Float32Array(images.data.length);
    for (let i = 0; i < n * c * h; i++) for (let x = 0; x < w; x++) flipped[i * w + x] = images.data[i * w + w - 1 - x];
    const a = await model.forward(images.data, images.shape);
    const b = await model.forward(flipped, images.shape);
    const data = await subset(4, eval64());
    const preds = await model.predict(data.samples.map((s) => s.path), { tta: true, topk: 3, transform: eval64(), precision: 'fp32', fastDecodeMinSide: 0 });
    const plain = await model.predict(data.samples.map((s) => s.path), { topk: 3, transform: eval64(), precision: 'fp32', fastDecodeMinSide: 0 });
    let worst = 0;
    let plainDiff = 0;
    for (let k = 0; k < n; k++) {
      const z = [0, 1, 2].map((j) => (a.data[k * 3 + j] + b.data[k * 3 + j]) / 2);
      const m = Math.max(...z);
      const p = z.map((x) => Math.exp(x - m));
      const s = p.reduce((x, y) => x + y);
      for (const q of preds[k]) worst = Math.max(worst, Math.abs(q.probability - p[q.index] / s));
      for (const q of plain[k]) plainDiff = Math.max(plainDiff, Math.abs(q.probability - p[q.index] / s));
    }
    expect(worst).toBeLessThanOrEqual(1e-5);
    expect(plainDiff).toBeGreaterThan(1e-5); // without tta the probabilities differ
  });
});
