// Behaviour of the Trainer options that are not optimizer arithmetic (those are bit-checked against torch.optim in
// trainer.test.ts): unfreeze, earlyStopping with restoreBest, monitor, featureCacheViews.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataLoader, ImageFolder, ImageList, InvalidOptionError, Model, ResNet, Trainer, TensorData, Transform } from '../../lib';
import { maxAbsDiff, sharedPath } from '../helpers';

const tmp = mkdtempSync(join(tmpdir(), 'tl-trainer-options-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true })); // checkpoints of ResNets add up over runs
const SQUEEZE = () => sharedPath('weights', 'squeezenet1_1-imagenet.pth');

async function subset(n: number, transform: Transform) {
  const folder = await ImageFolder.open(sharedPath('data', 'hymenoptera', 'val'));
  const pick = folder.samples.filter((_, i) => i % Math.floor(folder.length / n) === 0).slice(0, n);
  return ImageList.from(pick.map((s) => ({ path: s.path, label: folder.classes[s.label] })), { transform });
}
const eval64 = () => Transform.compose([Transform.resize([64, 64]), Transform.toTensor(), Transform.normalize()]);

function changed(a: Record<string, TensorData>, b: Record<string, TensorData>, re: RegExp): { same: string[]; moved: string[] } {
  const keys = Object.keys(a).filter((k) => re.test(k) && !k.endsWith('num_batches_tracked'));
  const moved = keys.filter((k) => a[k].data.some((x, i) => x !== b[k].data[i]));
  return { same: keys.filter((k) => !moved.includes(k)), moved };
}

describe('unfreeze', () => {
  test('at its epoch training extends to the named stage, at lrScale × backboneLr; earlier stages stay fixed', async () => {
    const data = await subset(8, eval64());
    const model = await ResNet.create({ arch: 'resnet18', numClasses: 2, classes: data.classes, channelsLast: false });
    const before = await model.stateDict();
    const trainer = new Trainer(model, { strategy: 'feature-extract', epochs: 3, optimizer: 'sgd', lr: 0.01, backboneLr: 0.004, precision: 'fp32', featureCache: false, unfreeze: [{ epoch: 1, from: 'layer4', lrScale: 0.5 }, { epoch: 2, from: 'layer3' }] });
    const events: { epoch: number; from: string }[] = [];
    const rates: { epoch: number; backbone: number }[] = [];
    trainer.on('unfreeze', (e) => events.push(e));
    trainer.on('batchEnd', (e) => rates.push({ epoch: e.epoch, backbone: e.lr.backbone }));
    const first = await trainer.fit(new DataLoader(data, { batchSize: 4 }));
    expect(events).toEqual([{ epoch: 1, from: 'layer4' }, { epoch: 2, from: 'layer3' }]);
    const fc = 512 * 2 + 2;
    const layer4 = Object.entries(before).filter(([k]) => k.startsWith('layer4.') && !/running_|num_batches/.test(k)).reduce((n, [, t]) => n + t.data.length, 0);
    const layer3 = Object.entries(before).filter(([k]) => k.startsWith('layer3.') && !/running_|num_batches/.test(k)).reduce((n, [, t]) => n + t.data.length, 0);
    expect(first.history.map((h) => h.trainableParameters)).toEqual([fc, fc + layer4, fc + layer4 + layer3]);
    expect(rates.filter((r) => r.epoch === 1).map((r) => r.backbone)).toEqual([0.002, 0.002]);
    expect(rates.filter((r) => r.epoch === 2).map((r) => r.backbone)).toEqual([0.004, 0.004]);
    const after = await model.stateDict();
    const early = changed(before, after, /^(conv1|bn1|layer1|layer2)\./);
    expect(early.moved).toEqual([]);
    expect(early.same.length).toBeGreaterThan(20);
    expect(changed(before, after, /^layer4\.1\.conv2\.weight$/).moved).toHaveLength(1);
    expect(changed(before, after, /^layer3\.0\.conv1\.weight$/).moved).toHaveLength(1);
    expect(() => new Trainer(model, { unfreeze: [{ epoch: 1, from: 'fc' }] })).toThrow(/unfreeze\[0\]\.from/);
    model.dispose();
  });
});

describe('monitor, earlyStopping and restoreBest', () => {
  let data: ImageList;
  let start: string;
  beforeAll(async () => {
    data = await subset(16, eval64());
    const m = await Model.create({ arch: 'squeezenet1_1', numClasses: 2, classes: data.classes, weights: SQUEEZE() });
    start = join(tmp, 'es-start.pth');
    await m.save(start);
    m.dispose();
  });
  const model = async () => {
    const m = await Model.create({ arch: 'squeezenet1_1', numClasses: 2, classes: data.classes, weights: SQUEEZE() });
    await m.loadWeights(start);
    return m;
  };
  const run = async (options: ConstructorParameters<typeof Trainer>[1], withVal = true) => {
    const m = await model();
    const tr = new Trainer(m, { epochs: 4, optimizer: 'sgd', lr: 0.05, precision: 'fp32', seed: 1, ...options });
    const res = await tr.fit(new DataLoader(data, { batchSize: 8, shuffle: true, seed: 3 }), withVal ? new DataLoader(data, { batchSize: 8 }) : undefined);
    return { m, res, sd: await m.stateDict() };
  };

  test('monitor picks the best epoch by its metric and direction', async () => {
    for (const [monitor, pick] of [
      ['valLoss', 'min'],
      ['loss', 'min'],
      ['valAccuracy', 'max'],
      ['accuracy', 'max'],
    ] as const) {
      const { m, res } = await run({ monitor, epochs: 3 });
      const values = res.history.map((h) => h[monitor] as number);
      const best = pick === 'min' ? Math.min(...values) : Math.max(...values);
      expect([monitor, res.best?.value]).toEqual([monitor, best]);
      expect(res.best?.epoch).toBe(values.indexOf(best));
      m.dispose();
    }
    const m = await model();
    await expect(new Trainer(m, { monitor: 'valLoss', epochs: 1 }).fit(new DataLoader(data, { batchSize: 8 }))).rejects.toThrow(InvalidOptionError);
    m.dispose();
  });

  test('earlyStopping stops after `patience` epochs without a minDelta improvement; restoreBest brings back the best weights', async () => {
    // minDelta beyond any change: epoch 0 is the best, epochs 1 and 2 do not improve, patience 2 stops after epoch 2
    const stop = await run({ monitor: 'valLoss', earlyStopping: { patience: 2, minDelta: 1e9 } });
    expect(stop.res.stoppedEarly).toBe(true);
    expect(stop.res.history).toHaveLength(3);
    expect(stop.res.best).toEqual({ epoch: 0, value: stop.res.history[0].valLoss });
    const one = await run({ monitor: 'valLoss', epochs: 1 }); // the weights after epoch 0
    const keep = await run({ monitor: 'valLoss', earlyStopping: { patience: 2, minDelta: 1e9, restoreBest: false } });
    const head = /^classifier\./;
    expect(changed(one.sd, stop.sd, head).moved).toEqual([]); // restored: epoch 0's weights
    expect(changed(one.sd, keep.sd, head).moved.length).toBeGreaterThan(0); // kept: epoch 2's weights
    expect(keep.res.history).toHaveLength(3);
    // the restored model scores what epoch 0 scored
    const tr = new Trainer(stop.m, { precision: 'fp32' });
    expect((await tr.evaluate(new DataLoader(data, { batchSize: 8 }))).loss).toBeCloseTo(stop.res.history[0].valLoss!, 5);
    // without minDelta and a generous patience, it runs to the end
    const full = await run({ earlyStopping: { patience: 10 } });
    expect(full.res.stoppedEarly).toBe(false);
    expect(full.res.history).toHaveLength(4);
    for (const r of [stop, one, keep, full]) r.m.dispose();
  });
});

describe('featureCacheViews', () => {
  test('K augmented views cached: K times the bytes, and epochs < K train exactly as the uncached augmented run', async () => {
    const aug = Transform.compose([Transform.resize([72, 72]), Transform.randomCrop(64), Transform.randomHorizontalFlip(), Transform.toTensor(), Transform.normalize()]);
    const data = await subset(16, aug);
    const start = join(tmp, 'views-start.pth');
    const init = await Model.create({ arch: 'squeezenet1_1', numClasses: 2, classes: data.classes, weights: SQUEEZE() });
    await init.save(start);
    init.dispose();
    const run = async (featureCache: boolean, views?: number) => {
      const m = await Model.create({ arch: 'squeezenet1_1', numClasses: 2, classes: data.classes, weights: SQUEEZE() });
      await m.loadWeights(start);
      const tr = new Trainer(m, { epochs: 2, lr: 1e-2, seed: 3, precision: 'fp32', featureCache, ...(views ? { featureCacheViews: views } : {}) });
      const cacheEvents: { bytes: number; views?: number }[] = [];
      tr.on('featureCache', (e) => cacheEvents.push(e));
      const res = await tr.fit(new DataLoader(data, { batchSize: 8, shuffle: true, seed: 4 }));
      const sd = await m.stateDict();
      m.dispose();
      return { res, sd, cacheEvents };
    };
    const two = await run(true, 2);
    const one = await run(true, 1);
    const none = await run(false);
    expect(two.cacheEvents).toEqual([{ bytes: two.res.history[0].featureCacheBytes, enabled: true, views: 2 }]);
    expect(two.res.history[0].featureCacheBytes).toBe(2 * one.res.history[0].featureCacheBytes);
    expect(none.res.history[0].featureCacheBytes).toBe(0);
    let worst = 0;
    for (const k of Object.keys(two.sd)) worst = Math.max(worst, maxAbsDiff(two.sd[k].data, none.sd[k].data));
    expect(worst).toBeLessThanOrEqual(1e-5);
    // one view repeats epoch 0's augmentation in epoch 1: it differs from the augmented run
    const differs = maxAbsDiff(one.sd['classifier.1.weight'].data, none.sd['classifier.1.weight'].data);
    expect(differs).toBeGreaterThan(1e-5);
  });
});
