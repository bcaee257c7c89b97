// Trainer: real transfer on hymenoptera, freezing, optimizer parity with PyTorch, resume, options, responsiveness.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataLoader, ImageFolder, ImageList, InvalidOptionError, Model, ResNet, Trainer, TrainerOptions, Transform, readStateDict, TensorData } from '../../lib';
import { PYTHON, maxAbsDiff, sharedPath } from '../helpers';

const SQUEEZE = () => sharedPath('weights', 'squeezenet1_1-imagenet.pth');
const tmp = mkdtempSync(join(tmpdir(), 'tl-trainer-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true })); // checkpoints of ResNets add up over runs

async function small(n: number, size = 64) {
  const folder = await ImageFolder.open(sharedPath('data', 'hymenoptera', 'val'));
  const pick = folder.samples.filter((_, i) => i % Math.floor(folder.length / n) === 0).slice(0, n);
  return ImageList.from(
    pick.map((s) => ({ path: s.path, label: folder.classes[s.label] })),
    { transform: Transform.compose(Transform.resize([size, size]), Transform.toTensor(), Transform.normalize()) },
  );
}

function sameTensors(a: Record<string, TensorData>, b: Record<string, TensorData>, keys: string[]): string[] {
  return keys.filter((k) => maxAbsDiff(a[k].data, b[k].data) !== 0);
}

describe('real transfer: squeezenet1_1 ImageNet weights on hymenoptera', () => {
  let train: ImageFolder;
  let val: ImageFolder;
  beforeAll(async () => {
    train = await ImageFolder.open(sharedPath('data', 'hymenoptera', 'train'), { transform: Transform.imagenetTrain() });
    val = await ImageFolder.open(sharedPath('data', 'hymenoptera', 'val'), { transform: Transform.imagenetEval() });
  });

  test('feature-extract reaches val top-1 >= 0.90 and leaves the backbone bit-identical', async () => {
    const model = await Model.create({ arch: 'squeezenet1_1', numClasses: 2, classes: train.classes, weights: SQUEEZE() });
    const before = await model.stateDict();
    const trainer = new Trainer(model, { strategy: 'feature-extract', epochs: 4, lr: 1e-3, seed: 0 });
    const res = await trainer.fit(new DataLoader(train, { batchSize: 32, shuffle: true, seed: 0 }), new DataLoader(val, { batchSize: 32 }));
    const acc = Math.max(...res.history.map((h) => h.valAccuracy ?? 0));
    console.log(`feature-extract val top-1 per epoch: ${res.history.map((h) => h.valAccuracy?.toFixed(3)).join(', ')}; seconds/epoch ${res.history.map((h) => h.seconds.toFixed(1)).join(', ')}`);
    expect(acc).toBeGreaterThanOrEqual(0.9);
    const after = await model.stateDict();
    const backbone = Object.keys(before).filter((k) => !k.startsWith('classifier.1.'));
    expect(sameTensors(before, after, backbone)).toEqual([]);
    expect(maxAbsDiff(before['classifier.1.weight'].data, after['classifier.1.weight'].data)).toBeGreaterThan(0);
    const report = await trainer.evaluate(new DataLoader(val, { batchSize: 32 }));
    expect(report.count).toBe(153);
    expect(report.perClass.map((c) => c.class)).toEqual(['ants', 'bees']);
    expect(report.confusion.flat().reduce((a, b) => a + b, 0)).toBe(153);
    expect(report.perClass[0].support + report.perClass[1].support).toBe(153);
    model.dispose();
  });

  test('full fine-tuning from the same weights reaches >= 0.88', async () => {
    const model = await Model.create({ arch: 'squeezenet1_1', numClasses: 2, classes: train.classes, weights: SQUEEZE() });
    const trainer = new Trainer(model, { strategy: 'full', epochs: 4, lr: 1e-3, backboneLr: 1e-4, seed: 0 });
    const res = await trainer.fit(new DataLoader(train, { batchSize: 32, shuffle: true, seed: 0 }), new DataLoader(val, { batchSize: 32 }));
    const acc = Math.max(...res.history.map((h) => h.valAccuracy ?? 0));
    console.log(`full fine-tuning val top-1 per epoch: ${res.history.map((h) => h.valAccuracy?.toFixed(3)).join(', ')}`);
    expect(acc).toBeGreaterThanOrEqual(0.88);
    model.dispose();
  });
});

describe('freezing', () => {
  test('partial from layer3: exactly the layers before it (BatchNorm statistics included) are unchanged', async () => {
    const data = await small(16);
    const model = await ResNet.create({ arch: 'resnet18', numClasses: 2, classes: data.classes });
    const before = await model.stateDict();
    const trainer = new Trainer(model, { strategy: 'partial', trainFrom: 'layer3', epochs: 1, optimizer: 'sgd', lr: 0.01 });
    expect(await trainer.trainableParameters()).toBeLessThan(model.parameterCount());
    await trainer.fit(new DataLoader(data, { batchSize: 8, shuffle: true, seed: 1 }));
    const after = await model.stateDict();
    const keys = Object.keys(before);
    const frozen = keys.filter((k) => /^(conv1|bn1|layer1|layer2)\./.test(k));
    const trained = keys.filter((k) => /^(layer3|layer4|fc)\./.test(k) && !k.endsWith('num_batches_tracked'));
    expect(frozen.length).toBeGreaterThan(30);
    expect(sameTensors(before, after, frozen)).toEqual([]);
    expect(sameTensors(before, after, trained).length).toBe(trained.length);
    model.dispose();
  });
});

/** What the Python reference needs to know; every value written out here, so an option the Trainer dropped shows. */
interface RefConfig {
  optimizer: 'sgd' | 'adam' | 'adamw' | 'rmsprop';
  momentum: number;
  nesterov: boolean;
  dampening: number;
  betas: [number, number];
  eps: number;
  alpha: number;
  weightDecay: number;
  noDecayNormBias: boolean;
  labelSmoothing: number;
  clipGradNorm: number;
  accumulate: number;
}
const REF: RefConfig = { optimizer: 'sgd', momentum: 0, nesterov: false, dampening: 0, betas: [0.9, 0.999], eps: 1e-8, alpha: 0.99, weightDecay: 0, noDecayNormBias: true, labelSmoothing: 0, clipGradNorm: 0, accumulate: 1 };
const parityCases: [string, TrainerOptions, Partial<RefConfig>, number][] = [
  // name, Trainer options (beyond lr/backboneLr/schedule), what torch.optim is given, batch size
  ['sgd (default momentum 0.9)', { optimizer: 'sgd', noDecayNormBias: false }, { optimizer: 'sgd', momentum: 0.9, noDecayNormBias: false }, 8],
  ['adam', { optimizer: 'adam', noDecayNormBias: false }, { optimizer: 'adam', noDecayNormBias: false }, 8],
  ['adamw, weightDecay with noDecayNormBias', { optimizer: 'adamw', weightDecay: 0.05 }, { optimizer: 'adamw', weightDecay: 0.05 }, 8],
  ['adamw betas/eps, decay on every parameter', { optimizer: 'adamw', weightDecay: 0.05, noDecayNormBias: false, betas: [0.8, 0.99], eps: 1e-6 }, { optimizer: 'adamw', weightDecay: 0.05, noDecayNormBias: false, betas: [0.8, 0.99], eps: 1e-6 }, 8],
  ['rmsprop', { optimizer: 'rmsprop' }, { optimizer: 'rmsprop' }, 8],
  ['rmsprop with alpha, momentum and weight decay', { optimizer: 'rmsprop', alpha: 0.9, momentum: 0.5, weightDecay: 1e-3 }, { optimizer: 'rmsprop', alpha: 0.9, momentum: 0.5, weightDecay: 1e-3 }, 8],
  ['sgd nesterov, weight decay', { optimizer: 'sgd', momentum: 0.8, nesterov: true, weightDecay: 1e-3 }, { optimizer: 'sgd', momentum: 0.8, nesterov: true, weightDecay: 1e-3 }, 8],
  ['sgd dampening', { optimizer: 'sgd', dampening: 0.3 }, { optimizer: 'sgd', momentum: 0.9, dampening: 0.3 }, 8],
  ['labelSmoothing', { optimizer: 'sgd', labelSmoothing: 0.2 }, { optimizer: 'sgd', momentum: 0.9, labelSmoothing: 0.2 }, 8],
  ['clipGradNorm', { optimizer: 'sgd', clipGradNorm: 0.25 }, { optimizer: 'sgd', momentum: 0.9, clipGradNorm: 0.25 }, 8],
  ['accumulate 2 (batches of 4)', { optimizer: 'sgd', accumulate: 2 }, { optimizer: 'sgd', momentum: 0.9, accumulate: 2 }, 4],
];

describe('optimizer and loss options equal torch.optim step by step (ResNet-18, 3 epochs, step schedule)', () => {
  test('the cases cover every optimizer and loss option', () => {
    expect(parityCases).toHaveLength(11);
    expect(new Set(parityCases.map((c) => c[2].optimizer))).toEqual(new Set(['sgd', 'adam', 'adamw', 'rmsprop']));
  });
  test.each(parityCases)('%s: weights within 1e-4 of PyTorch', async (name, options, ref, batchSize) => {
    const data = await small(8, 64);
    const model = await ResNet.create({ arch: 'resnet18', numClasses: 2, classes: data.classes, channelsLast: false });
    const tag = name.replace(/[^a-z0-9]+/gi, '-');
    const start = join(tmp, `start-${tag}.pth`);
    await model.save(start);
    const dir = join(tmp, `batches-${tag}`);
    mkdirSync(dir, { recursive: true });
    const sgdLike = options.optimizer === 'sgd';
    const lr = sgdLike ? 0.05 : 1e-3;
    const loader = new DataLoader(data, { batchSize, seed: 2 });
    const trainer = new Trainer(model, { strategy: 'full', epochs: 3, lr, backboneLr: lr * 0.4, schedule: { type: 'step', stepSize: 1, gamma: 0.5 }, precision: 'fp32', ...options });
    // the exact batches the trainer consumes (no shuffling, deterministic transform), and the rates it used
    const steps: { labels: number[]; shape: number[]; lrHead: number; lrBackbone: number }[] = [];
    for (let e = 0; e < 3; e++) {
      loader.setEpoch(e);
      for await (const b of loader) {
        const img = b.images();
        writeFileSync(join(dir, `step${steps.length}.bin`), Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength));
        steps.push({ labels: Array.from(b.labels().data), shape: img.shape, lrHead: 0, lrBackbone: 0 });
        b.dispose();
      }
    }
    let seen = 0;
    trainer.on('batchEnd', (e) => Object.assign(steps[seen++], { lrHead: e.lr.head, lrBackbone: e.lr.backbone }));
    await trainer.fit(loader);
    expect(seen).toBe(steps.length);
    expect(steps.length).toBe(3 * (8 / batchSize));
    expect(steps[steps.length - 1].lrHead).toBeCloseTo(lr / 4, 12);
    writeFileSync(join(dir, 'meta.json'), JSON.stringify({ config: { ...REF, ...ref }, steps }));
    const out = join(tmp, `after-${tag}.pth`);
    execFileSync(PYTHON, ['scripts/fixtures/train_steps.py', start, dir, out]);
    const theirs = await readStateDict(out);
    const ours = await model.stateDict();
    const before = await readStateDict(start);
    let worst = 0;
    let worstKey = '';
    let moved = 0;
    for (const k of theirs.keys) {
      const [a, b, b0] = [ours[k].data, theirs.tensors[k].data, before.tensors[k].data];
      if (b.constructor.name !== 'Float32Array') {
        expect([k, Array.from(a, Number)]).toEqual([k, Array.from(b, Number)]); // num_batches_tracked
        continue;
      }
      const d = maxAbsDiff(a, b); // NaN counts as worst (Infinity)
      if (d > worst) [worst, worstKey] = [d, k];
      moved = Math.max(moved, maxAbsDiff(b0, b));
    }
    console.log(`${name}: worst |Δ| ${worst.toExponential(2)} at ${worstKey} (largest change from the start ${moved.toExponential(2)})`);
    expect(moved).toBeGreaterThan(1e-3); // the steps did something the comparison can see
    expect(worst).toBeLessThanOrEqual(1e-4);
    model.dispose();
  });
});

describe('checkpoints and resume', () => {
  test('interrupt with an AbortSignal in epoch 2, resume: final weights equal the uninterrupted run', async () => {
    const data = await small(16);
    const t = Transform.compose(Transform.resize([64, 64]), Transform.randomHorizontalFlip(), Transform.toTensor(), Transform.normalize());
    const aug = data.withTransform(t);
    const opts = { strategy: 'partial' as const, trainFrom: 'layer4', epochs: 3, optimizer: 'adam' as const, lr: 1e-3, seed: 5, schedule: { type: 'cosine' as const } };
    const run = async (dir: string, signal?: AbortSignal, resume?: string) => {
      const m = await ResNet.create({ arch: 'resnet18', numClasses: 2, classes: data.classes, dropout: 0.3 });
      await m.loadWeights(join(tmp, 'resume-start.pth'));
      const tr = new Trainer(m, { ...opts, checkpointDir: dir, signal, resumeFrom: resume });
      return { m, tr };
    };
    const seedModel = await ResNet.create({ arch: 'resnet18', numClasses: 2, classes: data.classes, dropout: 0.3 });
    await seedModel.save(join(tmp, 'resume-start.pth'));

    const full = await run(join(tmp, 'ck-full'));
    const r1 = await full.tr.fit(new DataLoader(aug, { batchSize: 8, shuffle: true, seed: 9 }));
    expect(r1.history.length).toBe(3);
    const ref = await full.m.stateDict();

    const ac = new AbortController();
    const part = await run(join(tmp, 'ck-part'), ac.signal);
    part.tr.on('batchEnd', (e) => {
      if (e.epoch === 1 && e.batch === 0) ac.abort();
    });
    const r2 = await part.tr.fit(new DataLoader(aug, { batchSize: 8, shuffle: true, seed: 9 }));
    expect(r2.aborted).toBe(true);
    expect(r2.history.length).toBe(1);

    const resumed = await run(join(tmp, 'ck-part'), undefined, join(tmp, 'ck-part'));
    const r3 = await resumed.tr.fit(new DataLoader(aug, { batchSize: 8, shuffle: true, seed: 9 }));
    expect(r3.history.map((h) => h.epoch)).toEqual([0, 1, 2]);
    const got = await resumed.m.stateDict();
    expect(sameTensors(ref, got, Object.keys(ref))).toEqual([]);
    // the checkpoint is a .pth PyTorch users read directly
    const py = execFileSync(PYTHON, ['-c', 'import sys, torch; sd = torch.load(sys.argv[1]); print(len(sd))', join(tmp, 'ck-part', 'last.pth')], { encoding: 'utf8' });
    expect(Number(py.trim())).toBe(Object.keys(ref).length);
  });
});

describe('feature cache', () => {
  test('equals the uncached path (<= 1e-5) with deterministic transforms; memory reported', async () => {
    const data = await small(24);
    const start = join(tmp, 'cache-start.pth');
    const init = await Model.create({ arch: 'squeezenet1_1', numClasses: 2, classes: data.classes, weights: SQUEEZE() });
    await init.save(start); // one fresh head for both runs
    init.dispose();
    const run = async (featureCache: boolean) => {
      const m = await Model.create({ arch: 'squeezenet1_1', numClasses: 2, classes: data.classes, weights: SQUEEZE() });
      await m.loadWeights(start);
      const tr = new Trainer(m, { strategy: 'feature-extract', epochs: 3, lr: 1e-2, seed: 3, precision: 'fp32', featureCache, schedule: { type: 'cosine' } });
      const res = await tr.fit(new DataLoader(data, { batchSize: 8, shuffle: true, seed: 4 }));
      const sd = await m.stateDict();
      m.dispose();
      return { res, sd };
    };
    const a = await run(true);
    const b = await run(false);
    expect(a.res.history[0].featureCacheBytes).toBeGreaterThan(0);
    expect(b.res.history[0].featureCacheBytes).toBe(0);
    for (const k of Object.keys(a.sd)) expect(maxAbsDiff(a.sd[k].data, b.sd[k].data)).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(a.sd['classifier.1.weight'].data, (await readStateDict(start)).tensors['classifier.1.weight'].data)).toBeGreaterThan(0);
    a.res.history.forEach((h, i) => expect(Math.abs(h.loss - b.res.history[i].loss)).toBeLessThan(1e-5));
  });

  // The frozen-prefix cache: the stages before trainFrom run once, the later ones (BatchNorm in train mode) and the
  // head train on the cached feature maps; validation runs the suffix on cached maps too.
  test.each([
    ['resnet18', 'layer3'],
    ['squeezenet1_1', 'features.9'],
  ] as const)("frozen prefix (%s, 'partial' from %s) equals the uncached path (<= 1e-5)", async (arch, trainFrom) => {
    const data = await small(24);
    const val = await small(8);
    const start = join(tmp, `prefix-${arch}.pth`);
    const init = await Model.create({ arch, numClasses: 2, classes: data.classes });
    await init.save(start);
    init.dispose();
    const run = async (featureCache: boolean) => {
      const m = await Model.load(start);
      const tr = new Trainer(m, { strategy: 'partial', trainFrom, epochs: 2, optimizer: 'sgd', lr: 1e-2, seed: 3, precision: 'fp32', featureCache });
      const events: unknown[] = [];
      tr.on('featureCache', (e) => events.push(e));
      const res = await tr.fit(new DataLoader(data, { batchSize: 8, shuffle: true, seed: 4 }), new DataLoader(val, { batchSize: 8 }));
      const sd = await m.stateDict();
      m.dispose();
      return { res, sd, events };
    };
    const a = await run(true);
    const b = await run(false);
    // the training cache, then the validation maps added to the bytes held
    expect(a.events).toEqual([{ bytes: expect.any(Number), enabled: true, views: 1 }]);
    expect(a.res.history[0].featureCacheBytes).toBeGreaterThan((a.events[0] as { bytes: number }).bytes);
    expect(b.res.history[0].featureCacheBytes).toBe(0);
    const before = (await readStateDict(start)).tensors;
    let moved = 0;
    for (const k of Object.keys(a.sd)) {
      expect(maxAbsDiff(a.sd[k].data, b.sd[k].data)).toBeLessThanOrEqual(1e-5);
      if (maxAbsDiff(a.sd[k].data, before[k].data) > 0) moved++;
    }
    expect(moved).toBeGreaterThan(2); // more than the head trained
    a.res.history.forEach((h, i) => {
      expect(Math.abs(h.loss - b.res.history[i].loss)).toBeLessThan(1e-5);
      expect(Math.abs((h.valLoss ?? NaN) - (b.res.history[i].valLoss ?? NaN))).toBeLessThan(1e-5);
    });
  });

  test('an unfreeze event rebuilds the cache at the new boundary; freezeBatchNormStats false cannot be cached', async () => {
    const data = await small(16);
    const m = await Model.create({ arch: 'resnet18', numClasses: 2, classes: data.classes });
    const tr = new Trainer(m, { strategy: 'feature-extract', epochs: 2, lr: 1e-2, seed: 3, precision: 'fp32', unfreeze: [{ epoch: 1, from: 'layer4' }] });
    const events: { bytes: number; enabled: boolean }[] = [];
    tr.on('featureCache', (e) => events.push(e));
    const res = await tr.fit(new DataLoader(data, { batchSize: 8 }));
    expect(events.map((e) => e.enabled)).toEqual([true, true]);
    // pooled features (512 floats) first, then layer4's input (256 × 4 × 4 floats for 64² images)
    expect(res.history.map((h) => h.featureCacheBytes)).toEqual([16 * 512 * 4, 16 * 256 * 4 * 4 * 4]);
    expect(() => new Trainer(m, { strategy: 'partial', trainFrom: 'layer4', featureCache: true, freezeBatchNormStats: false })).toThrow(/freezeBatchNormStats/);
    m.dispose();
  });
});

describe('options', () => {
  test('bad options are rejected before training', async () => {
    const model = await Model.create({ arch: 'squeezenet1_1', numClasses: 2 });
    expect(() => new Trainer(model, { lr: -1 })).toThrow('Expected positive number for lr but received -1');
    expect(() => new Trainer(model, { strategy: 'half' as never })).toThrow(/for strategy but received "half"/);
    expect(() => new Trainer(model, { strategy: 'partial', trainFrom: 'layer3' })).toThrow(/a stage of squeezenet1_1 before the head .*features\.0/);
    expect(() => new Trainer(model, { schedule: { type: 'step' } as never })).toThrow(/schedule.stepSize/);
    expect(() => new Trainer(model, { epocs: 3 } as never)).toThrow(InvalidOptionError);
    model.dispose();
  });
});
