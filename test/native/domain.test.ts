// Domain adaptation (MNIST → USPS digits, ../shared/data/mnist_usps): MMD sees the domain gap, DANN's domain
// classifier and warm-up are recorded, the target loader is cycled, and options that cannot work are refused.
// The accuracy gains are measured by `npm run bench:da` (ResNet-18 from scratch, 8 epochs, 3 seeds).
import { DataLoader, ImageFolder, ImageList, InvalidOptionError, manualSeed, ResNet, Trainer, Transform } from '../../lib';
import { sharedPath } from '../helpers';

const transform = Transform.compose([Transform.resize([32, 32]), Transform.toTensor(), Transform.normalize([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])]);
async function digits(domain: 'mnist' | 'usps', n: number): Promise<ImageList> {
  const f = await ImageFolder.open(sharedPath('data', 'mnist_usps', domain), { transform });
  const pick = f.samples.filter((_, i) => i % Math.floor(f.length / n) === 0).slice(0, n);
  return ImageList.from(pick.map((s) => ({ path: s.path, label: f.classes[s.label] })), { transform, classes: f.classes });
}

describe('domain adaptation', () => {
  test('MMD: the adaptation loss between MNIST and USPS exceeds the one between MNIST and itself', async () => {
    const [mnist, usps] = [await digits('mnist', 128), await digits('usps', 128)];
    const lossWith = async (target: ImageList) => {
      manualSeed(0);
      const model = await ResNet.create({ arch: 'resnet18', numClasses: 10 });
      const trainer = new Trainer(model, { strategy: 'full', epochs: 1, lr: 1e-4, precision: 'fp32', seed: 0, domainAdaptation: { method: 'mmd', target: new DataLoader(target, { batchSize: 32, shuffle: true, seed: 1 }), schedule: 'constant' } });
      const fit = await trainer.fit(new DataLoader(mnist, { batchSize: 32, shuffle: true, seed: 0 }));
      return fit.history[0].adaptation!;
    };
    const cross = await lossWith(usps);
    const same = await lossWith(mnist);
    console.log(`MMD²: MNIST↔USPS ${cross.loss.toFixed(4)}, MNIST↔MNIST ${same.loss.toFixed(4)}`);
    expect(cross.lambda).toBe(1);
    expect(cross.loss).toBeGreaterThan(1.3 * same.loss); // the biased estimate is above 0 for one domain too (its diagonal terms)
    expect(cross.domainAccuracy).toBeUndefined();
  }, 120_000);

  test('DANN: the warm-up factor rises, the domain classifier is scored, a shorter target loader is cycled, and target labels score the result', async () => {
    const [mnist, usps] = [await digits('mnist', 192), await digits('usps', 48)];
    manualSeed(1);
    const model = await ResNet.create({ arch: 'resnet18', numClasses: 10 });
    const target = new DataLoader(usps, { batchSize: 32, shuffle: true, seed: 2, dropLast: true }); // one batch per pass
    const trainer = new Trainer(model, { strategy: 'full', epochs: 2, lr: 1e-3, seed: 1, domainAdaptation: { method: 'dann', target, hidden: 256 } });
    const steps: number[] = [];
    trainer.on('batchEnd', (e) => steps.push(e.batch));
    const fit = await trainer.fit(new DataLoader(mnist, { batchSize: 32, shuffle: true, seed: 0 }), new DataLoader(usps, { batchSize: 48 }));
    expect(steps).toHaveLength(12); // 6 source batches per epoch, each with a target batch (the target's one batch, 12 passes)
    const [a, b] = fit.history.map((r) => r.adaptation!);
    expect(a.lambda).toBeGreaterThan(0);
    expect(b.lambda).toBeGreaterThan(a.lambda);
    expect(b.lambda).toBeLessThan(1);
    for (const r of [a, b]) {
      expect(r.domainAccuracy).toBeGreaterThanOrEqual(0);
      expect(r.domainAccuracy).toBeLessThanOrEqual(1);
      expect(r.loss).toBeGreaterThan(0);
    }
    expect(fit.history[1].valAccuracy).toBeGreaterThanOrEqual(0); // USPS labels only score
    expect(await trainer.trainableParameters()).toBe(model.parameterCount()); // the domain classifier is not counted as the model's
  }, 120_000);

  test('options that cannot work are refused, naming the option', async () => {
    const usps = await digits('usps', 16);
    const model = await ResNet.create({ arch: 'resnet18', numClasses: 10 });
    const target = new DataLoader(usps, { batchSize: 8 });
    expect(() => new Trainer(model, { domainAdaptation: { method: 'coral' as never, target } })).toThrow(/domainAdaptation.method/);
    expect(() => new Trainer(model, { domainAdaptation: { method: 'dann', target: usps as never } })).toThrow(/domainAdaptation.target/);
    expect(() => new Trainer(model, { strategy: 'feature-extract', featureCache: true, domainAdaptation: { method: 'mmd', target } })).toThrow(InvalidOptionError);
    expect(() => new Trainer(model, { strategy: 'linear-probe', domainAdaptation: { method: 'mmd', target } })).toThrow(/does not apply/);
    expect(() => new Trainer(model, { domainAdaptation: { method: 'mmd', target, weight: -1 } })).toThrow(/domainAdaptation.weight/);
  });
});
