// `train --nproc-per-node 2`: two ranks through `launch`, full fine-tuning of squeezenet1_1 on ants/bees; the same
// accuracy as one process (within 0.03) and one run directory, written by rank 0.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, sharedPath } from '../helpers';

const CLI = join(ROOT, 'dist', 'cjs', 'cli', 'index.js');
const tmp = mkdtempSync(join(tmpdir(), 'tl-cli-ddp-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true })); // checkpoints of ResNets add up over runs

function train(out: string, extra: string[]): any {
  const args = ['--json', 'train', '--data', sharedPath('data', 'hymenoptera'), '--arch', 'squeezenet1_1', '--weights', sharedPath('weights', 'squeezenet1_1-imagenet.pth'), '--strategy', 'full', '--epochs', '3', '--lr', '1e-3', '--optimizer', 'adam', '--seed', '3', '--out', out, ...extra];
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: tmp, maxBuffer: 64 << 20 });
  if (r.status !== 0) console.log(r.stdout.slice(-3000), r.stderr.slice(-3000));
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout);
}

test('2 ranks reach the single-process validation accuracy (within 0.03) and write one run directory', () => {
  const one = train(join(tmp, 'one'), ['--batch-size', '32']);
  const two = train(join(tmp, 'two'), ['--batch-size', '16', '--nproc-per-node', '2', '--master-port', String(29000 + Math.floor(Math.random() * 900))]);
  console.log(`train --nproc-per-node 2: val accuracy ${two.evaluation.accuracy.toFixed(3)} (${two.seconds.toFixed(1)} s) vs one process ${one.evaluation.accuracy.toFixed(3)} (${one.seconds.toFixed(1)} s)`);
  expect(two.history).toHaveLength(3);
  expect(two.trainSamples).toBe(244);
  expect(Math.abs(two.evaluation.accuracy - one.evaluation.accuracy)).toBeLessThanOrEqual(0.03);
  expect(two.evaluation.accuracy).toBeGreaterThan(0.8);
  for (const f of ['best.pth', 'last.pth', 'metrics.json', 'report.html']) expect(existsSync(join(tmp, 'two', f))).toBe(true);
  expect(readdirSync(tmp).sort()).toEqual(['one', 'two']); // no second run directory from rank 1
});
