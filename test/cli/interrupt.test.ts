// Interruptions tell the truth: Ctrl-C (SIGINT) and SIGTERM during `train` stop at the next step, keep what is
// complete, mark metrics.json and report.html interrupted, print only paths that exist and exit 130 / 143; a second
// signal ends the process at once and the newest complete checkpoint generation still loads.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Model } from '../../lib';
import { latestGeneration } from '../../lib/durable';
import { makeSyntheticDataset } from '../../lib/synthetic';
import { ROOT } from '../helpers';

const CLI = join(ROOT, 'dist', 'cjs', 'cli', 'index.js');
const tmp = mkdtempSync(join(tmpdir(), 'tl-int-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const data = join(tmp, 'data');
beforeAll(async () => {
  await makeSyntheticDataset(data, { classes: 3, trainPerClass: 40, valPerClass: 8, size: 48 });
}, 60_000);

interface Ended {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Milliseconds from the last signal sent to the exit. */
  exitMs: number;
}

/**
 * Runs `train` and sends `signals` once its output matches `when` (the second signal `gapMs` after the first).
 * `arch`/`size` set how long one step takes.
 */
function trainAndSignal(out: string, when: RegExp, signals: NodeJS.Signals[], opts: { arch?: string; size?: number; gapMs?: number; delayMs?: number } = {}): Promise<Ended> {
  const args = [CLI, 'train', '--data', data, '--arch', opts.arch ?? 'squeezenet1_1', '--weights', 'none', '--image-size', String(opts.size ?? 32), '--batch-size', '16', '--epochs', '200', '--workers', '1', '--out', out];
  const child = spawn(process.execPath, args, { cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let sentAt = 0;
  let sent = false;
  return new Promise((resolve, reject) => {
    const check = () => {
      if (sent || !when.test(stdout + stderr)) return;
      sent = true;
      signals.forEach((sig, i) =>
        setTimeout(() => {
          sentAt = performance.now();
          child.kill(sig);
        }, (opts.delayMs ?? 0) + i * (opts.gapMs ?? 100)),
      );
    };
    child.stdout.on('data', (d) => {
      stdout += d;
      check();
    });
    child.stderr.on('data', (d) => {
      stderr += d;
      check();
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr, exitMs: performance.now() - sentAt }));
  });
}

/** Every .pth path the command printed exists. */
function printedPathsExist(text: string): string[] {
  const paths = text.match(/\/[^\s;,]+\.pth/g) ?? [];
  for (const p of paths) expect(existsSync(p)).toBe(true);
  return paths;
}

test('Ctrl-C after an epoch: exit 130, metrics.json and the report say interrupted, the printed weights exist and load', async () => {
  const out = join(tmp, 'after-epoch');
  const r = await trainAndSignal(out, /epoch 1\/200 /, ['SIGINT']);
  expect(r.code).toBe(130);
  const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
  expect(metrics.interrupted).toBe(true);
  expect(metrics.history.length).toBeGreaterThanOrEqual(1);
  expect(metrics.evaluation).toBeUndefined(); // no evaluation of a half-trained model
  expect(existsSync(metrics.bestWeights)).toBe(true);
  expect(r.stdout).toMatch(/interrupted after \d+ complete epochs?/);
  expect(printedPathsExist(r.stdout)).toContain(metrics.bestWeights);
  expect(readFileSync(join(out, 'report.html'), 'utf8')).toMatch(/<b>Interrupted<\/b> after \d+ complete epoch/);
  const model = await Model.load(metrics.bestWeights);
  expect(model.numClasses).toBe(3);
  model.dispose();
  const gen = await latestGeneration(out);
  expect(gen).toBeDefined();
}, 120_000);

test('Ctrl-C before the first epoch ends: exit 130, no weights claimed, history empty', async () => {
  const out = join(tmp, 'before-epoch');
  // the resnet50 at 64 px keeps the first epoch long enough for the signal to land inside it
  const r = await trainAndSignal(out, /training \/ \d+ validation images/, ['SIGINT'], { arch: 'resnet50', size: 64 });
  expect(r.code).toBe(130);
  const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
  expect(metrics).toMatchObject({ interrupted: true, history: [] });
  expect(metrics.bestWeights).toBeUndefined();
  expect(r.stdout).toMatch(/no epoch finished, so no weights were written/);
  expect(printedPathsExist(r.stdout)).toEqual([]);
  expect(existsSync(join(out, 'best.pth'))).toBe(false);
}, 120_000);

test('SIGTERM: exit 143 with the same guarantees', async () => {
  const out = join(tmp, 'sigterm');
  const r = await trainAndSignal(out, /epoch 1\/200 /, ['SIGTERM']);
  expect(r.code).toBe(143);
  const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
  expect(metrics.interrupted).toBe(true);
  printedPathsExist(r.stdout);
}, 120_000);

test('a second Ctrl-C ends the process at once (under 1 s, less than the step in flight) and the newest complete generation still loads', async () => {
  const out = join(tmp, 'twice');
  // resnet50 at 160 px: one training step takes over a second, so both signals land while a step is in flight
  const r = await trainAndSignal(out, /epoch 1\/200 /, ['SIGINT', 'SIGINT'], { arch: 'resnet50', size: 160, delayMs: 600, gapMs: 100 });
  console.log(`second Ctrl-C to exit: ${r.exitMs.toFixed(0)} ms (exit ${r.code}, signal ${r.signal})`);
  expect(r.stdout).toContain('interrupted (SIGINT)');
  expect(r.stderr).toContain('exiting now (130)');
  expect(r.code).toBe(130);
  expect(r.exitMs).toBeLessThanOrEqual(1000);
  const gen = await latestGeneration<{ epoch: number }>(out);
  expect(gen?.state.epoch).toBeGreaterThanOrEqual(1);
  const model = await Model.load(gen!.files.model);
  expect(model.arch).toBe('resnet50');
  model.dispose();
}, 300_000);
