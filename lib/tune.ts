// Hyperparameter search by successive halving (Jamieson & Talwalkar 2016; the rung rule of ASHA / Optuna's
// SuccessiveHalvingPruner): `trials` configurations drawn from the space with a seeded generator are each trained for
// the first rung's epochs; the best 1/eta (validation accuracy, then loss) go on to eta times the epochs, and so on up
// to `maxEpochs`. The result is the best fit of any rung (each is a complete training run, selected on validation
// accuracy as a fit's restoreBest selects its epoch). Each (trial, rung) is a fresh Trainer fit from the initial weights, so a result depends only on its
// configuration and seed. A journal (tune.json, written atomically after every fit) makes the search resumable after
// kill -9: finished fits are not rerun. The best trial's weights are saved as best.pth, a table in metrics.json and
// report.html.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DataLoader, ImageDataset } from './data';
import { manualSeed } from './device';
import { writeFileDurable } from './durable';
import { InvalidOptionError } from './errors';
import { Model, ModelOptions } from './model';
import { TuneReport, writeTuneReport } from './report';
import { Trainer, TRAINER_DEFAULTS, TrainerOptions } from './trainer';
import { seededRandom } from './random';
import * as v from './validate';

/** One dimension of the space: a log-uniform range, or a list of choices. */
export type TuneDimension<T> = { log: [number, number] } | { choices: T[] };

/** What `tune` searches over. `trainFrom: null` trains the head only ('feature-extract'); a stage name trains from it. */
export interface TuneSpace {
  lr: TuneDimension<number>;
  backboneLr: TuneDimension<number>;
  weightDecay: TuneDimension<number>;
  trainFrom: TuneDimension<string | null>;
  labelSmoothing: TuneDimension<number>;
  mixup: TuneDimension<boolean>;
  cutmix: TuneDimension<boolean>;
}

/** One configuration of the space. */
export interface TuneConfig {
  lr: number;
  backboneLr: number;
  weightDecay: number;
  trainFrom: string | null;
  labelSmoothing: number;
  mixup: boolean;
  cutmix: boolean;
}

export interface TuneOptions {
  /** How each trial's model is made (weights included); classes come from `train`. */
  model: Omit<ModelOptions, 'numClasses' | 'classes'>;
  /** Training images (with their augmentation) and validation images (deterministic transform). */
  train: ImageDataset;
  val: ImageDataset;
  /** Dimensions replacing the default space's (see `tuneSpace`). */
  space?: Partial<TuneSpace>;
  /** Configurations in the first rung: the Trainer's default recipe, and trials − 1 drawn from the space. Default 9. */
  trials?: number;
  /** Kept fraction 1/eta and epoch factor eta between rungs. Default 3. */
  eta?: number;
  /** Epochs of the last rung (the first gets maxEpochs / eta^(rungs-1), at least 1). Default 25 (a default fit's). */
  maxEpochs?: number;
  /** Rungs. Default: as many as the trials and epochs allow (each rung eta× the epochs of the one before), at most 3. */
  rungs?: number;
  /** Draws the configurations and seeds every fit. Default 0. */
  seed?: number;
  batchSize?: number;
  /** Other Trainer options every trial shares (optimizer, schedule, precision, …). */
  trainer?: Omit<TrainerOptions, 'epochs' | 'lr' | 'backboneLr' | 'weightDecay' | 'trainFrom' | 'labelSmoothing' | 'strategy' | 'seed' | 'checkpointDir' | 'resumeFrom'>;
  /** Journal, best.pth, metrics.json and report.html go here; an existing journal of the same search is resumed. */
  dir: string;
  signal?: AbortSignal;
  /** Called after every fit. */
  onTrial?: (t: TuneTrialResult) => void;
}

/** One fit of one configuration at one rung. */
export interface TuneTrialResult {
  trial: number;
  rung: number;
  epochs: number;
  config: TuneConfig;
  valAccuracy: number;
  valLoss: number;
  seconds: number;
}

export interface TuneResult {
  /** Every fit, in the order run. */
  results: TuneTrialResult[];
  /** The best fit of any rung (validation accuracy, then loss, then the longer training): its weights are `weights`. */
  best: TuneTrialResult;
  weights: string;
  /** Epochs trained over all fits, and seconds (this process only, when resumed). */
  epochs: number;
  seconds: number;
  resumedFits: number;
}

/** The default space for `model` (its stages give trainFrom's choices: the head only, the last two stages). */
export function tuneSpace(model: { stages: string[] }): TuneSpace {
  const s = model.stages;
  return {
    lr: { log: [1e-4, 1e-2] },
    backboneLr: { log: [1e-5, 1e-3] },
    weightDecay: { log: [1e-6, 1e-3] },
    trainFrom: { choices: [null, s[s.length - 2], s[s.length - 3]].filter((x, i) => i === 0 || x !== undefined) as (string | null)[] },
    labelSmoothing: { choices: [0, 0.1] },
    mixup: { choices: [false, true] },
    cutmix: { choices: [false] },
  };
}

export const TUNE_DEFAULTS = { trials: 9, eta: 3, maxEpochs: TRAINER_DEFAULTS.epochs, seed: 0, maxRungs: 3 };

function draw<T>(d: TuneDimension<T>, rand: () => number): T {
  if ('log' in d) return Math.exp(Math.log(d.log[0]) + rand() * (Math.log(d.log[1]) - Math.log(d.log[0]))) as T;
  return d.choices[Math.min(d.choices.length - 1, Math.floor(rand() * d.choices.length))];
}

function validateDimension(name: string, d: unknown): void {
  const o = v.plainObject(`space.${name}`, d) as Record<string, unknown>;
  if ('log' in o) {
    const r = o.log as number[];
    if (!Array.isArray(r) || r.length !== 2 || !(r[0] > 0) || !(r[1] >= r[0])) throw v.invalid(`space.${name}.log`, '[low, high] with 0 < low <= high', o.log);
  } else if ('choices' in o) {
    if (!Array.isArray(o.choices) || o.choices.length === 0) throw v.invalid(`space.${name}.choices`, 'a non-empty array', o.choices);
  } else throw v.invalid(`space.${name}`, '{ log: [low, high] } or { choices: [...] }', d);
}

/** The fits of rung `r`: which trials, for how many epochs. */
function rungEpochs(maxEpochs: number, eta: number, rungs: number, r: number): number {
  return Math.max(1, Math.round(maxEpochs / eta ** (rungs - 1 - r)));
}

// validation accuracy, then loss, then the longer training, then the earlier trial
const better = (a: TuneTrialResult, b: TuneTrialResult) => b.valAccuracy - a.valAccuracy || a.valLoss - b.valLoss || b.rung - a.rung || a.trial - b.trial;

/** The options checked and filled. */
function resolveTune(options: TuneOptions) {
  const o = v.plainObject('options', options) as unknown as TuneOptions;
  v.knownKeys('options', o as unknown as Record<string, unknown>, ['model', 'train', 'val', 'space', 'trials', 'eta', 'maxEpochs', 'rungs', 'seed', 'batchSize', 'trainer', 'dir', 'signal', 'onTrial']);
  if (!(o.train instanceof ImageDataset)) throw v.invalid('train', 'ImageDataset', o.train);
  if (!(o.val instanceof ImageDataset)) throw v.invalid('val', 'ImageDataset', o.val);
  const trials = o.trials === undefined ? TUNE_DEFAULTS.trials : v.positiveInt('trials', o.trials);
  const eta = o.eta === undefined ? TUNE_DEFAULTS.eta : v.positiveInt('eta', o.eta);
  if (eta < 2) throw v.invalid('eta', 'integer >= 2', eta);
  const maxEpochs = o.maxEpochs === undefined ? TUNE_DEFAULTS.maxEpochs : v.positiveInt('maxEpochs', o.maxEpochs);
  // every rung trains eta times longer than the one before: no more rungs than the trials and the epochs allow
  const logEta = (x: number) => Math.floor(Math.log(x) / Math.log(eta) + 1e-9);
  const possible = Math.min(logEta(trials), logEta(maxEpochs)) + 1;
  const rungs = o.rungs === undefined ? Math.min(TUNE_DEFAULTS.maxRungs, possible) : v.positiveInt('rungs', o.rungs);
  if (rungs > possible) throw new InvalidOptionError('rungs', `${rungs} rungs need at least eta^${rungs - 1} = ${eta ** (rungs - 1)} trials and maxEpochs (got ${trials} trials, maxEpochs ${maxEpochs})`);
  const seed = o.seed === undefined ? TUNE_DEFAULTS.seed : v.nonNegativeInt('seed', o.seed);
  return { o, trials, eta, maxEpochs, rungs, seed, dir: resolve(v.nonEmptyString('dir', o.dir)), classes: o.train.classes };
}

/** The space completed from the model's stages, and the configurations: trial 0 the default recipe, the rest drawn. */
async function drawConfigs(o: TuneOptions, seed: number, trials: number, classes: string[]): Promise<{ space: TuneSpace; configs: TuneConfig[] }> {
  manualSeed(seed);
  const probe = await Model._createForArch({ ...o.model, weights: null, numClasses: classes.length, classes });
  const space: TuneSpace = { ...tuneSpace(probe), ...(o.space ?? {}) };
  const stages = probe.stages;
  probe.dispose();
  for (const [k, d] of Object.entries(space)) validateDimension(k, d);
  for (const t of (space.trainFrom as { choices?: (string | null)[] }).choices ?? [])
    if (t !== null && !stages.includes(t)) throw v.invalid('space.trainFrom', `null or a stage (${stages.join(', ')})`, t);
  const rand = seededRandom(seed);
  // trial 0 is the Trainer's default recipe (as `train` runs it: the head only with pretrained weights, else every
  // layer), so the search starts from what it has to beat
  const defaults: TuneConfig = { lr: TRAINER_DEFAULTS.lr, backboneLr: TRAINER_DEFAULTS.lr * TRAINER_DEFAULTS.backboneLrFactor, weightDecay: TRAINER_DEFAULTS.weightDecay, trainFrom: o.model.weights ? null : stages[0], labelSmoothing: TRAINER_DEFAULTS.labelSmoothing, mixup: false, cutmix: false };
  const drawn = Array.from({ length: trials - 1 }, () => ({
    lr: draw(space.lr, rand),
    backboneLr: draw(space.backboneLr, rand),
    weightDecay: draw(space.weightDecay, rand),
    trainFrom: draw(space.trainFrom, rand),
    labelSmoothing: draw(space.labelSmoothing, rand),
    mixup: draw(space.mixup, rand),
    cutmix: draw(space.cutmix, rand),
  }));
  return { space, configs: [defaults, ...drawn] };
}

/** The journal of `dir`: the same search resumes from it, another is refused. */
function openJournal(dir: string, identity: string): { done: TuneTrialResult[]; best?: TuneTrialResult; write: (results: TuneTrialResult[], best?: TuneTrialResult) => Promise<void> } {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'tune.json');
  const write = (results: TuneTrialResult[], best?: TuneTrialResult) => writeFileDurable(path, JSON.stringify({ identity, results, best: best ?? null }, null, 1));
  if (!existsSync(path)) return { done: [], write };
  const j = JSON.parse(readFileSync(path, 'utf8')) as { identity: string; results: TuneTrialResult[]; best: TuneTrialResult | null };
  if (j.identity !== identity) throw new InvalidOptionError('dir', `${path} belongs to another search (other options or data); use another --out`);
  return { done: j.results, best: j.best ?? undefined, write };
}

/** Searches hyperparameters by successive halving; see the file comment. */
export async function tune(options: TuneOptions): Promise<TuneResult> {
  const { o, trials, eta, maxEpochs, rungs, seed, dir, classes } = resolveTune(options);
  const { space, configs } = await drawConfigs(o, seed, trials, classes);
  const identity = JSON.stringify({ model: o.model, trials, eta, maxEpochs, rungs, seed, space, batchSize: o.batchSize ?? null, trainer: o.trainer ?? {}, train: o.train.length, val: o.val.length, classes });
  const journal = openJournal(dir, identity);
  const t0 = performance.now();
  const results = [...journal.done];
  const bestPath = join(dir, 'best.pth');
  // the fit whose weights best.pth holds
  let best: TuneTrialResult | undefined = journal.best;
  let alive = configs.map((_, i) => i);
  for (let r = 0; r < rungs; r++) {
    const epochs = rungEpochs(maxEpochs, eta, rungs, r);
    for (const trial of alive) {
      if (results.some((x) => x.trial === trial && x.rung === r)) continue;
      if (o.signal?.aborted) throw new InvalidOptionError('signal', 'tune was aborted; run it again with the same options to resume');
      const { result, model } = await fit(o, configs[trial], trial, r, epochs, seed, classes);
      results.push(result);
      try {
        // the best fit so far, of any rung (each is a complete training run): its weights are written before the
        // journal names it
        if (!best || better(result, best) < 0) {
          await model.save(bestPath);
          best = result;
        }
      } finally {
        model.dispose();
      }
      await journal.write(results, best);
      o.onTrial?.(result);
    }
    const scored = results.filter((x) => x.rung === r).sort(better);
    alive = scored.slice(0, Math.max(1, Math.floor(alive.length / eta))).map((x) => x.trial);
  }
  const out: TuneResult = { results, best: best!, weights: bestPath, epochs: results.reduce((s, x) => s + x.epochs, 0), seconds: (performance.now() - t0) / 1000, resumedFits: journal.done.length };
  await writeFileDurable(join(dir, 'metrics.json'), JSON.stringify({ tune: { trials, eta, maxEpochs, rungs, seed, space }, ...out }, null, 1));
  await writeTuneReport(dir, { title: `${o.model.arch} · tune · ${trials} trials`, ...out, results: out.results as unknown as TuneReport['results'], rungs });
  return out;
}

async function fit(o: TuneOptions, c: TuneConfig, trial: number, rung: number, epochs: number, seed: number, classes: string[]): Promise<{ model: Model; result: TuneTrialResult }> {
  const t = performance.now();
  manualSeed(seed + trial);
  const model = await Model._createForArch({ ...o.model, numClasses: classes.length, classes });
  try {
    const trainer = new Trainer(model, {
      ...(o.trainer ?? {}),
      strategy: c.trainFrom === null ? 'feature-extract' : 'partial',
      ...(c.trainFrom === null ? {} : { trainFrom: c.trainFrom, backboneLr: c.backboneLr }),
      epochs,
      lr: c.lr,
      weightDecay: c.weightDecay,
      labelSmoothing: c.labelSmoothing,
      seed: seed + trial,
      signal: o.signal,
    });
    const batchSize = o.batchSize ?? 32;
    const train = new DataLoader(o.train, { batchSize, shuffle: true, seed: seed + trial, ...(c.mixup ? { mixup: { alpha: 0.2 } } : {}), ...(c.cutmix ? { cutmix: { alpha: 1 } } : {}) });
    const val = new DataLoader(o.val, { batchSize });
    const f = await trainer.fit(train, val);
    if (f.aborted) throw new InvalidOptionError('signal', 'tune was aborted; run it again with the same options to resume');
    const rep = await trainer.evaluate(val);
    const result: TuneTrialResult = { trial, rung, epochs, config: c, valAccuracy: rep.accuracy, valLoss: rep.loss, seconds: (performance.now() - t) / 1000 };
    return { model, result };
  } catch (e) {
    model.dispose();
    throw e;
  }
}
