// BatchPredictor (lib/serve/predictor.ts): concurrent calls coalesced into batches, each caller its own answer
// (fp32: equal to an unbatched Model.predict); the queue bound (BusyError at once); deadlines (dropped, not computed).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BatchPredictor, BusyError, InvalidOptionError, Model, TimeoutError, Transform } from '../../lib';
import { sharedPath } from '../helpers';

let model: Model;
let photos: Buffer[];
beforeAll(async () => {
  model = await Model.create({ arch: 'squeezenet1_1', weights: sharedPath('weights', 'squeezenet1_1-imagenet.pth'), precision: 'fp32' });
  const val = sharedPath('data', 'hymenoptera', 'val');
  const files = ['ants', 'bees'].flatMap((c) => readdirSync(join(val, c)).slice(0, 12).map((f) => join(val, c, f)));
  photos = files.map((f) => readFileSync(f));
});
afterAll(() => model.dispose());

test('concurrent calls share forward passes; each gets its own top-k, equal to an unbatched fp32 predict (≤ 1e-5)', async () => {
  const p = new BatchPredictor(model, { maxBatch: 8, maxDelayMs: 20, precision: 'fp32' });
  const sizes: number[] = [];
  p.on('batch', (b: { size: number }) => sizes.push(b.size));
  const batched = await Promise.all(photos.map((b) => p.predict(b, { topk: 5 })));
  let worst = 0;
  for (let i = 0; i < photos.length; i++) {
    const alone = await model.predict(photos[i], { topk: 5, precision: 'fp32', batchSize: 1 });
    expect(batched[i].map((q) => q.index)).toEqual(alone.map((q) => q.index));
    batched[i].forEach((q, k) => (worst = Math.max(worst, Math.abs(q.probability - alone[k].probability))));
    expect(batched[i][0].label).toBe(alone[0].label);
  }
  console.log(`batch predictor: ${photos.length} calls in ${sizes.length} forward passes (${sizes.join(', ')}), worst |Δp| vs unbatched ${worst.toExponential(2)}`);
  expect(worst).toBeLessThanOrEqual(1e-5);
  expect(Math.max(...sizes)).toBe(8);
  expect(sizes.reduce((a, b) => a + b, 0)).toBe(photos.length);
  expect(p.stats).toMatchObject({ served: photos.length, batches: sizes.length, shed: 0, expired: 0 });
});

test('preprocessed images ({ data, shape: [3, H, W] }) are batched as they are, by size; their top-k equals a forward of the same tensor', async () => {
  const p = new BatchPredictor(model, { maxBatch: 8, maxDelayMs: 20, precision: 'fp32' });
  const sizes: number[] = [];
  p.on('batch', (b: { size: number }) => sizes.push(b.size));
  const t224 = Transform.imagenetEval();
  const t160 = Transform.imagenetEval(160, 182);
  const inputs = await Promise.all(photos.slice(0, 6).map((b, i) => (i % 2 ? t160 : t224).apply(b)));
  const answers = await Promise.all(inputs.map((t) => p.predict({ data: t.data as Float32Array, shape: t.shape }, { topk: 3 })));
  expect(sizes.sort()).toEqual([3, 3]); // one forward pass per image size
  for (let i = 0; i < inputs.length; i++) {
    const logits = await model.forward(inputs[i].data as Float32Array, [1, ...inputs[i].shape], { precision: 'fp32' });
    const best = Array.from(logits.data.keys()).sort((a, b) => logits.data[b] - logits.data[a]).slice(0, 3);
    expect(answers[i].map((q) => q.index)).toEqual(best);
  }
  await expect(p.predict({ data: new Float32Array(12), shape: [1, 3, 2, 2] })).rejects.toThrow(/shape/);
  await expect(p.predict({ data: new Float32Array(8), shape: [2, 2, 2] })).rejects.toThrow(/input.shape/);
  await expect(p.predict(42 as never)).rejects.toThrow(InvalidOptionError);
});

test('past maxQueue a typed BusyError at once, with a retry hint; what was accepted is answered', async () => {
  const p = new BatchPredictor(model, { maxBatch: 32, maxDelayMs: 50, maxQueue: 4, precision: 'fp32' });
  const calls = photos.slice(0, 12).map((b) => p.predict(b, { topk: 1 }).then((r) => r, (e: unknown) => e));
  const results = await Promise.all(calls);
  const refused = results.filter((r) => r instanceof BusyError) as BusyError[];
  expect(refused.length).toBe(8);
  for (const e of refused) expect(e.retryAfterSeconds).toBeGreaterThanOrEqual(1);
  expect(results.filter((r) => Array.isArray(r))).toHaveLength(4);
  expect(p.stats.shed).toBe(8);
});

test('a call whose deadline passes before its batch runs is dropped (TimeoutError) and never computed', async () => {
  const p = new BatchPredictor(model, { maxBatch: 1, maxDelayMs: 0, precision: 'fp32' });
  const results = await Promise.all(photos.map((b, i) => p.predict(b, { topk: 1, timeoutMs: i < 2 ? 60_000 : 1 }).then((r) => r, (e: unknown) => e)));
  const expired = results.filter((r) => r instanceof TimeoutError);
  expect(expired.length).toBeGreaterThan(0);
  expect(results.slice(0, 2).every((r) => Array.isArray(r))).toBe(true);
  expect(p.stats.served + p.stats.expired).toBe(photos.length);
  expect(p.stats.batches).toBe(p.stats.served); // dropped calls cost no forward pass
  // an aborted call is dropped too
  const ac = new AbortController();
  const slow = photos.map((b) => p.predict(b, { topk: 1 }).catch(() => undefined));
  const aborted = p.predict(photos[0], { signal: ac.signal }).catch((e: Error & { code?: string }) => e.code);
  ac.abort();
  expect(await aborted).toBe('ABORT_ERR');
  await Promise.all(slow);
});

test('drain answers what was accepted and refuses new calls; swap changes the model with no failed call; bad options name themselves', async () => {
  const p = new BatchPredictor(model, { maxBatch: 4, precision: 'fp32' });
  const other = await Model.create({ arch: 'squeezenet1_1', weights: sharedPath('weights', 'squeezenet1_1-imagenet.pth'), precision: 'fp32' });
  const first = photos.slice(0, 8).map((b) => p.predict(b, { topk: 1 }));
  const old = await p.swap(other);
  expect(old).toBe(model);
  const second = photos.slice(8, 16).map((b) => p.predict(b, { topk: 1 }));
  const drained = p.drain();
  await expect(p.predict(photos[0])).rejects.toBeInstanceOf(BusyError);
  await drained;
  expect((await Promise.all([...first, ...second])).every((r) => r.length === 1)).toBe(true);
  expect(p.current).toBe(other);
  other.dispose();
  expect(() => new BatchPredictor(model, { maxBatch: 0 })).toThrow(InvalidOptionError);
  expect(() => new BatchPredictor(model, { maxBatchSize: 4 } as never)).toThrow(/Unknown option options.maxBatchSize/);
  await expect(new BatchPredictor(model).predict(photos[0], { topk: 1001 })).rejects.toThrow(/topk/);
});
