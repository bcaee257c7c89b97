// Transfer decisions: the linear probe, LP-FT and 'auto' on ants/bees with the real squeezenet1_1 weights; collapse
// detection and auto's recovery; LogME and the probe against float64 references in Python; k-NN on separable and on
// shuffled labels; Grad-CAM against a hand-written hook implementation on torchvision's models.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assess, DataLoader, ImageFolder, ImageList, InvalidOptionError, Model, ResNet, Trainer, Transform, manualSeed } from '../../lib';
import { PYTHON, sharedPath } from '../helpers';

const tmp = mkdtempSync(join(tmpdir(), 'tl-transfer-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const SQUEEZE = () => sharedPath('weights', 'squeezenet1_1-imagenet.pth');
const hymenoptera = (split: string, transform = Transform.imagenetEval()) => ImageFolder.open(sharedPath('data', 'hymenoptera', split), { transform });
const ref = (args: string[]) => execFileSync(PYTHON, ['scripts/fixtures/transfer_ref.py', ...args], { encoding: 'utf8' });
const readF32 = (p: string) => {
  const b = readFileSync(p);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};

async function subset(n: number, transform: Transform) {
  const folder = await hymenoptera('val');
  const pick = folder.samples.filter((_, i) => i % Math.floor(folder.length / n) === 0).slice(0, n);
  return ImageList.from(pick.map((s) => ({ path: s.path, label: folder.classes[s.label] })), { transform });
}

describe('linear probe, LP-FT and auto on ants/bees (squeezenet1_1, ImageNet weights)', () => {
  test('without probeData the probe embeds the training images without random augmentation: ≥ 0.05 better than embedding the augmented crops', async () => {
    // strong augmentation on a small set (40 training photos): tiny random crops, any rotation, heavy colour jitter
    const strong = Transform.compose(Transform.randomResizedCrop(224, { scale: [0.02, 0.1] }), Transform.randomRotation(180), Transform.colorJitter({ brightness: 0.8, contrast: 0.8, saturation: 0.8, hue: 0.3 }), Transform.randomGrayscale(0.5), Transform.toTensor(), Transform.normalize());
    const all = await hymenoptera('train');
    const pick = all.samples.filter((_, i) => i % Math.floor(all.length / 40) === 0).slice(0, 40);
    const train = ImageList.from(pick.map((s) => ({ path: s.path, label: all.classes[s.label] })), { transform: strong });
    const val = new DataLoader(await hymenoptera('val'), { batchSize: 32 });
    for (const seed of [0, 1]) {
      const accuracy: Record<string, number> = {};
      for (const mode of ['augmented', 'default']) {
        const model = await Model.create({ arch: 'squeezenet1_1', numClasses: 2, classes: train.classes, head: 'linear', weights: SQUEEZE() });
        const loader = new DataLoader(train, { batchSize: 32, seed, shuffle: true });
        const fit = await new Trainer(model, { strategy: 'linear-probe', seed }).fit(loader, val, mode === 'augmented' ? { probeData: loader } : {});
        accuracy[mode] = fit.history[0].valAccuracy!;
        model.dispose();
      }
      console.log(`probe views, seed ${seed}: val accuracy with the augmented crops ${accuracy.augmented.toFixed(3)}, default (no randomness) ${accuracy.default.toFixed(3)}`);
      expect(accuracy.default - accuracy.augmented).toBeGreaterThanOrEqual(0.05);
    }
  }, 300_000);

  test("strategy 'linear-probe' reaches ≥ 0.92 validation accuracy in one fit (epoch 0)", async () => {
    const [train, val] = [await hymenoptera('train'), await hymenoptera('val')];
    const model = await Model.create({ arch: 'squeezenet1_1', numClasses: 2, classes: train.classes, head: 'linear', weights: SQUEEZE() });
    const t0 = performance.now();
    const fit = await new Trainer(model, { strategy: 'linear-probe' }).fit(new DataLoader(train, { batchSize: 32, seed: 0 }), new DataLoader(val, { batchSize: 32 }));
    const seconds = (performance.now() - t0) / 1000;
    console.log(`linear-probe: val ${fit.history[0].valAccuracy} (cv ${fit.history[0].probe?.cvAccuracy}, l2 ${fit.history[0].probe?.l2}) in ${seconds.toFixed(1)} s, embeddings included`);
    expect(fit.history).toHaveLength(1);
    expect(fit.history[0].phase).toBe('linear-probe');
    expect(fit.history[0].valAccuracy).toBeGreaterThanOrEqual(0.92);
    expect(fit.history[0].trainableParameters).toBe(512 * 2 + 2);
  }, 120_000);

  test("strategy 'auto' assesses, follows the recommendation (≥ 0.92) and records the figures", async () => {
    const [train, val] = [await hymenoptera('train'), await hymenoptera('val')];
    const model = await Model.create({ arch: 'squeezenet1_1', numClasses: 2, classes: train.classes, weights: SQUEEZE() });
    expect(model.head).toBe('torchvision');
    const trainer = new Trainer(model, { strategy: 'auto' });
    const seen: unknown[] = [];
    trainer.on('assessment', (a) => seen.push(a));
    const fit = await trainer.fit(new DataLoader(train, { batchSize: 32, seed: 0 }), new DataLoader(val, { batchSize: 32 }));
    const a = fit.assessment!;
    console.log(`auto: ${a.recommendation.strategy} — ${a.recommendation.reason}; val ${fit.history[fit.history.length - 1].valAccuracy}`);
    expect(seen).toEqual([a]);
    expect(model.head).toBe('linear'); // squeezenet's conv head replaced: probes need a linear one
    expect(a.count).toBe(244);
    expect(a.classCounts).toEqual([123, 121]);
    expect(a.linearProbeAccuracy).toBeGreaterThan(0.8);
    expect(a.knnAccuracy).toBeGreaterThan(0.8);
    expect(a.bnShift).toBeNull(); // squeezenet1_1 has no BatchNorm
    expect(a.recommendation.strategy).toBe('linear-probe');
    expect(a.recommendation.reason).toMatch(/122 per class/);
    expect(fit.history[fit.history.length - 1].valAccuracy).toBeGreaterThanOrEqual(0.92);
  }, 180_000);

  test("strategy 'lp-ft': the probe (epoch 0), then fine-tuning from trainFrom at the backbone rate", async () => {
    const data = await subset(16, Transform.compose([Transform.resize([96, 96]), Transform.toTensor(), Transform.normalize()]));
    const model = await Model.create({ arch: 'squeezenet1_1', numClasses: 2, classes: data.classes, head: 'linear', weights: SQUEEZE() });
    const trainer = new Trainer(model, { strategy: 'lp-ft', trainFrom: 'features.11', epochs: 2, precision: 'fp32' });
    const unfreezes: unknown[] = [];
    trainer.on('unfreeze', (e) => unfreezes.push(e));
    const fit = await trainer.fit(new DataLoader(data, { batchSize: 8, seed: 1 }), new DataLoader(data, { batchSize: 8 }));
    expect(fit.history.map((r) => r.phase)).toEqual(['linear-probe', 'fine-tune', 'fine-tune']);
    expect(unfreezes).toEqual([{ epoch: 1, from: 'features.11' }]);
    expect(fit.history[1].lr).toEqual({ head: 1e-4, backbone: 1e-4 });
    expect(fit.history[1].trainableParameters).toBeGreaterThan(fit.history[0].trainableParameters);
  }, 120_000);

  test('options that do not fit a probing strategy are refused, naming the option', async () => {
    const conv = await Model.create({ arch: 'squeezenet1_1', numClasses: 2 });
    expect(() => new Trainer(conv, { strategy: 'linear-probe' })).toThrow(/head: 'linear'/);
    const lin = await Model.create({ arch: 'squeezenet1_1', numClasses: 2, head: 'linear' });
    expect(() => new Trainer(lin, { strategy: 'linear-probe', epochs: 3 })).toThrow(InvalidOptionError);
    expect(() => new Trainer(lin, { strategy: 'full', probe: { folds: 3 } })).toThrow(/probe applies/);
    expect(() => new Trainer(lin, { strategy: 'auto', assess: { folds: 1 } })).toThrow(/assess.folds/);
    expect(() => new Trainer(lin, { strategy: 'lp-ft', probe: { l2Grid: [] } })).toThrow(/probe.l2Grid/);
  });
});

describe('collapse', () => {
  test("squeezenet1_1's torchvision head with a high Adam rate collapses to one class: the event and the record say so", async () => {
    const [train, val] = [await hymenoptera('train'), await hymenoptera('val')];
    manualSeed(0);
    const model = await Model.create({ arch: 'squeezenet1_1', numClasses: 2, classes: train.classes, weights: SQUEEZE() });
    const trainer = new Trainer(model, { strategy: 'feature-extract', optimizer: 'adam', lr: 0.5, epochs: 1, seed: 0 });
    const events: { class: string; predictedShare: number; dataShare: number }[] = [];
    trainer.on('collapse', (c) => events.push(c));
    const fit = await trainer.fit(new DataLoader(train, { batchSize: 32, seed: 0 }), new DataLoader(val, { batchSize: 32 }));
    expect(events).toHaveLength(1);
    expect(events[0].predictedShare).toBeGreaterThanOrEqual(0.95);
    expect(events[0].dataShare).toBeLessThan(0.6);
    expect(fit.history[0].collapse).toEqual(events[0]);
    expect(fit.collapses).toEqual(events);
  }, 120_000);

  test("'auto' recovers: fine-tuning that collapses is undone (the probe's weights come back) and recorded", async () => {
    const [train, val] = [await hymenoptera('train'), await hymenoptera('val')];
    const model = await Model.create({ arch: 'squeezenet1_1', numClasses: 2, classes: train.classes, weights: SQUEEZE() });
    // counted as large data (LP-FT recommended) and fine-tuned at an absurd rate: collapse guaranteed
    const trainer = new Trainer(model, { strategy: 'auto', assess: { smallPerClass: 10 }, lr: 5, epochs: 2, precision: 'fp32' });
    const recoveries: unknown[] = [];
    trainer.on('recovery', (r) => recoveries.push(r));
    const valLoader = new DataLoader(val, { batchSize: 32 });
    const fit = await trainer.fit(new DataLoader(train, { batchSize: 32, seed: 0 }), valLoader);
    expect(fit.assessment?.recommendation.strategy).toBe('lp-ft');
    expect(fit.history.map((r) => r.phase)).toEqual(['linear-probe', 'fine-tune']);
    expect(fit.history[1].collapse).toBeDefined();
    expect(fit.recoveries).toEqual(recoveries);
    expect(fit.recoveries[0]).toMatchObject({ epoch: 1 });
    const after = await trainer.evaluate(valLoader);
    expect(after.accuracy).toBeCloseTo(fit.history[0].valAccuracy!, 10); // the probe's weights, not the collapsed ones
  }, 180_000);
});

describe('probe figures against references', () => {
  let features: Float32Array;
  let labels: Int32Array;
  let n = 0;
  const d = 512;
  let model: Model;
  let data: ImageList;

  beforeAll(async () => {
    data = await subset(48, Transform.compose([Transform.resize([64, 64]), Transform.toTensor(), Transform.normalize()]));
    model = await Model.create({ arch: 'squeezenet1_1', numClasses: 2, classes: data.classes, head: 'linear', weights: SQUEEZE() });
    const f: number[] = [];
    const l: number[] = [];
    for await (const b of new DataLoader(data, { batchSize: 16 })) {
      const img = b.images();
      const e = await model.embed(img.data as Float32Array, img.shape, { precision: 'fp32' });
      f.push(...e.data);
      l.push(...b.labels().data);
      b.dispose();
    }
    features = Float32Array.from(f);
    labels = Int32Array.from(l);
    n = labels.length;
    writeFileSync(join(tmp, 'f.f32'), features);
    writeFileSync(join(tmp, 'y.i32'), labels);
  }, 60_000);

  test('LogME equals a dense float64 evaluation of the evidence (1e-6 relative)', async () => {
    const ours = await assess(model, new DataLoader(data, { batchSize: 16 }), { precision: 'fp32' });
    const theirs = Number(ref(['logme', join(tmp, 'f.f32'), join(tmp, 'y.i32'), String(n), String(d), '2']));
    console.log(`LogME: ours ${ours.logme}, reference ${theirs}`);
    expect(Math.abs(ours.logme - theirs) / Math.abs(theirs)).toBeLessThan(1e-6);
  }, 60_000);

  test('the linear probe gives the logits of an exact float64 fit of the same objective', async () => {
    const trainer = new Trainer(model, { strategy: 'linear-probe', precision: 'fp32', probe: { l2Grid: [0.1] } });
    await trainer.fit(new DataLoader(data, { batchSize: 16 }));
    let images: { data: Float32Array; shape: number[] } | undefined;
    for await (const b of new DataLoader(data, { batchSize: 48 })) {
      images = b.images() as { data: Float32Array; shape: number[] };
      b.dispose();
    }
    const ours = await model.forward(images!.data, images!.shape, { precision: 'fp32' });
    ref(['probe', join(tmp, 'f.f32'), join(tmp, 'y.i32'), String(n), String(d), '2', '0.1', join(tmp, 'logits.f32')]);
    const theirs = readF32(join(tmp, 'logits.f32'));
    let worst = 0;
    let scale = 0;
    theirs.forEach((t, i) => {
      worst = Math.max(worst, Math.abs(t - ours.data[i]));
      scale = Math.max(scale, Math.abs(t));
    });
    console.log(`probe logits: max |Δ| ${worst.toExponential(2)} (max |logit| ${scale.toFixed(2)})`);
    expect(worst / scale).toBeLessThan(1e-3);
  }, 60_000);

  test('k-NN accuracy: high on the real labels, near chance on shuffled ones', async () => {
    const real = await assess(model, new DataLoader(data, { batchSize: 16 }), { precision: 'fp32' });
    const shuffled = ImageList.from(
      data.samples.map((s, i) => ({ path: s.path, label: data.classes[(i * 7) % 2] })),
      { transform: data.transform },
    );
    const noise = await assess(model, new DataLoader(shuffled, { batchSize: 16 }), { precision: 'fp32' });
    expect(real.knnAccuracy).toBeGreaterThan(0.75);
    expect(noise.knnAccuracy).toBeLessThan(0.7);
    expect(real.linearProbeAccuracy).toBeGreaterThan(noise.linearProbeAccuracy);
    expect(real.logme).toBeGreaterThan(noise.logme);
  }, 60_000);
});

describe('Grad-CAM', () => {
  const image = () => sharedPath('data', 'hymenoptera', 'val', 'bees', readdirFirst('bees'));
  function readdirFirst(cls: string): string {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    return (require('node:fs').readdirSync(sharedPath('data', 'hymenoptera', 'val', cls)) as string[]).sort()[0];
  }

  test.each([
    ['resnet18', null, 96],
    ['squeezenet1_1', 'imagenet', 224],
  ] as const)('%s: the heatmap equals the hook-based reference within 1e-4', async (arch, weights, size) => {
    manualSeed(3);
    const model = arch === 'resnet18' ? await ResNet.create({ arch, numClasses: 3 }) : await Model.create({ arch, weights: weights ? SQUEEZE() : null });
    const transform = Transform.compose([Transform.resize(size), Transform.centerCrop(size), Transform.toTensor(), Transform.normalize()]);
    const ours = await model.explain(image(), { transform });
    expect([ours.height, ours.width]).toEqual([size, size]);
    const input = await transform.apply(image());
    writeFileSync(join(tmp, `in-${arch}.f32`), input.data as Float32Array);
    const w = join(tmp, `${arch}.pth`);
    await model.save(w);
    ref(['gradcam', arch, w, join(tmp, `in-${arch}.f32`), String(size), String(size), String(ours.classIndex), join(tmp, `cam-${arch}.f32`)]);
    const theirs = readF32(join(tmp, `cam-${arch}.f32`));
    let worst = 0;
    theirs.forEach((t, i) => (worst = Math.max(worst, Math.abs(t - ours.heatmap[i]))));
    expect(worst).toBeLessThan(1e-4);
    expect(Math.max(...ours.heatmap)).toBeCloseTo(1, 6);
    expect(ours.probability).toBeCloseTo(ours.probabilities[ours.classIndex], 7);
  }, 120_000);

  test('a chosen class is explained; an out-of-range one is refused', async () => {
    const model = await ResNet.create({ arch: 'resnet18', numClasses: 3 });
    const t = Transform.compose([Transform.resize([64, 64]), Transform.toTensor(), Transform.normalize()]);
    expect((await model.explain(image(), { classIndex: 2, transform: t })).classIndex).toBe(2);
    await expect(model.explain(image(), { classIndex: 3, transform: t })).rejects.toThrow(/classIndex/);
  }, 60_000);
});

describe('heads', () => {
  test("head 'linear' survives save and load; setHead keeps the backbone and replaces the head", async () => {
    const model = await Model.create({ arch: 'squeezenet1_1', numClasses: 2, weights: SQUEEZE() });
    const before = await model.stateDict();
    expect(before['classifier.1.weight'].shape).toEqual([2, 512, 1, 1]);
    await model.setHead('linear');
    const after = await model.stateDict();
    expect(after['classifier.1.weight'].shape).toEqual([2, 512]);
    expect(Array.from(after['features.0.weight'].data)).toEqual(Array.from(before['features.0.weight'].data));
    const path = join(tmp, 'linear.pth');
    await model.save(path);
    const back = await Model.load(path);
    expect(back.head).toBe('linear');
    const again = await back.stateDict();
    expect(Array.from(again['classifier.1.weight'].data)).toEqual(Array.from(after['classifier.1.weight'].data));
    await expect(model.setHead('conv' as never)).rejects.toThrow(/head/);
  }, 60_000);
});
