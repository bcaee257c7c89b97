// Dynamic loss scaling (the fp16 GradScaler) on the CPU: its maths do not depend on the precision, so they are
// checked here at fp32 — exact unscaling at power-of-two scales, skipped steps and back-off on overflow, growth
// after growthInterval clean steps — plus the typed errors for fp16 without CUDA and for host out-of-memory.
import { join } from 'node:path';
import { readdirSync } from 'node:fs';
import { DataLoader, ImageList, InvalidOptionError, Model, OutOfMemoryError, Trainer, Transform, manualSeed } from '../../lib';
import { maxAbsDiff, sharedPath } from '../helpers';

const files = () => {
  const dir = sharedPath('data', 'hymenoptera', 'train', 'ants');
  const bees = sharedPath('data', 'hymenoptera', 'train', 'bees');
  const pick = (d: string) => readdirSync(d).filter((f) => f.endsWith('.jpg')).sort().slice(0, 4).map((f) => join(d, f));
  return [...pick(dir).map((path) => ({ path, label: 0 })), ...pick(bees).map((path) => ({ path, label: 1 }))];
};
const loader = () =>
  new DataLoader(ImageList.from(files(), { transform: Transform.compose(Transform.resize(64), Transform.centerCrop(64), Transform.toTensor(), Transform.normalize()) }), {
    batchSize: 4,
    workers: 1,
  });

async function train(lossScale: unknown, epochs: number) {
  manualSeed(7);
  const model = await Model.create({ arch: 'squeezenet1_1', weights: null, numClasses: 2, precision: 'fp32' });
  const before = await model.stateDict();
  const trainer = new Trainer(model, { strategy: 'full', optimizer: 'sgd', lr: 0.01, momentum: 0, epochs, precision: 'fp32', lossScale: lossScale as never });
  const { history } = await trainer.fit(loader());
  const after = await model.stateDict();
  model.dispose();
  return { before, after, history };
}

const worst = (a: Record<string, { data: Float32Array }>, b: Record<string, { data: Float32Array }>) =>
  Math.max(...Object.keys(a).map((k) => maxAbsDiff(a[k].data, b[k].data)));

describe('loss scaling', () => {
  test('a power-of-two scale is undone exactly: the same weights as training without it', async () => {
    const plain = await train(undefined, 1);
    const scaled = await train({ initScale: 1024 }, 1);
    expect(plain.history[0].lossScale).toBeUndefined();
    expect(scaled.history[0]).toMatchObject({ lossScale: 1024, skippedSteps: 0 });
    expect(worst(plain.before, plain.after)).toBeGreaterThan(0); // it trained
    const d = worst(plain.after, scaled.after);
    console.log(`loss scale 1024 vs none: max |Δweight| ${d}`);
    expect(d).toBeLessThanOrEqual(1e-7);
  });

  test('overflowing scale: steps are skipped (weights untouched) and the scale backs off by half each time', async () => {
    // 2^130 and 2^129 overflow float32 for any loss: both steps of the epoch must be skipped
    const r = await train({ initScale: 2 ** 130, growthInterval: 1 }, 1);
    expect(r.history[0].skippedSteps).toBe(2);
    expect(r.history[0].lossScale).toBe(2 ** 128);
    expect(worst(r.before, r.after)).toBe(0);
  });

  test('the scale grows by growthFactor after growthInterval clean steps', async () => {
    const r = await train({ initScale: 1, growthInterval: 2, growthFactor: 2 }, 2); // 2 steps per epoch
    expect(r.history.map((h) => [h.lossScale, h.skippedSteps])).toEqual([
      [2, 0],
      [4, 0],
    ]);
  });

  test('bad options and fp16 without CUDA are InvalidOptionErrors', async () => {
    const model = await Model.create({ arch: 'squeezenet1_1', weights: null, numClasses: 2 });
    try {
      expect(() => new Trainer(model, { lossScale: { growthFactor: 1 } })).toThrow(/lossScale.growthFactor/);
      expect(() => new Trainer(model, { lossScale: { initScale: -1 } })).toThrow(InvalidOptionError);
      expect(() => new Trainer(model, { lossScale: { scale: 2 } as never })).toThrow(/scale/);
      expect(() => new Trainer(model, { precision: 'fp16' })).toThrow(/'fp16' needs a CUDA device/);
    } finally {
      model.dispose();
    }
  });
});

describe('out of memory', () => {
  test('a host allocation that cannot be served is an OutOfMemoryError and the process carries on', async () => {
    const photo = files()[0].path;
    // a 100000-pixel shorter side: ~40 GB of uint8 output, more than this machine can map
    const err = await Transform.resize(100000).apply(photo).catch((e) => e);
    expect(err).toBeInstanceOf(OutOfMemoryError);
    expect(err.code).toBe('ERR_OUT_OF_MEMORY');
    expect((await Transform.resize(32).apply(photo)).shape[1]).toBe(32);
    // the same inside a DataLoader's worker thread: not mislabelled as a DatasetError
    const ds = ImageList.from([{ path: photo, label: 0 }], { transform: Transform.resize(100000) });
    const fromLoader = await (async () => {
      for await (const b of new DataLoader(ds, { batchSize: 1, workers: 1 })) b.dispose();
    })().catch((e) => e);
    expect(fromLoader).toBeInstanceOf(OutOfMemoryError);
  });
});
