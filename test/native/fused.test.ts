// Fused inference (cpp/models/fused.h): BatchNorm folded into the convolutions in eval mode. The fused model must
// give the unfused model's numbers (fp32, ≤ 1e-4 relative to the largest logit), follow every change of its weights
// (training steps, loading, to()), leave training, saving and export on the unfolded parameters, and keep working
// for explain (whose backbone runs without gradients).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Model, ResNet, ResNetArch } from '../../lib';

const relErr = (a: Float32Array, b: Float32Array) => {
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    worst = Math.max(worst, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return worst / scale;
};

function batch(n: number, size: number, seed: number): Float32Array {
  let s = seed;
  return new Float32Array(n * 3 * size * size).map(() => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return (s / 2147483648) * 4 - 2;
  });
}

describe('fused inference', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tl-fused-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const shape = [4, 3, 64, 64];
  const x = batch(4, 64, 7);
  const labels = [0, 1, 2, 1];

  // A model whose BatchNorm statistics and affine parameters are far from the identity (a few training steps at a
  // high learning rate move γ, β and the running statistics), saved, and loaded back fused and unfused.
  async function pair(arch: ResNetArch, channelsLast: boolean): Promise<[Model, Model]> {
    const src = await ResNet.create({ arch, numClasses: 3, channelsLast });
    for (let i = 0; i < 3; i++) await src.sgdStep(batch(4, 64, 100 + i), shape, labels, 0.05);
    const file = join(dir, `${arch}-${channelsLast}.pth`);
    await src.save(file);
    src.dispose();
    return [await Model.load(file, { channelsLast, precision: 'fp32' }), await Model.load(file, { channelsLast, fuse: false, precision: 'fp32' })];
  }

  test.each([
    ['resnet18', true],
    ['resnet50', true],
    ['resnet18', false],
  ] as const)('%s (channelsLast %s): fp32 logits and embeddings equal the unfused model ≤ 1e-4', async (arch, cl) => {
    const [fused, plain] = await pair(arch, cl);
    expect(fused.fused).toBe(true);
    expect(plain.fused).toBe(false);
    const [a, b] = [await fused.forward(x, shape), await plain.forward(x, shape)];
    const err = relErr(a.data, b.data);
    expect(err).toBeLessThanOrEqual(1e-4);
    expect(err).toBeGreaterThan(0); // folding rounds differently: the fused path did run
    expect(relErr((await fused.embed(x, shape)).data, (await plain.embed(x, shape)).data)).toBeLessThanOrEqual(1e-4);
    // the same call twice: the folded copy is reused, bit for bit
    expect(Array.from((await fused.forward(x, shape)).data)).toEqual(Array.from(a.data));
    fused.dispose();
    plain.dispose();
  });

  test('a training step, a reload and to() rebuild the folded copy; saved weights are the unfolded parameters', async () => {
    const [fused, plain] = await pair('resnet18', true);
    const before = await fused.forward(x, shape);
    // both take the same step (train mode: unfused, the running statistics move)
    await fused.sgdStep(x, shape, labels, 0.05);
    await plain.sgdStep(x, shape, labels, 0.05);
    const after = await fused.forward(x, shape);
    expect(relErr(after.data, before.data)).toBeGreaterThan(1e-3);
    expect(relErr(after.data, (await plain.forward(x, shape)).data)).toBeLessThanOrEqual(1e-4);
    // saving writes the model's own parameters: a fresh unfused load of the fused model's file gives its numbers
    const file = join(dir, 'stepped.pth');
    await fused.save(file);
    const sd = await fused.stateDict();
    expect(Object.keys(sd)).toContain('layer1.0.bn1.running_var');
    const reread = await Model.load(file, { fuse: false, precision: 'fp32' });
    expect(relErr((await reread.forward(x, shape)).data, after.data)).toBeLessThanOrEqual(1e-4);
    // loading other weights into the fused model: it follows them
    await fused.loadWeights(join(dir, 'resnet18-true.pth'));
    expect(relErr((await fused.forward(x, shape)).data, before.data)).toBeLessThanOrEqual(1e-6);
    await fused.to('cpu');
    expect(relErr((await fused.forward(x, shape)).data, before.data)).toBeLessThanOrEqual(1e-6);
    for (const m of [fused, plain, reread]) m.dispose();
  });

  test('bf16: the fused model agrees with the unfused one to bf16 rounding', async () => {
    const [fused, plain] = await pair('resnet18', true);
    const [a, b] = [await fused.forward(x, shape, { precision: 'bf16' }), await plain.forward(x, shape, { precision: 'bf16' })];
    expect(relErr(a.data, b.data)).toBeLessThanOrEqual(0.05);
    fused.dispose();
    plain.dispose();
  });
});
