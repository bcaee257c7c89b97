// The caching CPU allocator: blocks are reused (hits), the limit is honoured, and results do not depend on it.
import { cpuCache, Model } from '../../lib';

test('caching CPU allocator: reuse across steps, limit honoured, identical results with the cache off', async () => {
  const m = await Model.create({ arch: 'resnet18', numClasses: 10, precision: 'fp32' });
  const x = new Float32Array(4 * 3 * 96 * 96).map((_, i) => Math.sin(i / 7));
  const labels = Int32Array.from([1, 2, 3, 4]);
  const before = cpuCache.stats();
  expect(before.limitBytes).toBeGreaterThan(0);
  await m.sgdStep(x, [4, 3, 96, 96], labels, 1e-3);
  await m.sgdStep(x, [4, 3, 96, 96], labels, 1e-3);
  const a = await m.forward(x, [4, 3, 96, 96]);
  const after = cpuCache.stats();
  expect(after.hits).toBeGreaterThan(before.hits); // the second step reused the first one's blocks
  expect(after.cachedBytes).toBeLessThanOrEqual(after.limitBytes);

  cpuCache.setLimit(0);
  expect(cpuCache.stats().cachedBytes).toBe(0);
  const b = await m.forward(x, [4, 3, 96, 96]);
  expect(Buffer.from(b.data.buffer).equals(Buffer.from(a.data.buffer))).toBe(true);
  await m.forward(x, [4, 3, 96, 96]);
  expect(cpuCache.stats().cachedBytes).toBe(0);

  cpuCache.setLimit(before.limitBytes);
  await m.forward(x, [4, 3, 96, 96]);
  cpuCache.empty();
  expect(cpuCache.stats().cachedBytes).toBe(0);
  expect(() => cpuCache.setLimit(-1)).toThrow(/bytes/);
  m.dispose();
});
