// Native robustness: no C++ exception reaches N-API, the addon works in worker_threads, loaders can be stopped and
// batches released at any time, and a long predict loop keeps memory flat.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { cpuCache, DataLoader, encodeJpeg, ImageFolder, Model, Transform } from '../../lib';
import { ROOT, sharedPath } from '../helpers';

test('every native function, and every method of every native object (also after release/dispose), called with wrong arguments throws a typed error; the process survives', () => {
  // the script works in its own scratch folder (calls such as save('x') succeed by chance and write there)
  const r = spawnSync(process.execPath, [join(ROOT, 'test', 'scripts', 'garbage-calls.js')], { encoding: 'utf8', timeout: 300_000 });
  expect({ status: r.status, signal: r.signal, stderr: r.stderr.slice(-2000) }).toEqual({ status: 0, signal: null, stderr: '' });
  const rep = JSON.parse(r.stdout.trim().split('\n').pop()!) as { calls: number; threw: number; rejected: number; ok: number; withoutCode: string[]; untyped: string[]; notFailing: string[]; objects: string[] };
  console.log(`garbage calls: ${rep.calls} calls, ${rep.threw} coded errors, ${rep.ok} accepted (valid by chance)`);
  expect(rep.calls).toBeGreaterThanOrEqual(800);
  expect(rep.threw).toBeGreaterThanOrEqual(500);
  expect(rep.withoutCode).toEqual([]);
  // mapped in one place (lib/native.ts): a TorchResNetError subclass, whichever object threw
  expect(rep.untyped).toEqual([]);
  expect(rep.objects).toEqual(['model', 'featureBank', 'trainer', 'loader', 'batch']);
  // a released batch or disposed model fails on every method; a batch's info (size, indices, skipped files) stays readable
  expect(rep.notFailing).toEqual(['batch.info']);
});

test('two worker_threads predicting at once give the main thread\'s answers; a third starts after they exit', async () => {
  const weights = sharedPath('weights', 'squeezenet1_1-imagenet.pth');
  const dir = sharedPath('data', 'hymenoptera', 'val', 'bees');
  const images = readdirSync(dir).slice(0, 8).map((f) => join(dir, f));
  const main = await Model.create({ arch: 'squeezenet1_1', weights });
  const expected = await main.predict(images, { topk: 3 });
  main.dispose();
  const run = () =>
    new Promise<{ predictions: unknown[][]; loaded: number }>((resolve, reject) => {
      const w = new Worker(join(ROOT, 'test', 'scripts', 'worker-predict.js'), { workerData: { weights, images, rounds: 3 } });
      w.once('message', (m) => (m.error ? reject(new Error(m.error)) : resolve(m)));
      w.once('error', reject);
      w.once('exit', (code) => code !== 0 && reject(new Error(`worker exited ${code}`)));
    });
  const [a, b] = await Promise.all([run(), run()]);
  for (const r of [a, b]) {
    expect(r.loaded).toBe(8);
    for (const p of r.predictions) expect(p).toEqual(expected);
  }
  const c = await run();
  expect(c.predictions[0]).toEqual(expected);
}, 300_000);

test('loaders stopped mid-epoch, batches released in any order, the same loader reused: no crash, exact counts', async () => {
  const folder = await ImageFolder.open(sharedPath('data', 'hymenoptera', 'val'), { transform: Transform.compose(Transform.resize([48, 48]), Transform.toTensor()) });
  for (let i = 0; i < 20; i++) {
    const loader = new DataLoader(folder, { batchSize: 8, workers: 2, prefetch: 4, shuffle: true, seed: i });
    const held = [];
    for await (const b of loader) {
      held.push(b);
      if (held.length === 1 + (i % 3)) break; // stop while the workers are still decoding
    }
    held.reverse().forEach((b) => b.dispose());
    held.forEach((b) => b.dispose()); // twice: harmless
  }
  const loader = new DataLoader(folder, { batchSize: 16, workers: 2 });
  for (let epoch = 0; epoch < 2; epoch++) {
    let n = 0;
    for await (const b of loader) {
      n += b.size;
      b.dispose();
    }
    expect(n).toBe(153);
  }
});

test('10 000 predict calls keep RSS flat (no growth over 5 %) with the allocator cache capped', async () => {
  const model = await Model.create({ arch: 'squeezenet1_1', numClasses: 10 });
  cpuCache.setLimit(64 * 2 ** 20);
  const px = new Uint8Array(3 * 64 * 64).map((_, i) => (i * 37) % 251);
  const jpeg = await encodeJpeg({ data: px, shape: [3, 64, 64] });
  const transform = Transform.compose(Transform.resize([64, 64]), Transform.toTensor(), Transform.normalize());
  const loop = async (n: number) => {
    for (let i = 0; i < n; i++) await model.predict(jpeg, { transform, topk: 1 });
  };
  await loop(1000);
  global.gc?.();
  const before = process.memoryUsage().rss;
  await loop(9000);
  global.gc?.();
  const after = process.memoryUsage().rss;
  console.log(`RSS over 9000 predict calls (after 1000 warm-up): ${(before / 2 ** 20).toFixed(1)} → ${(after / 2 ** 20).toFixed(1)} MiB (${((100 * (after - before)) / before).toFixed(2)} %)`);
  // a leak grows RSS; it may shrink as warm-up memory is returned
  expect((after - before) / before).toBeLessThanOrEqual(0.05);
  model.dispose();
}, 600_000);
