// Transform.withoutRandomness (the default probe view of Trainer.fit): random crops become their deterministic
// counterparts at the same output size, the other random ops go, the rest stays in order. No addon.
import { Transform } from '../../lib';
import { noAddon } from './no-addon';

noAddon();

test('withoutRandomness: random crops → resize + centre crop / centre crop; random ops dropped; deterministic pipelines unchanged', () => {
  const train = Transform.compose(Transform.randomResizedCrop(224), Transform.randomRotation(30), Transform.colorJitter({ brightness: 0.4 }), Transform.randomHorizontalFlip(), Transform.toTensor(), Transform.normalize(), Transform.randomErasing());
  const view = train.withoutRandomness();
  expect(view.deterministic).toBe(true);
  expect(view.ops.map((o) => o.op)).toEqual(['resize', 'centerCrop', 'toTensor', 'normalize']);
  expect(view.ops[0]).toMatchObject({ size: [256], interpolation: 'bilinear', antialias: true });
  expect(view.ops[1]).toMatchObject({ size: [224] });
  expect(view.ops[3]).toEqual(train.ops[5]);
  expect(Transform.compose(Transform.randomCrop(32, { padding: 4 }), Transform.toTensor()).withoutRandomness().ops).toEqual([{ op: 'centerCrop', size: [32] }, { op: 'toTensor' }]);
  expect(Transform.documentTrain().withoutRandomness().ops.map((o) => o.op)).toEqual(['resize', 'centerCrop', 'toTensor', 'normalize']);
  const evalT = Transform.imagenetEval();
  expect(evalT.withoutRandomness()).toBe(evalT);
});
