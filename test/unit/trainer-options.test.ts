// resolveTrainerOptions without the addon: a stand-in Model (its prototype, the few facts resolution reads) is enough.
import { InvalidOptionError, Model } from '../../lib';
import { resolveTrainerOptions, TRAINER_DEFAULTS } from '../../lib/trainer';
import { noAddon } from './no-addon';

noAddon();

const RESNET_STAGES = ['stem', 'layer1', 'layer2', 'layer3', 'layer4', 'fc'];
function fakeModel(pretrained: boolean): Model {
  return Object.create(Model.prototype, {
    arch: { value: 'resnet18' },
    stages: { value: RESNET_STAGES },
    head: { value: 'torchvision' },
    loadReport: { value: { source: pretrained ? '/w.pth' : null, headReinitialized: [], message: '' } },
    precision: { value: (p?: string) => p ?? 'fp32' },
  }) as Model;
}

const optionOf = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidOptionError);
    return (e as InvalidOptionError).option;
  }
  return undefined;
};

test('defaults filled once: a pretrained model feature-extracts, a random one trains in full; the result and its native config are frozen and complete', () => {
  const r = resolveTrainerOptions(fakeModel(true), {});
  expect(r.strategy).toBe('feature-extract');
  expect(r.trainFrom).toBe(RESNET_STAGES.length - 1);
  expect(r.epochs).toBe(TRAINER_DEFAULTS.epochs);
  expect(r.lr).toBe(TRAINER_DEFAULTS.lr);
  expect(r.backboneLr).toBeCloseTo(TRAINER_DEFAULTS.lr * TRAINER_DEFAULTS.backboneLrFactor, 12);
  expect(r.native.optimizer).toBe(TRAINER_DEFAULTS.optimizer);
  expect(Object.isFrozen(r)).toBe(true);
  expect(Object.isFrozen(r.native)).toBe(true);
  for (const [k, val] of Object.entries(r.native)) expect([k, val]).not.toEqual([k, undefined]);
  expect(() => {
    (r as { epochs: number }).epochs = 99;
  }).toThrow(TypeError);
  const scratch = resolveTrainerOptions(fakeModel(false), {});
  expect(scratch.strategy).toBe('full');
  expect(scratch.trainFrom).toBe(0);
});

test('given options win; partial trains from the stage before the head unless trainFrom names one', () => {
  const r = resolveTrainerOptions(fakeModel(true), { strategy: 'partial', lr: 0.5, optimizer: 'sgd', epochs: 2 });
  expect([r.trainFrom, r.lr, r.native.optimizer, r.native.momentum, r.epochs]).toEqual([RESNET_STAGES.indexOf('layer4'), 0.5, 'sgd', TRAINER_DEFAULTS.sgdMomentum, 2]);
  expect(resolveTrainerOptions(fakeModel(true), { strategy: 'partial', trainFrom: 'layer2' }).trainFrom).toBe(2);
});

test('bad options name the option at fault', () => {
  const m = fakeModel(true);
  expect(optionOf(() => resolveTrainerOptions(m, { lrr: 1 } as never))).toBe('options.lrr');
  expect(optionOf(() => resolveTrainerOptions(m, { lr: -1 }))).toBe('lr');
  expect(optionOf(() => resolveTrainerOptions(m, { optimizer: 'adamx' as never }))).toBe('optimizer');
  expect(optionOf(() => resolveTrainerOptions(m, { trainFrom: 'layer3' }))).toBe('trainFrom');
  expect(optionOf(() => resolveTrainerOptions(m, { strategy: 'partial', trainFrom: 'fc' }))).toBe('trainFrom');
  expect(optionOf(() => resolveTrainerOptions(m, { earlyStopping: { patience: 0 } }))).toBe('earlyStopping.patience');
  expect(optionOf(() => resolveTrainerOptions(m, { alpha: 0.9 }))).toBe('alpha');
  expect(optionOf(() => resolveTrainerOptions({} as Model, {}))).toBe('model');
});

test("'auto' re-resolves with its recommendation: rates, epochs and the LP-FT unfreezing come from it", () => {
  const m = fakeModel(true);
  const before = resolveTrainerOptions(m, { strategy: 'auto' });
  expect(before.unfreeze).toEqual([]);
  const after = resolveTrainerOptions(m, { strategy: 'auto' }, { strategy: 'lp-ft', trainFrom: 'layer3', head: 'linear', epochs: 4, lr: 2e-4, backboneLr: 1e-5, reason: '' });
  expect([after.lr, after.backboneLr, after.epochs]).toEqual([2e-4, 1e-5, 5]);
  expect(after.unfreeze).toEqual([{ epoch: 1, stage: 3, from: 'layer3', lrScale: 1 }]);
  // what the user gave still wins
  expect(resolveTrainerOptions(m, { strategy: 'auto', lr: 1e-3 }, { strategy: 'linear-probe', head: 'linear', epochs: 0, lr: 0, backboneLr: 0, reason: '' }).lr).toBe(1e-3);
});
