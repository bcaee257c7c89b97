// Deferred ("device") augmentation: the loader threads decode and crop, the pixel-wise random tail of the transform
// and MixUp/CutMix run batched on the consumer's device. On a CUDA model that is the GPU; the ATen code is the same on
// CPU tensors, so here it is checked against the per-sample path (same seeds, same draws) with the decoder/resize
// tolerance of one grey level.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { DataLoader, ImageList, Model, Trainer, Transform, manualSeed } from '../../lib';
import { diffStats, sharedPath } from '../helpers';

const items = () => {
  const root = sharedPath('data', 'hymenoptera', 'train');
  return ['ants', 'bees'].flatMap((c) =>
    readdirSync(join(root, c))
      .filter((f) => f.endsWith('.jpg'))
      .sort()
      .slice(0, 12)
      .map((f) => ({ path: join(root, c, f), label: c })),
  );
};
const STD_MIN = 0.224;
const LEVEL = 1 / 255 / STD_MIN; // one grey level after normalize, at the smallest std

const heavy = () =>
  Transform.compose(
    Transform.randomResizedCrop(72),
    Transform.randomHorizontalFlip(),
    Transform.randomVerticalFlip(0.3),
    Transform.colorJitter({ brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 }),
    Transform.randomGrayscale(0.3),
    Transform.toTensor(),
    Transform.normalize(),
    Transform.randomErasing({ p: 0.6 }),
  );

async function batches(deviceAugment: boolean, transform: Transform, extra: Record<string, unknown> = {}) {
  const ds = ImageList.from(items(), { transform, classes: ['ants', 'bees'] });
  const loader = new DataLoader(ds, { batchSize: 8, shuffle: true, seed: 11, workers: 2, deviceAugment, ...extra });
  const out: { images: Float32Array; labels: Float32Array | Int32Array }[] = [];
  for await (const b of loader) {
    out.push({ images: Float32Array.from(b.images().data), labels: b.labels().data });
    b.dispose();
  }
  return out;
}

const compare = (a: ArrayLike<number>, b: ArrayLike<number>) => diffStats(a, b);

describe('deviceAugment', () => {
  test('flips, colour jitter (all four), grayscale, toTensor, normalize, erasing: batched = per sample', async () => {
    const ref = await batches(false, heavy());
    const dev = await batches(true, heavy());
    expect(dev.length).toBe(3);
    let worst = 0;
    let same = 1;
    for (let i = 0; i < ref.length; i++) {
      const c = compare(ref[i].images, dev[i].images);
      worst = Math.max(worst, c.max);
      same = Math.min(same, c.same);
      expect(Array.from(dev[i].labels)).toEqual(Array.from(ref[i].labels));
    }
    console.log(`deferred vs per-sample: max |Δ| ${worst.toExponential(2)} (${(worst / LEVEL).toFixed(2)} grey levels), identical values ≥ ${(100 * same).toFixed(3)} %`);
    expect(worst).toBeLessThanOrEqual(LEVEL * 1.01);
    expect(same).toBeGreaterThan(0.999);
  });

  test('MixUp and CutMix: the same mixed images and soft labels', async () => {
    const t = Transform.compose(Transform.randomResizedCrop(64), Transform.randomHorizontalFlip(), Transform.toTensor(), Transform.normalize());
    const extra = { mixup: { alpha: 0.4 }, cutmix: { alpha: 1.0 } };
    const ref = await batches(false, t, extra);
    const dev = await batches(true, t, extra);
    for (let i = 0; i < ref.length; i++) {
      expect(compare(ref[i].images, dev[i].images).max).toBeLessThanOrEqual(1e-5);
      expect(compare(ref[i].labels as Float32Array, dev[i].labels as Float32Array).max).toBeLessThanOrEqual(1e-7);
    }
  });

  test('a Trainer consumes deferred batches (CPU model: same losses as the per-sample path)', async () => {
    const run = async (deviceAugment: boolean) => {
      manualSeed(1);
      const model = await Model.create({ arch: 'squeezenet1_1', weights: null, classes: ['ants', 'bees'], precision: 'fp32' });
      const trainer = new Trainer(model, { strategy: 'full', epochs: 1, optimizer: 'sgd', lr: 0.01, seed: 5 });
      const ds = ImageList.from(items(), { transform: heavy(), classes: ['ants', 'bees'] });
      const { history } = await trainer.fit(new DataLoader(ds, { batchSize: 8, shuffle: true, seed: 2, deviceAugment }));
      model.dispose();
      return history[0].loss;
    };
    const a = await run(false);
    const b = await run(true);
    expect(Number.isFinite(a)).toBe(true);
    expect(Math.abs(a - b)).toBeLessThanOrEqual(1e-3 * Math.abs(a));
  });

  test("'auto' stays per-sample for a CPU model; bad values are rejected", async () => {
    const ds = ImageList.from(items(), { transform: heavy(), classes: ['ants', 'bees'] });
    const loader = new DataLoader(ds, { batchSize: 8 });
    expect(loader.deviceAugment).toBe('auto');
    expect(() => new DataLoader(ds, { deviceAugment: 'gpu' as never })).toThrow(/deviceAugment/);
  });
});
