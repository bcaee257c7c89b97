// `torch-resnet-tl serve`: 200 concurrent uploads of real photos, each answer checked against model.predict in-process;
// bad uploads get a 4xx and the service keeps serving. Prints p50/p99 latency and throughput.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Model } from '../../lib';
import { serveHarness, sharedPath } from '../helpers';

const { tmp, start } = serveHarness('tl-serve-');

test('serve: 200 concurrent requests match model.predict; bad uploads get 4xx; the service keeps serving', async () => {
  // A saved model: ImageNet squeezenet1_1 re-headed for ants/bees is not needed — the 1000-class model is the
  // harder check (top-3 over 1000 classes must agree).
  const modelPath = join(tmp, 'squeezenet.pth');
  const m = await Model.create({ arch: 'squeezenet1_1', weights: sharedPath('weights', 'squeezenet1_1-imagenet.pth'), precision: 'fp32' });
  await m.save(modelPath);
  // the queue holds the whole burst here: this test checks answers, serve-load.test.ts checks shedding
  // fp32 on both sides: batched answers must equal unbatched ones (bf16 results depend on the batch's composition)
  const base = await start(modelPath, ['--max-bytes', String(3 * 1024 * 1024), '--max-queue', '256', '--precision', 'fp32']);

  const val = sharedPath('data', 'hymenoptera', 'val');
  const files = ['ants', 'bees'].flatMap((c) => readdirSync(join(val, c)).map((f) => join(val, c, f)));
  const photos = Array.from({ length: 200 }, (_, i) => readFileSync(files[i % files.length]));
  const direct = (await m.predict(photos, { topk: 3 })) as { label: string; index: number; probability: number }[][];
  m.dispose();

  const t0 = performance.now();
  const latencies: number[] = [];
  const answers = await Promise.all(
    photos.map(async (body) => {
      const t = performance.now();
      const r = await fetch(`${base}/predict?topk=3`, { method: 'POST', body, headers: { 'content-type': 'image/jpeg' } });
      const j = (await r.json()) as { predictions: { label: string; index: number; probability: number }[] };
      latencies.push(performance.now() - t);
      expect(r.status).toBe(200);
      return j.predictions;
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  console.log(`serve: 200 concurrent requests in ${seconds.toFixed(2)} s → ${(200 / seconds).toFixed(1)} req/s; latency p50 ${q(0.5).toFixed(0)} ms, p99 ${q(0.99).toFixed(0)} ms`);

  let worst = 0;
  answers.forEach((a, i) => {
    expect(a.map((p) => p.index)).toEqual(direct[i].map((p) => p.index));
    a.forEach((p, k) => (worst = Math.max(worst, Math.abs(p.probability - direct[i][k].probability))));
  });
  console.log(`serve: worst |Δ probability| vs in-process predict ${worst.toExponential(2)}`);
  expect(worst).toBeLessThanOrEqual(1e-5);

  // bad uploads
  const text = await fetch(`${base}/predict`, { method: 'POST', body: 'hello, not an image' });
  expect(text.status).toBe(415);
  expect(((await text.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: 'ERR_MEDIA_TYPE', message: expect.stringMatching(/not a JPEG or PNG/) });
  const corrupt = Buffer.concat([photos[0].subarray(0, 2000), Buffer.alloc(2000, 7)]);
  const bad = await fetch(`${base}/predict`, { method: 'POST', body: corrupt });
  expect(bad.status).toBe(400);
  expect(((await bad.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: 'ERR_DATASET', message: expect.stringMatching(/decode/) });
  // oversize uploads, again and again: each client gets its 413 (the server drains the body it refuses instead of
  // resetting a connection the client is still sending on; fetch errors come from another realm than jest's Error)
  for (let i = 0; i < 8; i++) {
    const big = await fetch(`${base}/predict`, { method: 'POST', body: Buffer.alloc(4 * 1024 * 1024, 0xff) }).catch((e: Error) => ({ status: `fetch failed: ${e.message} ${String((e as { cause?: unknown }).cause)}` }));
    expect(big.status).toBe(413);
  }
  expect((await fetch(`${base}/healthz`)).status).toBe(200);
  expect((await fetch(`${base}/nowhere`)).status).toBe(404);
  // still serving, and a good image in the same burst as a bad one gets its answer
  const [ok, bad2] = await Promise.all([
    fetch(`${base}/predict?topk=3`, { method: 'POST', body: photos[1] }),
    fetch(`${base}/predict`, { method: 'POST', body: corrupt }),
  ]);
  expect(ok.status).toBe(200);
  expect(((await ok.json()) as { predictions: { index: number }[] }).predictions.map((p) => p.index)).toEqual(direct[1].map((p) => p.index));
  expect(bad2.status).toBe(400);
});
