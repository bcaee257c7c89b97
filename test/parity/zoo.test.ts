// Parity with Debian's torchvision for every arch: strict state-dict loading, eval logits, one SGD step.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Model, ARCHS, readStateDict } from '../../lib';
import { fixture, maxAbs, maxAbsDiff, readF32 } from '../helpers';

test('the loop covers every registered arch, each with a fixture', () => {
  expect(ARCHS.length).toBe(11); // 10 ResNet family + squeezenet1_1
  const dirs = readdirSync(fixture('parity')).filter((d) => existsSync(join(fixture('parity'), d, 'meta.json')));
  expect(dirs.sort()).toEqual([...ARCHS].sort());
});

describe.each(ARCHS.map((a) => [a]))('%s matches torchvision', (arch) => {
  const dir = () => fixture('parity', arch);

  test('strict load and eval logits within 1e-4 (scaled), default channels_last layout', async () => {
    const meta = JSON.parse(readFileSync(join(dir(), 'meta.json'), 'utf8'));
    const model = await Model.create({ arch, numClasses: meta.numClasses, weights: join(dir(), 'before.pth'), dropout: 0 });
    try {
      expect(model.loadReport.headReinitialized).toEqual([]);
      const ref = readF32(join(dir(), 'logits.bin'));
      const out = await model.forward(readF32(join(dir(), 'input.bin')), meta.shape, { precision: 'fp32' });
      expect(out.shape).toEqual(meta.logitsShape);
      expect(maxAbsDiff(out.data, ref) / Math.max(1, maxAbs(ref))).toBeLessThanOrEqual(1e-4);
    } finally {
      model.dispose();
    }
  });

  // Training parity at equal settings (torchvision's NCHW layout): channels_last reorders the convolution
  // reductions, which changes train-mode gradients by float rounding, not by a different computation.
  test('NCHW: logits and one SGD step in train mode within 1e-5 of torchvision', async () => {
    const meta = JSON.parse(readFileSync(join(dir(), 'meta.json'), 'utf8'));
    const model = await Model.create({ arch, numClasses: meta.numClasses, weights: join(dir(), 'before.pth'), dropout: 0, channelsLast: false });
    try {
      const input = readF32(join(dir(), 'input.bin'));
      const ref = readF32(join(dir(), 'logits.bin'));
      const out = await model.forward(input, meta.shape, { precision: 'fp32' });
      expect(maxAbsDiff(out.data, ref) / Math.max(1, maxAbs(ref))).toBeLessThanOrEqual(1e-4);

      const loss = await model.sgdStep(input, meta.shape, meta.labels, meta.lr);
      expect(Math.abs(loss - meta.loss)).toBeLessThan(1e-4 * Math.max(1, meta.loss));
      const ours = await model.stateDict();
      const theirs = await readStateDict(join(dir(), 'after.pth'));
      expect(Object.keys(ours).sort()).toEqual([...theirs.keys].sort());
      let worst = 0;
      let worstKey = '';
      for (const k of theirs.keys) {
        const d = maxAbsDiff(ours[k].data as ArrayLike<number>, theirs.tensors[k].data as ArrayLike<number>);
        if (d > worst) [worst, worstKey] = [d, k];
      }
      expect({ worstKey, worst: worst <= 1e-5 }).toEqual({ worstKey, worst: true });
    } finally {
      model.dispose();
    }
  });
});
