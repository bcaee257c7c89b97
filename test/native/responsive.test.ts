// The event loop keeps ticking while native work runs.
import { ResNet } from '../../lib';

test('a 10 ms interval keeps firing (lag <= 50 ms) during a resnet50 forward of batch 16', async () => {
  const model = await ResNet.create({ arch: 'resnet50' });
  const input = new Float32Array(16 * 3 * 224 * 224).fill(0.5);
  let last = performance.now();
  let worst = 0;
  let ticks = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last - 10);
    last = now;
    ticks++;
  }, 10);
  const t0 = performance.now();
  const out = await model.forward(input, [16, 3, 224, 224]);
  const elapsed = performance.now() - t0;
  clearInterval(timer);
  model.dispose();
  expect(out.shape).toEqual([16, 1000]);
  expect(elapsed).toBeGreaterThan(100); // real work happened while we measured
  expect(ticks).toBeGreaterThan(elapsed / 10 / 3);
  expect(worst).toBeLessThanOrEqual(50);
});
