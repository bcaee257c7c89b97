import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DataLoader, ImageFolder, needTwoClasses } from './data';
import { DistributedOptions, resolveDistributed, ResolvedDistributed } from './distributed';
import { cleanStaleTemporaries, commitGeneration, GENERATIONS, latestGeneration } from './durable';
import { CheckpointError, InvalidOptionError } from './errors';
import { EvalReport, MetricAccumulator } from './metrics';
import { Model, Precision } from './model';
import { assessBank, Assessment, AssessOptions, ASSESS_DEFAULTS, Collapse, detectCollapse, embedDataset, probeConfig, ProbeOptions, Recommendation, validateAssessOptions, validateProbeOptions } from './transfer';
import { getNative, NativeReduceStats, NativeTrainer } from './native';
import { Schedule, Scheduler, SchedulerState, validateSchedule } from './schedule';
import * as v from './validate';

export type Strategy = 'feature-extract' | 'partial' | 'full' | 'linear-probe' | 'lp-ft' | 'auto';
const STRATEGIES = ['feature-extract', 'partial', 'full', 'linear-probe', 'lp-ft', 'auto'] as const;
export type Optimizer = 'sgd' | 'adam' | 'adamw' | 'rmsprop';
export type Monitor = 'valAccuracy' | 'valLoss' | 'accuracy' | 'loss';

export interface TrainerOptions {
  /**
   * Which layers train. `'feature-extract'`: only the head; `'partial'`: from `trainFrom` on; `'full'`: everything.
   * `'linear-probe'`: the head fitted in closed form (softmax regression by L-BFGS, L2 penalty cross-validated) on
   * the frozen backbone's features, in one pass over the data (epoch 0; `epochs` does not apply). `'lp-ft'`: that
   * probe, then `epochs` of fine-tuning from `trainFrom` (default the first stage) with the head and the backbone at
   * the backbone rate (Kumar et al., ICLR 2022). `'auto'`: assess the data (see `assess`), follow the recommendation
   * (given `lr`, `backboneLr` and `epochs` override it), and when fine-tuning collapses to one class, restore the
   * probe's weights and stop. Probes need a linear head (`head: 'linear'` for squeezenet1_1; `'auto'` switches it).
   * Default: `'feature-extract'` when the model was loaded with pretrained weights, else `'full'`.
   */
  strategy?: Strategy;
  /** First trainable stage for `'partial'` and `'lp-ft'` (a name from `model.stages`). Default: the last stage before the head (`'partial'`), the first stage (`'lp-ft'`). */
  trainFrom?: string;
  /** Linear-probe settings (`'linear-probe'`, `'lp-ft'`, `'auto'`). */
  probe?: ProbeOptions;
  /** Assessment settings and decision thresholds of `'auto'`. */
  assess?: AssessOptions;
  /** Gradual unfreezing: at `epoch` (0-based) training extends to stage `from`, backbone rate times `lrScale`. */
  unfreeze?: { epoch: number; from: string; lrScale?: number }[];
  /** Default 25 (the document's). */
  epochs?: number;
  /** Default `'adam'`. */
  optimizer?: Optimizer;
  /** Head learning rate. Default 1e-3. */
  lr?: number;
  /** Learning rate of trainable layers before the head. Default `lr / 10`. */
  backboneLr?: number;
  /** Default 0. */
  weightDecay?: number;
  /** Exempt 1-D parameters (BatchNorm weights and biases, every bias) from weight decay. Default true. */
  noDecayNormBias?: boolean;
  /** SGD/RMSprop momentum. Default 0.9 for SGD, 0 for RMSprop. */
  momentum?: number;
  nesterov?: boolean;
  dampening?: number;
  /** Adam/AdamW betas. Default [0.9, 0.999]. */
  betas?: [number, number];
  eps?: number;
  /** RMSprop smoothing constant (torch.optim.RMSprop's `alpha`). Default 0.99. */
  alpha?: number;
  /** Learning-rate schedule. Default constant. */
  schedule?: Schedule;
  /** Cross-entropy label smoothing. Default 0. */
  labelSmoothing?: number;
  /** Clip the global gradient norm. Default off. */
  clipGradNorm?: number;
  /** Batches per optimizer step. Default 1. */
  accumulate?: number;
  /**
   * `'auto'` (default): bf16 autocast on CPUs with native BF16 and on CUDA, else fp32. channels_last comes from
   * the model (`channelsLast`, default true).
   */
  precision?: Precision;
  /**
   * Dynamic loss scaling (torch.amp.GradScaler): the loss is scaled before backward, gradients are unscaled before
   * clipping and the step, a step with inf/NaN gradients is skipped and the scale halved; after `growthInterval`
   * clean steps it doubles. Default: on for `precision: 'fp16'`, off otherwise. `true` = the defaults below.
   */
  lossScale?: boolean | { initScale?: number; growthFactor?: number; backoffFactor?: number; growthInterval?: number };
  /**
   * BatchNorm layers kept in eval mode (running statistics frozen, batch statistics not used): `true` (default)
   * those of frozen stages; `'all'` every one (fine-tuning with small batches; what data-parallel equivalence
   * needs); `false` none.
   */
  freezeBatchNormStats?: boolean | 'all';
  /** Metric for best checkpoints, plateau schedules and early stopping. Default `'valAccuracy'` (`'accuracy'` without validation data). */
  monitor?: Monitor;
  earlyStopping?: { patience: number; minDelta?: number; restoreBest?: boolean };
  /** Keeps `last` every epoch and `best` by the monitored metric here (atomic writes). */
  checkpointDir?: string;
  /** A checkpoint directory to continue from. */
  resumeFrom?: string;
  /** Stops at the next step boundary; the last checkpoint stays consistent. */
  signal?: AbortSignal;
  /** Seeds libtorch's generator (dropout, re-initialised layers) for reproducible runs. Default: not seeded. */
  seed?: number;
  /** Horizontal-flip test-time augmentation in validation. Default false. */
  tta?: boolean;
  /**
   * Feature cache for `'feature-extract'`: the frozen backbone runs once per sample (or per augmented view) and the
   * head trains on cached features. `'auto'` (default): on for feature-extract when the training transform is
   * deterministic or `featureCacheViews` is set, and no MixUp/CutMix.
   */
  featureCache?: boolean | 'auto';
  /** Augmented views cached per sample (epoch e trains on view e mod K). Default 1. */
  featureCacheViews?: number;
  /** Memory bound of the cache; above it training falls back to the uncached path. Default 4 GiB. */
  featureCacheMaxBytes?: number;
  /**
   * Data-parallel training over c10d (Gloo). `'auto'` (default): when torchrun's environment says so (WORLD_SIZE
   * above 1, as `torch-resnet-tl launch` sets it); `false`: never; or explicit options. Each rank trains on its
   * shard of the training data (DistributedSampler's semantics), gradients are averaged over the ranks before each
   * optimizer step, loss/accuracy are reduced over the ranks, every rank validates on the whole validation set,
   * and only rank 0 writes checkpoints.
   */
  distributed?: boolean | 'auto' | DistributedOptions;
  /**
   * Unsupervised domain adaptation to unlabelled `target` images (their labels, if any, are ignored): each step
   * also draws a target batch, both go through the backbone together, and the adaptation loss on the pooled
   * features joins the source cross-entropy. `'dann'`: a domain classifier behind a gradient-reversal layer whose
   * factor warms up as 2/(1 + e^(-10p)) - 1 over training progress p (Ganin et al. 2016); `'mmd'`: multi-kernel MMD
   * between source and target features (DAN, Long et al. 2015), scaled by the same warm-up. Evaluate on labelled
   * target data by passing it as `val` (or to `evaluate`).
   */
  domainAdaptation?: DomainAdaptationOptions;
}

export interface DomainAdaptationOptions {
  method: 'dann' | 'mmd';
  /** Unlabelled target-domain images (cycled when shorter than the source data). */
  target: DataLoader;
  /** Weight of the adaptation loss. Default 1. */
  weight?: number;
  /** `'warmup'` (default): the factor 2/(1 + e^(-10p)) - 1; `'constant'`: 1. */
  schedule?: 'warmup' | 'constant';
  /** DANN: width of the domain classifier's two hidden layers. Default 1024. */
  hidden?: number;
  /** MMD: Gaussian kernels (bandwidths ×2^-k/2 … 2^k/2 around the mean distance). Default 5. */
  kernels?: number;
}

/** Domain adaptation's defaults (defined here only). */
export const DOMAIN_ADAPTATION_DEFAULTS = { weight: 1, schedule: 'warmup' as const, hidden: 1024, kernels: 5, warmupGamma: 10 };

const bnMode = (f: boolean | 'all'): 'none' | 'frozen' | 'all' => (f === 'all' ? 'all' : f ? 'frozen' : 'none');

/** GradScaler defaults (torch.amp.GradScaler's). */
const LOSS_SCALE_DEFAULTS = { initScale: 65536, growthFactor: 2, backoffFactor: 0.5, growthInterval: 2000 };

function validateLossScale(ls: TrainerOptions['lossScale'], precision: string) {
  if (ls === undefined || typeof ls === 'boolean') return { enabled: ls ?? precision === 'fp16', ...LOSS_SCALE_DEFAULTS };
  v.plainObject('lossScale', ls);
  v.knownKeys('lossScale', ls as Record<string, unknown>, Object.keys(LOSS_SCALE_DEFAULTS));
  const growthFactor = ls.growthFactor === undefined ? LOSS_SCALE_DEFAULTS.growthFactor : v.positiveNumber('lossScale.growthFactor', ls.growthFactor);
  const backoffFactor = ls.backoffFactor === undefined ? LOSS_SCALE_DEFAULTS.backoffFactor : v.numberInRange('lossScale.backoffFactor', ls.backoffFactor, 0, 1, false);
  if (growthFactor <= 1) throw v.invalid('lossScale.growthFactor', 'number > 1', growthFactor);
  if (backoffFactor <= 0) throw v.invalid('lossScale.backoffFactor', 'number in (0, 1)', backoffFactor);
  return {
    enabled: true,
    initScale: ls.initScale === undefined ? LOSS_SCALE_DEFAULTS.initScale : v.positiveNumber('lossScale.initScale', ls.initScale),
    growthFactor,
    backoffFactor,
    growthInterval: ls.growthInterval === undefined ? LOSS_SCALE_DEFAULTS.growthInterval : v.positiveInt('lossScale.growthInterval', ls.growthInterval),
  };
}

export interface EpochRecord {
  epoch: number;
  loss: number;
  accuracy: number;
  valLoss?: number;
  valAccuracy?: number;
  valTop5?: number;
  lr: { head: number; backbone: number };
  seconds: number;
  trainableParameters: number;
  /** Bytes held by the feature cache (0 when not used). */
  featureCacheBytes: number;
  /** With loss scaling: the scale at the end of the epoch, and the optimizer steps skipped for inf/NaN gradients. */
  lossScale?: number;
  skippedSteps?: number;
  /** `'linear-probe'` for the probe of `'linear-probe'`, `'lp-ft'` and `'auto'` (then loss/accuracy are the probe's on the training features), `'fine-tune'` after it. */
  phase?: 'linear-probe' | 'fine-tune';
  /** The probe's chosen L2 penalty and cross-validated accuracy. */
  probe?: { l2: number; cvAccuracy: number };
  /** Domain adaptation: the mean adaptation loss, the DANN domain classifier's mean accuracy (0.5: the domains look alike) and the last factor. */
  adaptation?: { loss: number; domainAccuracy?: number; lambda: number };
  /** Set when validation predictions collapsed to one class (see the `'collapse'` event). */
  collapse?: Collapse;
  /** Data-parallel runs: this rank's gradient all-reduces over the epoch. */
  allReduce?: AllReduceStats;
}

export interface AllReduceStats {
  /** Gradient buckets all-reduced. */
  buckets: number;
  /** Of those, how many started during the backward pass (`distributed.overlap`). */
  bucketsDuringBackward: number;
  /** Seconds the optimizer steps waited for communication: what the overlap did not hide (with `overlap: false`, the all-reduces' whole time). */
  waitSeconds: number;
}

export interface BatchEndEvent {
  epoch: number;
  batch: number;
  batches: number;
  loss: number;
  accuracy: number;
  lr: { head: number; backbone: number };
}

export interface FitResult {
  history: EpochRecord[];
  /** Best monitored value and its epoch. */
  best?: { epoch: number; value: number };
  stoppedEarly: boolean;
  aborted: boolean;
  /** `'auto'`: the assessment (with its recommendation) the run followed. */
  assessment?: Assessment;
  /** Epochs whose validation predictions collapsed to one class. */
  collapses: Collapse[];
  /** What `'auto'` did about them. */
  recoveries: { epoch: number; action: string }[];
}

/** Every Trainer option (the one list: the CLI's --config keys derive from it). */
export const TRAINER_OPTION_KEYS = ['strategy', 'trainFrom', 'probe', 'assess', 'unfreeze', 'epochs', 'optimizer', 'lr', 'backboneLr', 'weightDecay', 'noDecayNormBias', 'momentum', 'nesterov', 'dampening', 'betas', 'eps', 'alpha', 'schedule', 'labelSmoothing', 'clipGradNorm', 'accumulate', 'precision', 'lossScale', 'freezeBatchNormStats', 'monitor', 'earlyStopping', 'checkpointDir', 'resumeFrom', 'signal', 'seed', 'tta', 'featureCache', 'featureCacheViews', 'featureCacheMaxBytes', 'distributed', 'domainAdaptation'] as const;
const KEYS = TRAINER_OPTION_KEYS;

/**
 * The Trainer's defaults, defined here only (the native side receives every value; the CLI's help prints these).
 * `strategy`: feature-extract with pretrained weights, else full; `backboneLr`: lr × backboneLrFactor; `momentum`:
 * 0.9 for SGD, else 0; `precision`: the model's; `monitor`: valAccuracy with validation data, else accuracy.
 */
export const TRAINER_DEFAULTS = {
  epochs: 25,
  optimizer: 'adam' as const,
  lr: 1e-3,
  backboneLrFactor: 0.1,
  weightDecay: 0,
  noDecayNormBias: true,
  sgdMomentum: 0.9,
  nesterov: false,
  dampening: 0,
  betas: [0.9, 0.999] as [number, number],
  eps: 1e-8,
  rmspropAlpha: 0.99,
  labelSmoothing: 0,
  /** 0: no clipping */
  clipGradNorm: 0,
  accumulate: 1,
  freezeBatchNormStats: true as boolean | 'all',
  featureCache: 'auto' as const,
  featureCacheViews: 1,
  featureCacheMaxBytes: 4 * 2 ** 30,
  earlyStoppingMinDelta: 0,
  restoreBest: true,
  /** `'lp-ft'`: fine-tuning epochs after the probe, and the rate of head and backbone while fine-tuning */
  lpftEpochs: 5,
  lpftLr: 1e-4,
};

/** What one fit keeps across its epochs (see Trainer.openRun). */
interface FitRun {
  nt: NativeTrainer;
  /** data-parallel settings, when this is one rank of several */
  dist?: ResolvedDistributed;
  /** this process writes checkpoints and emits 'checkpoint' (rank 0, or the only process) */
  writer: boolean;
  epochs: number;
  monitor: Monitor;
  mode: 'min' | 'max';
  /** checkpointDir, resolved */
  dir?: string;
  /** where best.pth goes: the checkpoint folder, or a temporary one for restoreBest */
  bestDir?: string;
  scheduler: Scheduler;
  history: EpochRecord[];
  best?: { epoch: number; value: number };
  badEpochs: number;
  /** first epoch to run (after a resume) */
  start: number;
  trainFrom: number;
  /** unfreezing's scale of the backbone rate */
  lrScale: number;
  views: number;
  /** the loss scale after the latest step (kept across epochs) */
  lossScale: number;
  useCache: boolean;
  cached: boolean;
  valCached: boolean;
  cacheBytes: number;
  collapses: Collapse[];
  recoveries: { epoch: number; action: string }[];
  /** weights right after the linear probe ('auto' restores them when fine-tuning collapses) */
  probeWeights?: string;
}

interface EpochTotals {
  /** domain adaptation: sums over steps of the adaptation loss and the domain accuracy, the steps, the last factor */
  adapt?: { lossSum: number; accSum: number; steps: number; lambda: number };
  lossSum: number;
  correct: number;
  count: number;
  skippedSteps: number;
  /** data-parallel: the steps' gradient all-reduces */
  reduce: AllReduceStats;
  /** the rates of the epoch's last step */
  lrs: { head: number; backbone: number };
}

interface CheckpointState {
  version: 1;
  epoch: number; // epochs completed
  history: EpochRecord[];
  scheduler: SchedulerState;
  best?: { epoch: number; value: number };
  badEpochs: number;
  trainFrom: number;
  rng: string;
  lrScale: number;
  /** `'auto'`: what the assessment decided (restored on resume) */
  auto?: { assessment: Assessment };
}

/**
 * Transfer-learning training loop. The loop runs in TypeScript with one native call per step, so the event loop
 * keeps ticking; tensors stay native. Emits `'batchEnd'` (BatchEndEvent), `'epochEnd'` (EpochRecord),
 * `'unfreeze'` ({ epoch, from }), `'checkpoint'` ({ kind, path }), `'assessment'` (Assessment, with `'auto'`),
 * `'collapse'` (Collapse: ≥ 95 % of validation predictions in one class holding ≤ 85 % of the data) and
 * `'recovery'` ({ epoch, action }).
 */
export class Trainer extends EventEmitter {
  readonly model: Model;
  readonly options: Readonly<TrainerOptions>;
  private trainFromIndex: number;
  private unfreeze: { epoch: number; stage: number; from: string; lrScale: number }[];
  /** `'auto'`'s decision, once made (its rates and epochs apply where the options give none) */
  private decision?: { assessment: Assessment; recommendation: Recommendation };
  private readonly schedule: Schedule;
  private native?: Promise<NativeTrainer>;
  /** Trainable parameters under the current freezing (kept from the native session's answers). */
  private trainable = 0;
  /** Data-parallel settings (resolved from the option and torchrun's environment), and whether the group is joined. */
  private readonly dist?: ResolvedDistributed;
  private joined = false;
  private readonly precision: 'fp32' | 'bf16' | 'fp16';
  private readonly lossScale: { enabled: boolean; initScale: number; growthFactor: number; backoffFactor: number; growthInterval: number };

  constructor(model: Model, options: TrainerOptions = {}) {
    super();
    if (!(model instanceof Model)) throw v.invalid('model', 'Model', model);
    const o = v.plainObject('options', options);
    v.knownKeys('options', o, KEYS);
    this.model = model;
    const stages = model.stages;
    const head = stages.length - 1;
    const pretrained = model.loadReport.source !== null;
    const strategy = options.strategy === undefined ? (pretrained ? 'feature-extract' : 'full') : v.oneOf('strategy', options.strategy, STRATEGIES);
    const stageIndex = (name: string, option: string) => {
      const i = stages.indexOf(name);
      if (i < 0 || i === head) throw v.invalid(option, `a stage of ${model.arch} before the head (${stages.slice(0, head).join(', ')})`, name);
      return i;
    };
    if (options.trainFrom !== undefined && strategy !== 'partial' && strategy !== 'lp-ft') throw new InvalidOptionError('trainFrom', "trainFrom applies to strategies 'partial' and 'lp-ft'");
    const probing = strategy === 'linear-probe' || strategy === 'lp-ft' || strategy === 'auto';
    if ((strategy === 'linear-probe' || strategy === 'lp-ft') && model.head !== 'linear' && model.arch === 'squeezenet1_1')
      throw new InvalidOptionError('strategy', `strategy '${strategy}' fits a linear head on the pooled features: create squeezenet1_1 with head: 'linear' (or call model.setHead('linear'))`);
    if (strategy === 'linear-probe' && options.epochs !== undefined) throw new InvalidOptionError('epochs', "epochs does not apply to strategy 'linear-probe' (the probe is one fit on the frozen features); use 'lp-ft' to fine-tune after it");
    if (options.probe !== undefined && !probing) throw new InvalidOptionError('probe', "probe applies to strategies 'linear-probe', 'lp-ft' and 'auto'");
    if (options.probe !== undefined) validateProbeOptions(options.probe, 'probe');
    if (options.assess !== undefined && strategy !== 'auto') throw new InvalidOptionError('assess', "assess applies to strategy 'auto'");
    if (options.assess !== undefined) validateAssessOptions(options.assess, 'assess');
    const given = options.trainFrom === undefined ? undefined : stageIndex(v.nonEmptyString('trainFrom', options.trainFrom), 'trainFrom');
    this.trainFromIndex = strategy === 'full' ? 0 : strategy === 'partial' ? (given ?? head - 1) : head;
    if (options.epochs !== undefined) v.positiveInt('epochs', options.epochs);
    if (options.optimizer !== undefined) v.oneOf('optimizer', options.optimizer, ['sgd', 'adam', 'adamw', 'rmsprop'] as const);
    if (options.lr !== undefined) v.positiveNumber('lr', options.lr);
    if (options.backboneLr !== undefined) v.positiveNumber('backboneLr', options.backboneLr);
    if (options.weightDecay !== undefined) v.numberInRange('weightDecay', options.weightDecay, 0, 1);
    if (options.momentum !== undefined) v.numberInRange('momentum', options.momentum, 0, 1, false);
    if (options.labelSmoothing !== undefined) v.numberInRange('labelSmoothing', options.labelSmoothing, 0, 1, false);
    if (options.clipGradNorm !== undefined) v.positiveNumber('clipGradNorm', options.clipGradNorm);
    if (options.accumulate !== undefined) v.positiveInt('accumulate', options.accumulate);
    if (options.betas !== undefined && (!Array.isArray(options.betas) || options.betas.length !== 2 || options.betas.some((b) => !(b >= 0 && b < 1))))
      throw v.invalid('betas', '[beta1, beta2] in [0, 1)', options.betas);
    if (options.eps !== undefined) v.positiveNumber('eps', options.eps);
    if (options.alpha !== undefined) v.numberInRange('alpha', options.alpha, 0, 1, false);
    if (options.alpha !== undefined && (options.optimizer ?? TRAINER_DEFAULTS.optimizer) !== 'rmsprop') throw new InvalidOptionError('alpha', "alpha applies to optimizer 'rmsprop'");
    if (options.monitor !== undefined) v.oneOf('monitor', options.monitor, ['valAccuracy', 'valLoss', 'accuracy', 'loss'] as const);
    if (options.earlyStopping !== undefined) {
      const es = v.plainObject('earlyStopping', options.earlyStopping);
      v.positiveInt('earlyStopping.patience', es.patience);
      if (es.minDelta !== undefined) v.numberInRange('earlyStopping.minDelta', es.minDelta, 0, Number.MAX_VALUE);
    }
    if (options.signal !== undefined && !(typeof options.signal === 'object' && options.signal !== null && 'aborted' in options.signal)) throw v.invalid('signal', 'AbortSignal', options.signal);
    if (options.seed !== undefined) v.nonNegativeInt('seed', options.seed);
    if (options.freezeBatchNormStats !== undefined && options.freezeBatchNormStats !== 'all') v.bool('freezeBatchNormStats', options.freezeBatchNormStats);
    if (options.featureCache !== undefined && options.featureCache !== 'auto') v.bool('featureCache', options.featureCache);
    if (options.featureCacheViews !== undefined) v.positiveInt('featureCacheViews', options.featureCacheViews);
    if (options.featureCacheMaxBytes !== undefined) v.positiveInt('featureCacheMaxBytes', options.featureCacheMaxBytes);
    if (options.featureCache === true && strategy !== 'feature-extract') throw new InvalidOptionError('featureCache', "featureCache needs strategy 'feature-extract'");
    if (probing && options.unfreeze !== undefined) throw new InvalidOptionError('unfreeze', `unfreeze does not apply to strategy '${strategy}'`);
    this.unfreeze = (options.unfreeze ?? []).map((u, i) => {
      v.plainObject(`unfreeze[${i}]`, u);
      return {
        epoch: v.nonNegativeInt(`unfreeze[${i}].epoch`, u.epoch),
        stage: stageIndex(v.nonEmptyString(`unfreeze[${i}].from`, u.from), `unfreeze[${i}].from`),
        from: u.from,
        lrScale: u.lrScale === undefined ? 1 : v.positiveNumber(`unfreeze[${i}].lrScale`, u.lrScale),
      };
    });
    // LP-FT: the probe is epoch 0; from epoch 1 training extends to trainFrom
    if (strategy === 'lp-ft') this.unfreeze = [{ epoch: 1, stage: given ?? 0, from: stages[given ?? 0], lrScale: 1 }];
    this.schedule = validateSchedule(options.schedule);
    // the model's precision unless told otherwise
    this.precision = model.precision(options.precision);
    this.lossScale = validateLossScale(options.lossScale, this.precision);
    this.dist = resolveDistributed(options.distributed);
    if (options.domainAdaptation !== undefined) {
      const da = v.plainObject('domainAdaptation', options.domainAdaptation);
      v.knownKeys('domainAdaptation', da, ['method', 'target', 'weight', 'schedule', 'hidden', 'kernels']);
      v.oneOf('domainAdaptation.method', da.method, ['dann', 'mmd'] as const);
      if (!(da.target instanceof DataLoader)) throw v.invalid('domainAdaptation.target', 'DataLoader', da.target);
      if (da.weight !== undefined) v.positiveNumber('domainAdaptation.weight', da.weight);
      if (da.schedule !== undefined) v.oneOf('domainAdaptation.schedule', da.schedule, ['warmup', 'constant'] as const);
      if (da.hidden !== undefined) v.positiveInt('domainAdaptation.hidden', da.hidden);
      if (da.kernels !== undefined) v.positiveInt('domainAdaptation.kernels', da.kernels);
      if (probing) throw new InvalidOptionError('domainAdaptation', `domainAdaptation does not apply to strategy '${strategy}'`);
      if (options.featureCache === true) throw new InvalidOptionError('featureCache', 'the feature cache cannot serve domain adaptation (the backbone sees target images every step)');
      if (resolveDistributed(options.distributed)) throw new InvalidOptionError('domainAdaptation', 'domain adaptation is not supported in data-parallel training yet');
    }
    if (this.dist && probing) throw new InvalidOptionError('strategy', `strategy '${strategy}' is not supported in data-parallel training yet (each rank would fit its probe on its own shard)`);
    this.options = { ...options, strategy };
  }

  private get lr(): number {
    if (this.options.lr !== undefined) return this.options.lr;
    if (this.decision) return this.decision.recommendation.lr || TRAINER_DEFAULTS.lpftLr;
    return this.options.strategy === 'lp-ft' ? TRAINER_DEFAULTS.lpftLr : TRAINER_DEFAULTS.lr;
  }

  private get backboneLr(): number {
    if (this.options.backboneLr !== undefined) return this.options.backboneLr;
    if (this.decision) return this.decision.recommendation.backboneLr || TRAINER_DEFAULTS.lpftLr;
    // LP-FT fine-tunes the probed head and the backbone at one rate
    return this.options.strategy === 'lp-ft' ? this.lr : this.lr * TRAINER_DEFAULTS.backboneLrFactor;
  }

  /** Epochs `fit` runs (the probe of the probing strategies counts as one; `'auto'` knows after its assessment). */
  get plannedEpochs(): number {
    return this.epochsOf();
  }

  /** Whether the run starts with a linear probe (epoch 0). */
  private get probing(): boolean {
    const s = this.options.strategy;
    return s === 'linear-probe' || s === 'lp-ft' || s === 'auto';
  }

  /** Epochs of the run: the probe counts as one. */
  private epochsOf(): number {
    const o = this.options;
    if (o.strategy === 'linear-probe') return 1;
    if (o.strategy === 'lp-ft') return 1 + (o.epochs ?? TRAINER_DEFAULTS.lpftEpochs);
    if (o.strategy === 'auto') return 1 + (o.epochs ?? this.decision?.recommendation.epochs ?? 0);
    return o.epochs ?? TRAINER_DEFAULTS.epochs;
  }

  /** The native session, built on first use as a job of the model's queue (freezing and the optimizer off the JS thread). */
  private ensureNative(): Promise<NativeTrainer> {
    this.native ??= this.buildNative().catch((e) => {
      this.native = undefined; // a later call tries again
      throw e;
    });
    return this.native;
  }

  private async buildNative(): Promise<NativeTrainer> {
    const o = this.options;
    const optimizer = o.optimizer ?? TRAINER_DEFAULTS.optimizer;
    const nt = new (getNative().NativeTrainer)(this.model._handle(), {
      optimizer,
      lr: this.lr,
      backboneLr: this.backboneLr,
      weightDecay: o.weightDecay ?? TRAINER_DEFAULTS.weightDecay,
      noDecayNormBias: o.noDecayNormBias ?? TRAINER_DEFAULTS.noDecayNormBias,
      momentum: o.momentum ?? (optimizer === 'sgd' ? TRAINER_DEFAULTS.sgdMomentum : 0),
      nesterov: o.nesterov ?? TRAINER_DEFAULTS.nesterov,
      dampening: o.dampening ?? TRAINER_DEFAULTS.dampening,
      beta1: o.betas?.[0] ?? TRAINER_DEFAULTS.betas[0],
      beta2: o.betas?.[1] ?? TRAINER_DEFAULTS.betas[1],
      eps: o.eps ?? TRAINER_DEFAULTS.eps,
      alpha: o.alpha ?? TRAINER_DEFAULTS.rmspropAlpha,
      trainFrom: this.trainFromIndex,
      freezeBatchNormStats: bnMode(o.freezeBatchNormStats ?? TRAINER_DEFAULTS.freezeBatchNormStats),
      labelSmoothing: o.labelSmoothing ?? TRAINER_DEFAULTS.labelSmoothing,
      clipGradNorm: o.clipGradNorm ?? TRAINER_DEFAULTS.clipGradNorm,
      accumulate: o.accumulate ?? TRAINER_DEFAULTS.accumulate,
      precision: this.precision,
      lossScale: this.lossScale,
    });
    this.trainable = await this.model._run(() => nt.init());
    const da = o.domainAdaptation;
    if (da) {
      const D = DOMAIN_ADAPTATION_DEFAULTS;
      await this.model._run(() => nt.setAdaptation({ method: da.method, weight: da.weight ?? D.weight, hidden: da.hidden ?? D.hidden, kernels: da.kernels ?? D.kernels }));
    }
    return nt;
  }

  /** Trainable parameter count under the current freezing. */
  async trainableParameters(): Promise<number> {
    await this.ensureNative();
    return this.trainable;
  }

  /**
   * Trains; returns the per-epoch history. Stops early on `signal` (aborted: true) or early stopping.
   * `options.probeData`: what the linear probe of `'linear-probe'`, `'lp-ft'` and `'auto'` embeds (and `'auto'`
   * assesses). Default `train`; when `train` augments at random, a loader over the same images with a
   * deterministic transform (e.g. `Transform.imagenetEval()`) gives a better probe (measured on ants/bees with
   * squeezenet1_1: 0.915 with one random-crop pass, 0.935 with centre crops).
   */
  async fit(train: DataLoader, val?: DataLoader, options: { probeData?: DataLoader } = {}): Promise<FitResult> {
    const o = v.plainObject('options', options);
    v.knownKeys('options', o, ['probeData']);
    if (options.probeData !== undefined && !(options.probeData instanceof DataLoader)) throw v.invalid('probeData', 'DataLoader', options.probeData);
    if (options.probeData !== undefined && !this.probing) throw new InvalidOptionError('probeData', "probeData applies to strategies 'linear-probe', 'lp-ft' and 'auto'");
    if (!(train instanceof DataLoader)) throw v.invalid('train', 'DataLoader', train);
    // data without class names (buffers) has the model's classes
    const ds = train.dataset;
    const where = ds instanceof ImageFolder ? ds.root : `the training data (${ds.constructor.name}, ${ds.length} samples)`;
    needTwoClasses(where, ds.classes.length ? ds.classes : Array.from({ length: this.model.numClasses }, (_, i) => String(i)), 'class');
    // one fit per model at a time; calls from outside it that would change the model are refused meanwhile
    return this.model._fit(this, async () => {
      // temporary folders made for this fit are removed however it ends (result, error, abort)
      const temporary: string[] = [];
      try {
        return await this.fitEpochs(train, val, temporary, options.probeData ?? train);
      } finally {
        for (const d of temporary) await rm(d, { recursive: true, force: true });
      }
    });
  }

  private async fitEpochs(train: DataLoader, val: DataLoader | undefined, temporary: string[], probeData: DataLoader): Promise<FitResult> {
    if (val !== undefined && !(val instanceof DataLoader)) throw v.invalid('val', 'DataLoader', val);
    if (this.options.strategy === 'auto' && this.model.head !== 'linear' && this.model.arch === 'squeezenet1_1') {
      // every recommendation starts with a linear probe: squeezenet1_1 gets a linear head on its pooled features
      await this.model.setHead('linear');
      this.native = undefined; // a session built earlier held the old head
    }
    const run = await this.openRun(train, val, temporary);
    const signal = this.options.signal;
    let aborted = false;
    let stoppedEarly = false;
    if (this.probing && run.start === 0) {
      aborted = !(await this.probeEpoch(run, probeData, val, temporary));
      run.start = 1;
      run.epochs = this.epochsOf();
      const es = this.options.earlyStopping;
      if (es && run.badEpochs >= es.patience) stoppedEarly = true;
    }
    for (let epoch = run.start; epoch < run.epochs && !aborted && !stoppedEarly; epoch++) {
      await this.unfreezeAt(epoch, run);
      const t0 = performance.now();
      const totals = await this.trainEpoch(epoch, run, train);
      if (!totals || signal?.aborted) {
        aborted = true;
        break;
      }
      if (run.dist) {
        // the epoch's loss and accuracy over every rank's shard
        [totals.lossSum, totals.correct, totals.count] = await this.model._run(() => run.nt.allreduceSum([totals.lossSum, totals.correct, totals.count]));
        if (run.dist.averageBatchNormStats) await this.model._run(() => run.nt.averageBatchNormStats());
      }
      const record: EpochRecord = {
        epoch,
        loss: totals.count ? totals.lossSum / totals.count : NaN,
        accuracy: totals.count ? totals.correct / totals.count : NaN,
        lr: totals.lrs,
        seconds: 0,
        trainableParameters: this.trainable,
        featureCacheBytes: run.cacheBytes,
        ...(this.lossScale.enabled ? { lossScale: run.lossScale, skippedSteps: totals.skippedSteps } : {}),
        ...(this.probing ? { phase: 'fine-tune' as const } : {}),
        ...(run.dist ? { allReduce: totals.reduce } : {}),
        ...(totals.adapt?.steps
          ? { adaptation: { loss: totals.adapt.lossSum / totals.adapt.steps, ...(this.options.domainAdaptation?.method === 'dann' ? { domainAccuracy: totals.adapt.accSum / totals.adapt.steps } : {}), lambda: totals.adapt.lambda } }
          : {}),
      };
      if (val) Object.assign(record, await this.validate(run, val, epoch));
      record.featureCacheBytes = run.cacheBytes;
      record.seconds = (performance.now() - t0) / 1000;
      run.history.push(record);
      await this.endEpoch(epoch, record, run);
      this.emit('epochEnd', record);
      const es = this.options.earlyStopping;
      if (es && run.badEpochs >= es.patience) stoppedEarly = true;
      if (record.collapse && this.options.strategy === 'auto' && run.probeWeights) {
        // fine-tuning destroyed what the probe had: back to the probe's weights, and no more fine-tuning
        await this.model.loadWeights(run.probeWeights);
        const action = `validation predictions collapsed to '${record.collapse.class}' at epoch ${epoch}: restored the linear probe's weights (epoch 0) and stopped fine-tuning`;
        run.recoveries.push({ epoch, action });
        this.emit('recovery', { epoch, action });
        break;
      }
    }
    if (stoppedEarly && (this.options.earlyStopping?.restoreBest ?? TRAINER_DEFAULTS.restoreBest) && run.best) {
      if (run.writer && run.bestDir) await this.model.loadWeights(join(run.bestDir, 'best.pth'));
      if (run.dist) await this.model._run(() => run.nt.broadcastModel(0)); // rank 0 restored: the others take its weights
    }
    return { history: run.history, best: run.best, stoppedEarly, aborted, assessment: this.decision?.assessment, collapses: run.collapses, recoveries: run.recoveries };
  }

  /**
   * Epoch 0 of the probing strategies: embeddings of the training data through the frozen backbone (one pass per
   * `featureCacheViews`), with `'auto'` the assessment and its decision, then the head fitted as a linear probe.
   * False when aborted.
   */
  private async probeEpoch(run: FitRun, train: DataLoader, val: DataLoader | undefined, temporary: string[]): Promise<boolean> {
    train._useDevice(this.model.device);
    const o = this.options;
    const t0 = performance.now();
    const auto = o.strategy === 'auto';
    const a = o.assess ?? {};
    const numClasses = this.model.numClasses;
    const bank = await embedDataset(this.model, train, { precision: this.precision, bnSamples: auto ? (a.bnSamples ?? ASSESS_DEFAULTS.bnSamples) : 0, views: run.views, signal: o.signal });
    if (!bank) return false;
    if (auto) {
      const assessment = await assessBank(this.model, bank, numClasses, { ...a, ...o.probe }, t0);
      this.decision = { assessment, recommendation: assessment.recommendation };
      this.emit('assessment', assessment);
      const rec = assessment.recommendation;
      if (rec.strategy === 'lp-ft' && rec.trainFrom !== undefined) {
        const stage = this.model.stages.indexOf(rec.trainFrom);
        this.unfreeze = [{ epoch: 1, stage, from: rec.trainFrom, lrScale: 1 }];
      }
    }
    const fit = await this.model._run(() => bank.fitHead({ numClasses, probe: probeConfig(o.probe) }));
    const record: EpochRecord = {
      epoch: 0,
      loss: fit.trainLoss,
      accuracy: fit.trainAccuracy,
      lr: { head: 0, backbone: 0 },
      seconds: 0,
      trainableParameters: this.trainable,
      featureCacheBytes: 0,
      phase: 'linear-probe',
      probe: { l2: fit.l2, cvAccuracy: fit.cvAccuracy },
    };
    if (val) Object.assign(record, await this.validate(run, val, 0));
    record.seconds = (performance.now() - t0) / 1000;
    run.history.push(record);
    if (auto) {
      run.probeWeights = join(await this.scratchDir(temporary), 'probe.pth');
      await this.model.save(run.probeWeights);
    }
    run.epochs = this.epochsOf();
    // the schedule spans the run as decided (the probe is its epoch 0)
    if (auto) run.scheduler = new Scheduler(this.schedule, run.epochs, train.length, run.mode);
    await this.endEpoch(0, record, run);
    this.emit('epochEnd', record);
    return !o.signal?.aborted;
  }

  private async scratchDir(temporary: string[]): Promise<string> {
    const d = await mkdtemp(join(tmpdir(), 'torch-resnet-tl-run-'));
    temporary.push(d);
    return d;
  }

  /** Everything a fit keeps across epochs: settings resolved for this run, and the state a checkpoint stores. */
  private async openRun(train: DataLoader, val: DataLoader | undefined, temporary: string[]): Promise<FitRun> {
    const o = this.options;
    const epochs = this.epochsOf();
    const monitor: Monitor = o.monitor ?? (val ? 'valAccuracy' : 'accuracy');
    const mode = monitor.endsWith('Loss') || monitor === 'loss' ? 'min' : 'max';
    if (monitor.startsWith('val') && !val) throw new InvalidOptionError('monitor', `monitor '${monitor}' needs validation data`);
    if (o.seed !== undefined) getNative().manualSeed(o.seed);
    const nt = await this.ensureNative();
    train._useDevice(this.model.device);
    val?._useDevice(this.model.device);
    o.domainAdaptation?.target._useDevice(this.model.device);
    const dist = this.dist;
    if (dist) {
      if (!this.joined) {
        // rendezvous; every rank starts from rank 0's parameters and buffers
        await this.model._run(() => nt.joinProcessGroup(dist));
        this.joined = true;
      }
      // one shuffling/augmentation seed for every rank (rank 0's), each rank its shard
      const [seed] = await this.model._run(() => nt.allreduceSum([dist.rank === 0 ? train.seed : 0]));
      train._shard(dist.rank, dist.worldSize, seed);
    }
    const writer = !dist || dist.rank === 0;
    const dir = o.checkpointDir ? resolve(o.checkpointDir) : undefined;
    const run: FitRun = {
      nt,
      dist,
      writer,
      epochs,
      monitor,
      mode,
      dir,
      bestDir: dir,
      scheduler: new Scheduler(this.schedule, epochs, train.length, mode),
      history: [],
      badEpochs: 0,
      start: 0,
      trainFrom: this.trainFromIndex,
      lrScale: 1,
      views: o.featureCacheViews ?? TRAINER_DEFAULTS.featureCacheViews,
      lossScale: this.lossScale.initScale,
      useCache:
        !o.domainAdaptation &&
        this.trainFromIndex === this.model.stages.length - 1 &&
        !train.mixing &&
        (o.featureCache === true || ((o.featureCache ?? TRAINER_DEFAULTS.featureCache) === 'auto' && (train.dataset.transform.deterministic || o.featureCacheViews !== undefined))),
      cached: false,
      valCached: false,
      cacheBytes: 0,
      collapses: [],
      recoveries: [],
    };
    // resuming reads an existing run directory: a missing one is an error, never created
    if (o.resumeFrom && !existsSync(resolve(o.resumeFrom))) throw new CheckpointError(`${resolve(o.resumeFrom)}: no such run directory to resume from`);
    if (dir && writer) {
      await mkdir(dir, { recursive: true });
      // what a killed run left behind: partial generations, temporary files
      await cleanStaleTemporaries(dir);
      await cleanStaleTemporaries(join(dir, GENERATIONS));
    }
    // Early stopping restores the best weights; without a checkpoint folder they are kept in a temporary one.
    if (!run.bestDir && writer && o.earlyStopping && (o.earlyStopping.restoreBest ?? TRAINER_DEFAULTS.restoreBest)) {
      run.bestDir = await mkdtemp(join(tmpdir(), 'torch-resnet-tl-best-'));
      temporary.push(run.bestDir);
    }
    if (o.resumeFrom) await this.resume(resolve(o.resumeFrom), run);
    return run;
  }

  /** Continues from the newest complete generation of `rdir` (or the one before it). */
  private async resume(rdir: string, run: FitRun): Promise<void> {
    const gen = await latestGeneration<CheckpointState>(rdir);
    if (!gen) throw new CheckpointError(`${rdir}: no complete checkpoint generation to resume from (expected ${join(rdir, GENERATIONS, 'epoch-NNNNNN')}/)`);
    if (gen.rejected.length) this.emit('checkpoint', { kind: 'fallback', path: gen.dir, rejected: gen.rejected });
    const st = gen.state;
    await this.model.loadWeights(gen.files.model);
    if (st.trainFrom !== run.trainFrom) {
      this.trainable = await this.model._run(() => run.nt.setTrainFrom(st.trainFrom));
      run.trainFrom = st.trainFrom;
    }
    await this.model._run(() => run.nt.loadOptimizer(gen.files.optimizer));
    getNative().setRngState(Buffer.from(st.rng, 'base64'));
    run.history = st.history;
    run.best = st.best;
    run.badEpochs = st.badEpochs;
    run.scheduler.state = st.scheduler;
    run.lrScale = st.lrScale;
    run.start = st.epoch;
    if (st.auto) {
      this.decision = { assessment: st.auto.assessment, recommendation: st.auto.assessment.recommendation };
      const rec = st.auto.assessment.recommendation;
      if (rec.strategy === 'lp-ft' && rec.trainFrom !== undefined) this.unfreeze = [{ epoch: 1, stage: this.model.stages.indexOf(rec.trainFrom), from: rec.trainFrom, lrScale: 1 }];
      run.epochs = this.epochsOf();
    }
  }

  /** Learning rates of step `step` of `epoch`: the schedule over each group's base rate (the backbone's scaled by unfreezing). */
  private lrsAt(run: FitRun, epoch: number, step: number): { head: number; backbone: number } {
    return { head: run.scheduler.lr(this.lr, epoch, step), backbone: run.scheduler.lr(this.backboneLr * run.lrScale, epoch, step) };
  }

  /** Gradual unfreezing due at `epoch`: training extends to the stage, the feature cache (if any) goes. */
  private async unfreezeAt(epoch: number, run: FitRun): Promise<void> {
    for (const u of this.unfreeze.filter((u) => u.epoch === epoch && u.stage < run.trainFrom)) {
      this.trainable = await this.model._run(() => run.nt.setTrainFrom(u.stage));
      run.trainFrom = u.stage;
      run.lrScale = u.lrScale;
      this.emit('unfreeze', { epoch, from: u.from });
      if (run.cached) await this.model._run(() => run.nt.clearCache());
      run.useCache = run.cached = run.valCached = false;
      run.cacheBytes = 0;
    }
  }

  /** Backbone features of every sample (K views): false when aborted or over featureCacheMaxBytes. */
  private async buildFeatureCache(run: FitRun, train: DataLoader): Promise<boolean> {
    const limit = this.options.featureCacheMaxBytes ?? TRAINER_DEFAULTS.featureCacheMaxBytes;
    for (let view = 0; view < run.views; view++) {
      train.setEpoch(view);
      for await (const batch of train) {
        if (this.options.signal?.aborted) return false;
        run.cacheBytes = await this.model._run(() => run.nt.cacheBatch(batch.native, view));
        batch.dispose();
        if (run.cacheBytes > limit) {
          await this.model._run(() => run.nt.clearCache());
          this.emit('featureCache', { bytes: run.cacheBytes, enabled: false, reason: `over featureCacheMaxBytes (${limit})` });
          run.cacheBytes = 0;
          return false;
        }
      }
    }
    this.emit('featureCache', { bytes: run.cacheBytes, enabled: true, views: run.views });
    return true;
  }

  /** One training epoch, through the feature cache or batch by batch; undefined when aborted. */
  private async trainEpoch(epoch: number, run: FitRun, train: DataLoader): Promise<EpochTotals | undefined> {
    const signal = this.options.signal;
    if (run.useCache && !run.cached) {
      run.cached = await this.buildFeatureCache(run, train);
      run.useCache = run.cached;
      if (signal?.aborted) return undefined;
    }
    const totals: EpochTotals = { lossSum: 0, correct: 0, count: 0, skippedSteps: 0, reduce: { buckets: 0, bucketsDuringBackward: 0, waitSeconds: 0 }, lrs: { head: 0, backbone: 0 } };
    const addReduce = (r: NativeReduceStats) => {
      totals.reduce.buckets += r.buckets;
      totals.reduce.bucketsDuringBackward += r.bucketsDuringBackward;
      totals.reduce.waitSeconds += r.allReduceWait;
    };
    if (run.cached) {
      const steps = train.length;
      const plan = Array.from({ length: steps }, (_, k) => {
        const l = this.lrsAt(run, epoch, k);
        return [l.head, l.backbone] as [number, number];
      });
      const r = await this.model._run(() =>
        run.nt.trainCachedEpoch({ epoch, datasetSize: train.dataset.length, batchSize: train.batchSize, shuffle: train.shuffle, dropLast: train.dropLast, seed: train.seed, views: run.views, lrs: plan }),
      );
      Object.assign(totals, { lossSum: r.loss * r.count, correct: r.correct, count: r.count, lrs: { head: plan[steps - 1][0], backbone: plan[steps - 1][1] } });
      addReduce(r);
      this.emit('batchEnd', { epoch, batch: steps - 1, batches: steps, loss: r.loss, accuracy: r.count ? r.correct / r.count : 0, lr: totals.lrs } satisfies BatchEndEvent);
      return totals;
    }
    train.setEpoch(epoch);
    let step = 0;
    const da = this.options.domainAdaptation;
    // the target loader is cycled: a new pass (its next epoch) whenever one ends
    let targetIt = da?.target[Symbol.asyncIterator]();
    const nextTarget = async () => {
      let t = await targetIt!.next();
      if (t.done) {
        targetIt = da!.target[Symbol.asyncIterator]();
        t = await targetIt.next();
        if (t.done) throw new InvalidOptionError('domainAdaptation.target', 'the target DataLoader yields no batches');
      }
      return t.value;
    };
    if (da) totals.adapt = { lossSum: 0, accSum: 0, steps: 0, lambda: 0 };
    try {
      for await (const batch of train) {
        if (signal?.aborted) return undefined;
        const lrs = (totals.lrs = this.lrsAt(run, epoch, step));
        let r;
        if (da && totals.adapt) {
          const tb = await nextTarget();
          const p = (epoch * train.length + step) / Math.max(1, run.epochs * train.length);
          const lambda = (da.schedule ?? DOMAIN_ADAPTATION_DEFAULTS.schedule) === 'constant' ? 1 : 2 / (1 + Math.exp(-DOMAIN_ADAPTATION_DEFAULTS.warmupGamma * p)) - 1;
          r = await this.model._run(() => run.nt.step(batch.native, lrs.head, lrs.backbone, tb.native, lambda));
          tb.dispose();
          Object.assign(totals.adapt, { lossSum: totals.adapt.lossSum + r.adaptLoss, accSum: totals.adapt.accSum + r.domainAccuracy, steps: totals.adapt.steps + 1, lambda });
        } else {
          r = await this.model._run(() => run.nt.step(batch.native, lrs.head, lrs.backbone));
        }
        batch.dispose();
        if (r.skipped) totals.skippedSteps++;
        addReduce(r);
        run.lossScale = r.lossScale;
        totals.lossSum += r.loss * r.count;
        totals.correct += r.correct;
        totals.count += r.count;
        this.emit('batchEnd', { epoch, batch: step, batches: train.length, loss: r.loss, accuracy: r.count ? r.correct / r.count : 0, lr: lrs } satisfies BatchEndEvent);
        step++;
      }
    } finally {
      await targetIt?.return?.(undefined); // stops the target loader's threads
    }
    return totals;
  }

  /** Validation metrics; through the feature cache when the backbone is frozen and the transform deterministic. */
  private async validate(run: FitRun, val: DataLoader, epoch: number): Promise<Pick<EpochRecord, 'valLoss' | 'valAccuracy' | 'valTop5' | 'collapse'>> {
    let rep: EvalReport;
    if (run.cached && !this.options.tta && val.dataset.transform.deterministic && !val.mixing) {
      // the frozen backbone's outputs never change: computed once
      if (!run.valCached) {
        for await (const batch of val) {
          run.cacheBytes = await this.model._run(() => run.nt.cacheEvalBatch(batch.native));
          batch.dispose();
        }
        run.valCached = true;
      }
      const r = await this.model._run(() => run.nt.evalCached());
      const acc = new MetricAccumulator(this.classNames(val));
      acc.add(r.lossSum, r.logits.data, r.logits.shape, r.labels, r.indices);
      rep = acc.report();
    } else {
      rep = await this.evaluate(val, { tta: this.options.tta });
    }
    // every rank validates on the whole validation set: each sees a collapse by itself
    const collapse = detectCollapse(rep, epoch);
    if (collapse) {
      run.collapses.push(collapse);
      this.emit('collapse', collapse);
    }
    const seen = collapse ? { collapse } : {};
    if (run.dist) {
      // ranks whose BatchNorm statistics differ see slightly different figures: every rank decides on the mean
      const n = run.dist.worldSize;
      const [loss, accuracy, top5] = await this.model._run(() => run.nt.allreduceSum([rep.loss, rep.accuracy, rep.top5 ?? 0]));
      return { valLoss: loss / n, valAccuracy: accuracy / n, valTop5: rep.top5 === undefined ? undefined : top5 / n, ...seen };
    }
    return { valLoss: rep.loss, valAccuracy: rep.accuracy, valTop5: rep.top5, ...seen };
  }

  /** The monitored metric (best weights, early-stopping count, plateau schedule) and the epoch's checkpoint. */
  private async endEpoch(epoch: number, record: EpochRecord, run: FitRun): Promise<void> {
    const value = record[run.monitor] as number;
    run.scheduler.endEpoch(value);
    const minDelta = this.options.earlyStopping?.minDelta ?? TRAINER_DEFAULTS.earlyStoppingMinDelta;
    const improved = run.best === undefined || (run.mode === 'max' ? value > run.best.value + minDelta : value < run.best.value - minDelta);
    if (improved) {
      run.best = { epoch, value };
      run.badEpochs = 0;
      if (run.bestDir && run.writer) {
        await this.model.save(join(run.bestDir, 'best.pth'));
        if (run.dir) this.emit('checkpoint', { kind: 'best', path: join(run.dir, 'best.pth') });
      }
    } else {
      run.badEpochs++;
    }
    if (!run.dir || !run.writer) return;
    const state: CheckpointState = {
      version: 1,
      epoch: epoch + 1,
      history: run.history,
      scheduler: run.scheduler.state,
      best: run.best,
      badEpochs: run.badEpochs,
      trainFrom: run.trainFrom,
      rng: getNative().getRngState().toString('base64'),
      lrScale: run.lrScale,
      ...(this.decision ? { auto: { assessment: this.decision.assessment } } : {}),
    };
    const nt = run.nt;
    const path = await commitGeneration(run.dir, epoch + 1, async (files) => {
      await this.model.save(files.model);
      await this.model._run(() => nt.saveOptimizer(files.optimizer));
    }, state);
    this.emit('checkpoint', { kind: 'last', path });
  }

  private classNames(data: DataLoader): string[] {
    return data.dataset.classes.length ? data.dataset.classes : Array.from({ length: this.model.numClasses }, (_, i) => String(i));
  }

  /** Loss, top-1, top-5 (≥ 5 classes), per-class precision/recall/F1/support and the confusion matrix. */
  async evaluate(data: DataLoader, options: { tta?: boolean } = {}): Promise<EvalReport> {
    if (!(data instanceof DataLoader)) throw v.invalid('data', 'DataLoader', data);
    const nt = await this.ensureNative();
    data._useDevice(this.model.device);
    const acc = new MetricAccumulator(this.classNames(data));
    for await (const batch of data) {
      const r = await this.model._run(() => nt.eval(batch.native, options.tta ?? false));
      batch.dispose();
      acc.add(r.lossSum, r.logits.data, r.logits.shape, r.labels, batch.indices);
    }
    return acc.report();
  }
}

