// Transfer decisions from measurements: embeddings of the data through the frozen backbone, the figures that say
// how well they fit the task (k-NN and linear-probe accuracy, LogME, the distance from the backbone's BatchNorm
// statistics, class counts), the recommendation built from them, the linear probe as a head, and collapse
// detection. The math runs natively (cpp/transfer/); this file owns the defaults, the decision table and the words.
import { DataLoader } from './data';
import { InvalidOptionError } from './errors';
import type { EvalReport } from './metrics';
import { HeadKind, Model, Precision } from './model';
import { getNative, NativeFeatureBank, NativeProbeConfig } from './native';
import * as v from './validate';
import { TRAINER_DEFAULTS } from './trainer/defaults';
import { Candidate, CandidateRanking, rankCandidates } from './candidates';

/** Settings of the linear probe (`strategy: 'linear-probe' | 'lp-ft'`, `assess`). */
export interface ProbeOptions {
  /** L2 penalties tried on standardised features (λ/2·‖W‖²); the best 5-fold cross-validated one is used. Default [1e-4, 1e-3, 1e-2, 0.1, 1, 10]. */
  l2Grid?: number[];
  /** Cross-validation folds. Default 5. */
  folds?: number;
  /** L-BFGS iterations per fit. Default 200. */
  maxIter?: number;
  /** Fold assignment seed. Default 0. */
  seed?: number;
  /** Cross-validation uses at most this many samples (the final fit uses all). Default 10000. */
  maxCvSamples?: number;
}

export interface AssessOptions extends ProbeOptions {
  /** Default: the model's. */
  precision?: Precision;
  /** Neighbours of the k-NN probe. Default 20. */
  knnK?: number;
  /** Images whose BatchNorm input statistics are measured. Default 256. */
  bnSamples?: number;
  /** Mean images per class under which the data counts as small. Default 250. */
  smallPerClass?: number;
  /** Linear-probe accuracy, rescaled so that chance is 0 and perfect is 1, from which the features count as matching the task. Default 0.6. */
  goodProbeGain?: number;
  /** Mean BatchNorm KL divergence above which the data counts as far from the backbone's training data. Default 1. */
  farBnShift?: number;
  signal?: AbortSignal;
}

/** The assessment's defaults (defined here only). */
export const ASSESS_DEFAULTS = {
  l2Grid: [1e-4, 1e-3, 1e-2, 0.1, 1, 10],
  folds: 5,
  maxIter: 200,
  seed: 0,
  maxCvSamples: 10000,
  knnK: 20,
  bnSamples: 256,
  smallPerClass: 250,
  goodProbeGain: 0.6,
  farBnShift: 1,
};

/** What the assessment advises. `strategy` and `trainFrom` are Trainer options. */
export interface Recommendation {
  strategy: 'linear-probe' | 'lp-ft';
  /** For `'lp-ft'`: the first stage fine-tuned after the probe. */
  trainFrom?: string;
  /** The head the model should have (`'linear'` holds a probe). */
  head: HeadKind;
  /** Fine-tuning epochs after the probe (0 for `'linear-probe'`). */
  epochs: number;
  /** Adam learning rates of the fine-tuning phase: the head's and the backbone's. */
  lr: number;
  backboneLr: number;
  /** Why, in words, with the figures. */
  reason: string;
}

export interface Assessment {
  count: number;
  numClasses: number;
  classCounts: number[];
  /** Mean images per class, and the largest over the smallest class count. */
  imagesPerClass: number;
  imbalance: number;
  /** The majority class's share (the accuracy of always guessing it). */
  chance: number;
  /** k-NN (cosine) accuracy, 5-fold cross-validated. */
  knnAccuracy: number;
  /** Linear-probe accuracy, cross-validated, at the chosen L2 penalty. */
  linearProbeAccuracy: number;
  linearProbeL2: number;
  /** LogME evidence per sample (higher: the features fit the labels better). */
  logme: number;
  /** Mean KL divergence between the data's BatchNorm input statistics and the running ones; null without BatchNorm. */
  bnShift: number | null;
  bnLayers: number;
  seconds: number;
  recommendation: Recommendation;
}

/** @internal The probe settings, validated and filled. */
export function probeConfig(o: ProbeOptions = {}, prefix = ''): NativeProbeConfig {
  const grid = o.l2Grid ?? ASSESS_DEFAULTS.l2Grid;
  if (!Array.isArray(grid) || grid.length === 0 || grid.some((x) => !(typeof x === 'number' && x >= 0 && Number.isFinite(x))))
    throw v.invalid(`${prefix}l2Grid`, 'non-empty array of non-negative numbers', grid);
  const folds = o.folds === undefined ? ASSESS_DEFAULTS.folds : v.positiveInt(`${prefix}folds`, o.folds);
  if (folds < 2) throw v.invalid(`${prefix}folds`, 'integer >= 2', folds);
  return {
    l2Grid: [...grid].sort((a, b) => a - b),
    folds,
    maxIter: o.maxIter === undefined ? ASSESS_DEFAULTS.maxIter : v.positiveInt(`${prefix}maxIter`, o.maxIter),
    seed: o.seed === undefined ? ASSESS_DEFAULTS.seed : v.nonNegativeInt(`${prefix}seed`, o.seed),
    maxCvSamples: o.maxCvSamples === undefined ? ASSESS_DEFAULTS.maxCvSamples : v.positiveInt(`${prefix}maxCvSamples`, o.maxCvSamples),
  };
}

const ASSESS_KEYS = ['l2Grid', 'folds', 'maxIter', 'seed', 'maxCvSamples', 'precision', 'knnK', 'bnSamples', 'smallPerClass', 'goodProbeGain', 'farBnShift', 'signal'] as const;
const PROBE_KEYS = ['l2Grid', 'folds', 'maxIter', 'seed', 'maxCvSamples'] as const;

/** @internal Checks probe options given as a Trainer option. */
export function validateProbeOptions(o: unknown, name: string): ProbeOptions {
  v.plainObject(name, o);
  v.knownKeys(name, o as Record<string, unknown>, PROBE_KEYS);
  probeConfig(o as ProbeOptions, `${name}.`);
  return o as ProbeOptions;
}

/** @internal Checks assessment options given as a Trainer option. */
export function validateAssessOptions(o: unknown, name: string): AssessOptions {
  v.plainObject(name, o);
  v.knownKeys(name, o as Record<string, unknown>, ASSESS_KEYS);
  const a = o as AssessOptions;
  probeConfig(a, `${name}.`);
  if (a.knnK !== undefined) v.positiveInt(`${name}.knnK`, a.knnK);
  if (a.bnSamples !== undefined) v.nonNegativeInt(`${name}.bnSamples`, a.bnSamples);
  if (a.smallPerClass !== undefined) v.positiveNumber(`${name}.smallPerClass`, a.smallPerClass);
  if (a.goodProbeGain !== undefined) v.numberInRange(`${name}.goodProbeGain`, a.goodProbeGain, 0, 1);
  if (a.farBnShift !== undefined) v.positiveNumber(`${name}.farBnShift`, a.farBnShift);
  return a;
}

/**
 * @internal Embeddings of every sample of `data` (one pass per view; epoch e of the loader is view e) through
 * the model's frozen backbone, held natively.
 */
export async function embedDataset(model: Model, data: DataLoader, o: { precision: 'fp32' | 'bf16' | 'fp16'; bnSamples: number; views?: number; signal?: AbortSignal }): Promise<NativeFeatureBank | undefined> {
  const bank = new (getNative().NativeFeatureBank)(model._handle());
  data._useDevice(model.device);
  for (let view = 0; view < (o.views ?? 1); view++) {
    data.setEpoch(view);
    for await (const batch of data) {
      if (o.signal?.aborted) {
        batch.dispose();
        return undefined;
      }
      await model._run(() => bank.add(batch.native, o.precision, view === 0 ? o.bnSamples : 0));
      batch.dispose();
    }
  }
  return bank;
}

/**
 * Measures how well the model's frozen features fit the labelled data, in one pass over `data` (use a
 * deterministic transform, e.g. `Transform.imagenetEval()`), and recommends a strategy. Seconds to a minute for
 * a few thousand images on a CPU.
 */
export function assess(model: Model, data: DataLoader, options?: AssessOptions): Promise<Assessment>;
/**
 * Source-model choice: assesses each candidate (arch + weights) on `data` and ranks them, best first, by
 * cross-validated linear-probe accuracy, then LogME, then k-NN accuracy (see `RANKING_ORDER`). One model at a time;
 * `options.seed` (default 0) also seeds the global generator before each candidate is created.
 */
export function assess(candidates: Candidate[], data: DataLoader, options?: AssessOptions & { device?: string }): Promise<CandidateRanking>;
export async function assess(model: Model | Candidate[], data: DataLoader, options: AssessOptions & { device?: string } = {}): Promise<Assessment | CandidateRanking> {
  if (Array.isArray(model)) {
    if (!(data instanceof DataLoader)) throw v.invalid('data', 'DataLoader', data);
    const { device, ...rest } = v.plainObject('options', options) as AssessOptions & { device?: string };
    const r = await rankCandidates(model, data, { ...validateAssessOptions(rest, 'options'), device });
    return { ranking: r.ranking, orderedBy: r.orderedBy, closeCall: r.closeCall, ...(r.closeCallReason ? { closeCallReason: r.closeCallReason } : {}), seconds: r.seconds };
  }
  if (!(model instanceof Model)) throw v.invalid('model', 'Model or an array of candidates', model);
  if (!(data instanceof DataLoader)) throw v.invalid('data', 'DataLoader', data);
  const o = validateAssessOptions(options, 'options');
  const t0 = performance.now();
  const bank = await embedDataset(model, data, { precision: model.precision(o.precision), bnSamples: o.bnSamples ?? ASSESS_DEFAULTS.bnSamples, signal: o.signal });
  if (!bank) throw new InvalidOptionError('signal', 'assess was aborted');
  return assessBank(model, bank, data.dataset.classes.length || model.numClasses, o, t0);
}

/** @internal The figures and the recommendation from embeddings already held (the Trainer's 'auto' reuses them). */
export async function assessBank(model: Model, bank: NativeFeatureBank, numClasses: number, o: AssessOptions, t0: number): Promise<Assessment> {
  if (numClasses < 2) throw new InvalidOptionError('data', 'assessing needs labelled data with at least 2 classes');
  const r = await model._run(() => bank.assess({ numClasses, k: o.knnK ?? ASSESS_DEFAULTS.knnK, probe: probeConfig(o) }));
  const counts = r.classCounts;
  const present = counts.filter((c) => c > 0);
  const figures = {
    count: r.count,
    numClasses,
    classCounts: counts,
    imagesPerClass: r.count / numClasses,
    imbalance: present.length ? Math.max(...present) / Math.min(...present) : 1,
    chance: r.count ? Math.max(...counts) / r.count : 0,
    knnAccuracy: r.knn,
    linearProbeAccuracy: r.linear,
    linearProbeL2: r.l2,
    logme: r.logme,
    bnShift: r.bnShift,
    bnLayers: r.bnLayers,
  };
  return { ...figures, seconds: (performance.now() - t0) / 1000, recommendation: recommend(model, figures, o) };
}

/**
 * The decision table (the source document's, with LP-FT from Kumar et al., ICLR 2022, for fine-tuning):
 * small data whose frozen features already separate the classes → linear probe; small and different → linear
 * probe, then fine-tune the last stage; large and similar → linear probe, then fine-tune everything at a low rate;
 * large and different → the same with more epochs and a higher head rate.
 */
export function recommend(model: Model, f: Omit<Assessment, 'seconds' | 'recommendation'>, o: AssessOptions = {}): Recommendation {
  const small = f.imagesPerClass < (o.smallPerClass ?? ASSESS_DEFAULTS.smallPerClass);
  const gain = f.chance < 1 ? (f.linearProbeAccuracy - f.chance) / (1 - f.chance) : 0;
  const far = f.bnShift !== null && f.bnShift > (o.farBnShift ?? ASSESS_DEFAULTS.farBnShift);
  const similar = gain >= (o.goodProbeGain ?? ASSESS_DEFAULTS.goodProbeGain) && !far;
  const stages = model.stages;
  const lastBackbone = stages[stages.length - 2];
  const p = (x: number) => `${(100 * x).toFixed(1)}%`;
  const facts =
    `${f.count} images, ${f.imagesPerClass.toFixed(0)} per class (${small ? 'small' : 'large'} data); linear probe ${p(f.linearProbeAccuracy)}, ` +
    `k-NN ${p(f.knnAccuracy)} against ${p(f.chance)} by chance (${similar ? 'the features fit the task' : 'the features fit the task poorly'})` +
    (f.bnShift === null ? '' : `; BatchNorm shift ${f.bnShift.toFixed(2)}${far ? ' (far from the backbone\'s data)' : ''}`);
  const head: HeadKind = 'linear';
  const headNote = model.head === 'torchvision' && model.arch === 'squeezenet1_1' ? " squeezenet1_1 gets a linear head: torchvision's conv → ReLU → pool head cannot hold a linear probe and can collapse to one class." : '';
  if (small && similar)
    return { strategy: 'linear-probe', head, epochs: 0, lr: 0, backboneLr: 0, reason: `${facts}: a linear probe on the frozen features (fine-tuning few images risks overfitting what already works).${headNote}` };
  if (small)
    return { strategy: 'lp-ft', trainFrom: lastBackbone, head, epochs: 2 * TRAINER_DEFAULTS.lpftEpochs, lr: TRAINER_DEFAULTS.lpftLr, backboneLr: TRAINER_DEFAULTS.lpftLr, reason: `${facts}: a linear probe, then fine-tune from ${lastBackbone} at a low rate (LP-FT; the early stages stay frozen with little data).${headNote}` };
  if (similar)
    return { strategy: 'lp-ft', trainFrom: stages[0], head, epochs: TRAINER_DEFAULTS.lpftEpochs, lr: TRAINER_DEFAULTS.lpftLr, backboneLr: TRAINER_DEFAULTS.lpftLr, reason: `${facts}: a linear probe, then fine-tune every layer at a low rate (LP-FT keeps the pretrained features from being distorted by a random head).${headNote}` };
  return { strategy: 'lp-ft', trainFrom: stages[0], head, epochs: 2 * TRAINER_DEFAULTS.lpftEpochs, lr: TRAINER_DEFAULTS.lr, backboneLr: TRAINER_DEFAULTS.lpftLr, reason: `${facts}: a linear probe, then fine-tune every layer (enough data to move far from the pretrained features).${headNote}` };
}

/** A validation epoch where the model predicts (almost) one class. */
export interface Collapse {
  epoch: number;
  classIndex: number;
  class: string;
  /** Share of validation predictions in that class, and that class's share of the validation data. */
  predictedShare: number;
  dataShare: number;
}

/** Collapse thresholds: ≥ 95 % of predictions in one class holding at most 85 % of the data. */
export const COLLAPSE_DEFAULTS = { predictedShare: 0.95, maxDataShare: 0.85 };

/** @internal The collapse an evaluation shows, if any. */
export function detectCollapse(rep: EvalReport, epoch: number): Collapse | undefined {
  const n = rep.count;
  if (!n || rep.classes.length < 2) return undefined;
  const predicted = rep.classes.map((_, j) => rep.confusion.reduce((a, row) => a + row[j], 0));
  let c = 0;
  for (let j = 1; j < predicted.length; j++) if (predicted[j] > predicted[c]) c = j;
  const predictedShare = predicted[c] / n;
  const dataShare = rep.confusion[c].reduce((a, b) => a + b, 0) / n;
  if (predictedShare < COLLAPSE_DEFAULTS.predictedShare || dataShare > COLLAPSE_DEFAULTS.maxDataShare) return undefined;
  return { epoch, classIndex: c, class: rep.classes[c], predictedShare, dataShare };
}
