// examples/serve.ts: BatchPredictor behind a plain node:http route answers like Model.predict, and refuses a
// non-image with a typed error as JSON.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Model } from '../../lib';
import { serveHarness, sharedPath } from '../helpers';

const { tmp, start } = serveHarness('tl-serve-example-', 'example');

test('the example predicts as Model.predict does, batching concurrent uploads', async () => {
  const modelPath = join(tmp, 'squeezenet.pth');
  const m = await Model.create({ arch: 'squeezenet1_1', numClasses: 2, classes: ['ants', 'bees'], weights: sharedPath('weights', 'squeezenet1_1-imagenet.pth') });
  await m.save(modelPath);
  const photo = readFileSync(join(sharedPath('data', 'hymenoptera', 'val'), 'bees', '10870992_eebeeb3a12.jpg'));
  const direct = await m.predict(photo, { topk: 2 });
  m.dispose();
  const base = await start(modelPath, []);
  const answers = await Promise.all(Array.from({ length: 8 }, () => fetch(`${base}/`, { method: 'POST', body: photo }).then(async (r) => ({ status: r.status, body: (await r.json()) as { predictions: { label: string; probability: number }[] } }))));
  for (const a of answers) {
    expect(a.status).toBe(200);
    expect(a.body.predictions.map((p) => p.label)).toEqual(direct.map((p) => p.label));
    expect(Math.abs(a.body.predictions[0].probability - direct[0].probability)).toBeLessThan(1e-2); // bf16 where the CPU has it, batched vs alone
  }
  const bad = await fetch(`${base}/`, { method: 'POST', body: 'not an image' });
  expect(bad.status).toBe(400);
  expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('ERR_DATASET');
});
