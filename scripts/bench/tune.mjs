// bench:tune — the hyperparameter search against the default recipe, same run, same seed: `train` with its defaults
// (25 epochs, Adam 1e-3, the head only on pretrained weights) and `tune` with its defaults (9 trials, successive
// halving with eta 3 over 3/8/25 epochs, trial 0 the default recipe), both on ants/bees with squeezenet1_1's ImageNet
// weights. Prints validation accuracy and wall time of each and the time ratio (target: tuned >= default, <= 4x).
// usage: node scripts/bench/tune.mjs [--seed 0]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { sharedPath } from './common.mjs';

const { values } = parseArgs({ options: { seed: { type: 'string', default: '0' } } });
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cjs', 'cli', 'index.js');
const tmp = mkdtempSync(join(tmpdir(), 'bench-tune-'));
const common = ['--data', sharedPath('data', 'hymenoptera'), '--arch', 'squeezenet1_1', '--weights', sharedPath('weights', 'squeezenet1_1-imagenet.pth'), '--seed', values.seed];
const timed = (args) => {
  const t0 = performance.now();
  const out = execFileSync(process.execPath, [CLI, '--json', ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { seconds: (performance.now() - t0) / 1000, json: JSON.parse(out) };
};
const def = timed(['train', ...common, '--out', join(tmp, 'default')]);
const defAcc = JSON.parse(readFileSync(join(tmp, 'default', 'metrics.json'), 'utf8')).evaluation.accuracy;
const tuned = timed(['tune', ...common, '--out', join(tmp, 'tune')]);
rmSync(tmp, { recursive: true, force: true });
const b = tuned.json.best;
console.log(`\ntune vs the default recipe, squeezenet1_1 ImageNet weights on ants/bees (244 train / 153 val), seed ${values.seed}`);
console.log('| run | validation accuracy | wall time (s) | epochs |');
console.log('|---|---|---|---|');
console.log(`| train (defaults) | ${defAcc.toFixed(3)} | ${def.seconds.toFixed(1)} | 25 |`);
console.log(`| tune (defaults): best = trial ${b.trial}, rung ${b.rung + 1} | ${b.valAccuracy.toFixed(3)} | ${tuned.seconds.toFixed(1)} | ${tuned.json.epochs} over ${tuned.json.results.length} fits |`);
console.log(`best configuration: ${JSON.stringify(b.config)}`);
console.log(`tuned - default accuracy: ${(b.valAccuracy - defAcc).toFixed(3)}; time ratio ${(tuned.seconds / def.seconds).toFixed(2)}x`);
console.log(JSON.stringify({ bench: 'tune', default: { accuracy: defAcc, seconds: def.seconds }, tune: { accuracy: b.valAccuracy, seconds: tuned.seconds, best: b, fits: tuned.json.results.length, epochs: tuned.json.epochs } }));
