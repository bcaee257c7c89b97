// Hyperparameter search (tune): successive halving keeps 1/eta per rung with eta× the epochs, is deterministic per
// seed, resumes after kill -9 without rerunning finished fits (and ends where an uninterrupted search ends), writes the
// table into metrics.json and report.html, and its best.pth is the best fit's weights.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataLoader, ImageFolder, InvalidOptionError, Model, Transform, tune, Trainer } from '../../lib';
import { ROOT, sharedPath } from '../helpers';

const tmp = mkdtempSync(join(tmpdir(), 'tl-tune-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const CLI = join(ROOT, 'dist', 'cjs', 'cli', 'index.js');
const data = () => sharedPath('data', 'hymenoptera');
const weights = () => sharedPath('weights', 'squeezenet1_1-imagenet.pth');
const args = (out: string) => ['--json', 'tune', '--data', data(), '--arch', 'squeezenet1_1', '--weights', weights(), '--trials', '4', '--eta', '2', '--max-epochs', '2', '--image-size', '96', '--batch-size', '32', '--out', out];
type Result = { results: { trial: number; rung: number; epochs: number; valAccuracy: number; valLoss: number; config: Record<string, unknown> }[]; best: { trial: number; rung: number; valAccuracy: number; valLoss: number }; weights: string; resumedFits: number; epochs: number };
const strip = (r: Result) => r.results.map(({ trial, rung, epochs, valAccuracy, valLoss, config }) => ({ trial, rung, epochs, valAccuracy, valLoss, config })).sort((a, b) => a.rung - b.rung || a.trial - b.trial);

let clean: Result;

test('CLI: 4 trials, eta 2: rung 1 trains all 4 for 1 epoch, rung 2 the best 2 for 2; the best fit of any rung wins; metrics.json, report.html, best.pth agree', () => {
  const out = join(tmp, 'clean');
  const r = spawnSync(process.execPath, [CLI, ...args(out)], { encoding: 'utf8' });
  expect(r.status).toBe(0);
  clean = JSON.parse(r.stdout) as Result;
  expect(clean.results.map((x) => [x.rung, x.epochs])).toEqual([[0, 1], [0, 1], [0, 1], [0, 1], [1, 2], [1, 2]]);
  const rung0 = clean.results.filter((x) => x.rung === 0).sort((a, b) => b.valAccuracy - a.valAccuracy || a.valLoss - b.valLoss);
  expect(clean.results.filter((x) => x.rung === 1).map((x) => x.trial).sort()).toEqual(rung0.slice(0, 2).map((x) => x.trial).sort());
  expect(clean.best.valAccuracy).toBe(Math.max(...clean.results.map((x) => x.valAccuracy)));
  expect(clean.epochs).toBe(8);
  const m = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')) as Result;
  expect(strip(m)).toEqual(strip(clean));
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  expect((html.match(/<tr[ >]/g) ?? []).length).toBe(1 + clean.results.length);
  expect(html).toContain('class="best"');
  expect(existsSync(join(out, 'best.pth'))).toBe(true);
});

test('best.pth is the best fit: loaded and evaluated, it gives its validation accuracy', async () => {
  const model = await Model.load(join(tmp, 'clean', 'best.pth'));
  const val = await ImageFolder.open(join(data(), 'val'), { transform: Transform.imagenetEval(96, 110) });
  const rep = await new Trainer(model, {}).evaluate(new DataLoader(val, { batchSize: 32 }));
  expect(rep.accuracy).toBeCloseTo(clean.best.valAccuracy, 6);
  model.dispose();
});

test('kill -9 mid-search, then the same command: finished fits are not rerun, and the search ends as the uninterrupted one', async () => {
  const out = join(tmp, 'killed');
  const child = spawn(process.execPath, [CLI, ...args(out)], { stdio: 'ignore' });
  const journal = join(out, 'tune.json');
  const fits = () => (existsSync(journal) ? (JSON.parse(readFileSync(journal, 'utf8')) as Result).results.length : 0);
  await new Promise<void>((resolve, reject) => {
    const t0 = Date.now();
    const poll = setInterval(() => {
      if (fits() >= 2) {
        clearInterval(poll);
        child.kill('SIGKILL');
        resolve();
      } else if (Date.now() - t0 > 120_000) {
        clearInterval(poll);
        child.kill('SIGKILL');
        reject(new Error('no fit was journaled in 120 s'));
      }
    }, 50);
  });
  await new Promise((r) => child.once('exit', r));
  const before = fits();
  expect(before).toBeGreaterThanOrEqual(2);
  expect(before).toBeLessThan(6);
  const r = spawnSync(process.execPath, [CLI, ...args(out)], { encoding: 'utf8' });
  expect(r.status).toBe(0);
  const resumed = JSON.parse(r.stdout) as Result;
  expect(resumed.resumedFits).toBe(before);
  expect(strip(resumed)).toEqual(strip(clean));
  expect(resumed.best).toMatchObject({ trial: clean.best.trial, rung: clean.best.rung, valAccuracy: clean.best.valAccuracy });
});

test('the same seed draws the same configurations in the library; another search in the same directory is refused', async () => {
  const train = await ImageFolder.open(join(data(), 'train'), { transform: Transform.imagenetTrain(96) });
  const val = await ImageFolder.open(join(data(), 'val'), { transform: Transform.imagenetEval(96, 110) });
  const dir = join(tmp, 'lib');
  const opts = { model: { arch: 'squeezenet1_1' as const, weights: weights() }, train, val, trials: 2, eta: 2, maxEpochs: 1, dir, batchSize: 32 };
  const a = await tune(opts);
  expect(a.results).toHaveLength(2);
  expect(a.results.map((x) => x.config)).toEqual(clean.results.filter((x) => x.rung === 0).slice(0, 2).map((x) => x.config));
  await expect(tune({ ...opts, seed: 1 })).rejects.toThrow(InvalidOptionError);
  await expect(tune({ ...opts, seed: 1 })).rejects.toThrow(/tune\.json belongs to another search/);
  await expect(tune({ ...opts, dir: join(tmp, 'bad'), space: { lr: { log: [0, 1] } } })).rejects.toThrow(/space\.lr\.log/);
  await expect(tune({ ...opts, dir: join(tmp, 'bad'), space: { trainFrom: { choices: ['layer9'] } } })).rejects.toThrow(/space\.trainFrom/);
  await expect(tune({ ...opts, dir: join(tmp, 'bad'), rungs: 3 })).rejects.toThrow(/rungs/);
});
