// The Trainer's options: their types and documentation, and resolveTrainerOptions, the one place that validates them
// and fills in the defaults. The Trainer and its parts read only the resolved, frozen object.
import { DataLoader } from '../data';
import { DistributedOptions, resolveDistributed, ResolvedDistributed } from '../distributed';
import { InvalidOptionError } from '../errors';
import { Model, Precision } from '../model';
import type { NativeTrainerConfig } from '../native';
import { Schedule, validateSchedule } from '../schedule';
import { AssessOptions, ProbeOptions, Recommendation, validateAssessOptions, validateProbeOptions } from '../transfer';
import * as v from '../validate';
import {
  DOMAIN_ADAPTATION_DEFAULTS,
  DOMAIN_ADAPTATION_METHODS,
  DOMAIN_ADAPTATION_SCHEDULES,
  DomainAdaptationMethod,
  LOSS_SCALE_DEFAULTS,
  Monitor,
  MONITORS,
  Optimizer,
  OPTIMIZERS,
  PROBING_STRATEGIES,
  Strategy,
  STRATEGIES,
  TRAINER_DEFAULTS,
  TRAINER_OPTION_KEYS,
} from './defaults';

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
   * Feature cache: the frozen stages run once per sample (or per augmented view) and training runs on what they
   * output. With `'feature-extract'` (and the probing strategies' head phase) that is the pooled features; when later
   * stages train too (`'partial'`, the fine-tuning phase of `'lp-ft'` and `'auto'`, after an `unfreeze` event) it is
   * the feature map entering the first trainable stage (frozen-prefix cache), which needs the frozen stages'
   * BatchNorm statistics frozen (`freezeBatchNormStats` true, the default, or 'all'). An unfreeze event drops the
   * cache and rebuilds it at the new boundary. Numerics are the uncached path's given the same views. `'auto'`
   * (default): on when the training transform is deterministic or `featureCacheViews` is set, with no MixUp/CutMix
   * or domain adaptation; `true` asks for it whatever the transform (each cached view is reused every K epochs).
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
  method: DomainAdaptationMethod;
  /** Unlabelled target-domain images (cycled when shorter than the source data). */
  target: DataLoader;
  /** Weight of the adaptation loss. Default 1. */
  weight?: number;
  /** `'warmup'` (default): the factor 2/(1 + e^(-10p)) - 1; `'constant'`: 1. */
  schedule?: (typeof DOMAIN_ADAPTATION_SCHEDULES)[number];
  /** DANN: width of the domain classifier's two hidden layers. Default 1024. */
  hidden?: number;
  /** MMD: Gaussian kernels (bandwidths ×2^-k/2 … 2^k/2 around the mean distance). Default 5. */
  kernels?: number;
}

/** Gradual unfreezing, resolved: at `epoch` training extends to stage index `stage` (named `from`). */
export interface Unfreeze {
  epoch: number;
  stage: number;
  from: string;
  lrScale: number;
}

/** Every option of a Trainer, validated and with its default: what the Trainer and its parts read. */
export interface ResolvedTrainerOptions {
  readonly strategy: Strategy;
  /** The run starts with a linear probe (epoch 0). */
  readonly probing: boolean;
  /** Index (in `model.stages`) of the first trainable stage at the start of the run. */
  readonly trainFrom: number;
  readonly unfreeze: readonly Unfreeze[];
  /** Epochs of the run, the probe counting as one (`'auto'` before its decision: the probe only). */
  readonly epochs: number;
  readonly lr: number;
  readonly backboneLr: number;
  /** The native session's configuration (every field set). */
  readonly native: Readonly<NativeTrainerConfig>;
  readonly schedule: Schedule;
  readonly precision: 'fp32' | 'bf16' | 'fp16';
  readonly lossScale: Readonly<NativeTrainerConfig['lossScale']>;
  readonly dist?: ResolvedDistributed;
  readonly domainAdaptation?: Readonly<Required<Omit<DomainAdaptationOptions, 'schedule'>>> & { readonly schedule: (typeof DOMAIN_ADAPTATION_SCHEDULES)[number] };
  readonly featureCache: boolean | 'auto';
  readonly featureCacheViews: number;
  /** featureCacheViews was given (then 'auto' caches augmented views too). */
  readonly featureCacheViewsGiven: boolean;
  readonly featureCacheMaxBytes: number;
  readonly earlyStopping?: Readonly<{ patience: number; minDelta: number; restoreBest: boolean }>;
  /** The monitor given; the run's default depends on validation data (see openRun). */
  readonly monitor?: Monitor;
  readonly seed?: number;
  readonly signal?: AbortSignal;
  readonly tta: boolean;
  readonly probe?: ProbeOptions;
  readonly assess: AssessOptions;
  readonly checkpointDir?: string;
  readonly resumeFrom?: string;
  /** `'auto'`: the recommendation these options were resolved with. */
  readonly recommendation?: Recommendation;
}

/**
 * Validates `options` for `model` and fills in every default, once. `'auto'` calls it again with its
 * recommendation: rates and epochs the options leave open come from it, and so does the unfreezing of LP-FT.
 */
export function resolveTrainerOptions(model: Model, options: TrainerOptions, recommendation?: Recommendation): ResolvedTrainerOptions {
  if (!(model instanceof Model)) throw v.invalid('model', 'Model', model);
  v.knownKeys('options', v.plainObject('options', options), TRAINER_OPTION_KEYS);
  const strategy = resolveStrategy(model, options);
  const probing = PROBING_STRATEGIES.includes(strategy);
  validateNumbers(options);
  const stageIndex = stageLookup(model);
  const given = options.trainFrom === undefined ? undefined : stageIndex(v.nonEmptyString('trainFrom', options.trainFrom), 'trainFrom');
  const head = model.stages.length - 1;
  const trainFrom = strategy === 'full' ? 0 : strategy === 'partial' ? (given ?? head - 1) : head;
  const precision = model.precision(options.precision);
  const lossScale = resolveLossScale(options.lossScale, precision);
  const dist = resolveDistributed(options.distributed);
  if (dist && probing) throw new InvalidOptionError('strategy', `strategy '${strategy}' is not supported in data-parallel training yet (each rank would fit its probe on its own shard)`);
  const domainAdaptation = resolveDomainAdaptation(options, strategy, probing, dist);
  const rates = resolveRates(options, strategy, recommendation);
  const optimizer = options.optimizer ?? TRAINER_DEFAULTS.optimizer;
  const es = options.earlyStopping;
  return deepFreeze({
    strategy,
    probing,
    trainFrom,
    unfreeze: resolveUnfreeze(model, options, strategy, probing, given, recommendation),
    epochs: resolveEpochs(options, strategy, recommendation),
    ...rates,
    native: nativeConfig(options, optimizer, rates, trainFrom, precision, lossScale),
    schedule: validateSchedule(options.schedule),
    precision,
    lossScale,
    dist,
    domainAdaptation,
    featureCache: options.featureCache ?? TRAINER_DEFAULTS.featureCache,
    featureCacheViews: options.featureCacheViews ?? TRAINER_DEFAULTS.featureCacheViews,
    featureCacheViewsGiven: options.featureCacheViews !== undefined,
    featureCacheMaxBytes: options.featureCacheMaxBytes ?? TRAINER_DEFAULTS.featureCacheMaxBytes,
    earlyStopping: es && { patience: es.patience, minDelta: es.minDelta ?? TRAINER_DEFAULTS.earlyStoppingMinDelta, restoreBest: es.restoreBest ?? TRAINER_DEFAULTS.restoreBest },
    monitor: options.monitor,
    seed: options.seed,
    signal: options.signal,
    tta: options.tta ?? TRAINER_DEFAULTS.tta,
    probe: options.probe,
    assess: options.assess ?? {},
    checkpointDir: options.checkpointDir,
    resumeFrom: options.resumeFrom,
    recommendation,
  });
}

/** Freezes the object and what this module made for it (the caller's objects, such as `schedule`, stay theirs). */
function deepFreeze(o: ResolvedTrainerOptions): ResolvedTrainerOptions {
  for (const made of [o.native, o.lossScale, o.earlyStopping, o.domainAdaptation, o.unfreeze, ...o.unfreeze]) if (made) Object.freeze(made);
  return Object.freeze(o);
}

/** The strategy, and the options that only some strategies take. */
function resolveStrategy(model: Model, options: TrainerOptions): Strategy {
  const pretrained = model.loadReport.source !== null;
  const strategy = options.strategy === undefined ? (pretrained ? 'feature-extract' : 'full') : v.oneOf('strategy', options.strategy, STRATEGIES);
  const probing = PROBING_STRATEGIES.includes(strategy);
  if (options.trainFrom !== undefined && strategy !== 'partial' && strategy !== 'lp-ft') throw new InvalidOptionError('trainFrom', "trainFrom applies to strategies 'partial' and 'lp-ft'");
  if ((strategy === 'linear-probe' || strategy === 'lp-ft') && model.head !== 'linear' && model.arch === 'squeezenet1_1')
    throw new InvalidOptionError('strategy', `strategy '${strategy}' fits a linear head on the pooled features: create squeezenet1_1 with head: 'linear' (or call model.setHead('linear'))`);
  if (strategy === 'linear-probe' && options.epochs !== undefined) throw new InvalidOptionError('epochs', "epochs does not apply to strategy 'linear-probe' (the probe is one fit on the frozen features); use 'lp-ft' to fine-tune after it");
  if (options.probe !== undefined && !probing) throw new InvalidOptionError('probe', "probe applies to strategies 'linear-probe', 'lp-ft' and 'auto'");
  if (options.probe !== undefined) validateProbeOptions(options.probe, 'probe');
  if (options.assess !== undefined && strategy !== 'auto') throw new InvalidOptionError('assess', "assess applies to strategy 'auto'");
  if (options.assess !== undefined) validateAssessOptions(options.assess, 'assess');
  if (probing && options.unfreeze !== undefined) throw new InvalidOptionError('unfreeze', `unfreeze does not apply to strategy '${strategy}'`);
  if (options.featureCache === true && strategy === 'full') throw new InvalidOptionError('featureCache', "featureCache needs frozen stages: strategy 'full' trains all of them");
  if (options.featureCache === true && options.freezeBatchNormStats === false && strategy !== 'feature-extract' && strategy !== 'linear-probe')
    throw new InvalidOptionError('featureCache', 'the frozen-prefix cache needs the frozen stages\' BatchNorm statistics frozen (freezeBatchNormStats true or \'all\'), else their output changes with every batch');
  return strategy;
}

/** Numbers, flags and choices that stand alone. */
function validateNumbers(o: TrainerOptions): void {
  if (o.epochs !== undefined) v.positiveInt('epochs', o.epochs);
  if (o.optimizer !== undefined) v.oneOf('optimizer', o.optimizer, OPTIMIZERS);
  if (o.lr !== undefined) v.positiveNumber('lr', o.lr);
  if (o.backboneLr !== undefined) v.positiveNumber('backboneLr', o.backboneLr);
  if (o.weightDecay !== undefined) v.numberInRange('weightDecay', o.weightDecay, 0, 1);
  if (o.momentum !== undefined) v.numberInRange('momentum', o.momentum, 0, 1, false);
  if (o.labelSmoothing !== undefined) v.numberInRange('labelSmoothing', o.labelSmoothing, 0, 1, false);
  if (o.clipGradNorm !== undefined) v.positiveNumber('clipGradNorm', o.clipGradNorm);
  if (o.accumulate !== undefined) v.positiveInt('accumulate', o.accumulate);
  if (o.betas !== undefined && (!Array.isArray(o.betas) || o.betas.length !== 2 || o.betas.some((b) => !(b >= 0 && b < 1))))
    throw v.invalid('betas', '[beta1, beta2] in [0, 1)', o.betas);
  if (o.eps !== undefined) v.positiveNumber('eps', o.eps);
  if (o.alpha !== undefined) v.numberInRange('alpha', o.alpha, 0, 1, false);
  if (o.alpha !== undefined && (o.optimizer ?? TRAINER_DEFAULTS.optimizer) !== 'rmsprop') throw new InvalidOptionError('alpha', "alpha applies to optimizer 'rmsprop'");
  if (o.nesterov !== undefined) v.bool('nesterov', o.nesterov);
  if (o.noDecayNormBias !== undefined) v.bool('noDecayNormBias', o.noDecayNormBias);
  if (o.dampening !== undefined) v.numberInRange('dampening', o.dampening, 0, 1);
  if (o.monitor !== undefined) v.oneOf('monitor', o.monitor, MONITORS);
  if (o.earlyStopping !== undefined) {
    const es = v.plainObject('earlyStopping', o.earlyStopping);
    v.positiveInt('earlyStopping.patience', es.patience);
    if (es.minDelta !== undefined) v.numberInRange('earlyStopping.minDelta', es.minDelta, 0, Number.MAX_VALUE);
    if (es.restoreBest !== undefined) v.bool('earlyStopping.restoreBest', es.restoreBest);
  }
  if (o.signal !== undefined && !(typeof o.signal === 'object' && o.signal !== null && 'aborted' in o.signal)) throw v.invalid('signal', 'AbortSignal', o.signal);
  if (o.seed !== undefined) v.nonNegativeInt('seed', o.seed);
  if (o.tta !== undefined) v.bool('tta', o.tta);
  if (o.freezeBatchNormStats !== undefined && o.freezeBatchNormStats !== 'all') v.bool('freezeBatchNormStats', o.freezeBatchNormStats);
  if (o.featureCache !== undefined && o.featureCache !== 'auto') v.bool('featureCache', o.featureCache);
  if (o.featureCacheViews !== undefined) v.positiveInt('featureCacheViews', o.featureCacheViews);
  if (o.featureCacheMaxBytes !== undefined) v.positiveInt('featureCacheMaxBytes', o.featureCacheMaxBytes);
}

/** A stage name → its index, for stages before the head. */
function stageLookup(model: Model): (name: string, option: string) => number {
  const stages = model.stages;
  const head = stages.length - 1;
  return (name, option) => {
    const i = stages.indexOf(name);
    if (i < 0 || i === head) throw v.invalid(option, `a stage of ${model.arch} before the head (${stages.slice(0, head).join(', ')})`, name);
    return i;
  };
}

function resolveUnfreeze(model: Model, o: TrainerOptions, strategy: Strategy, probing: boolean, given: number | undefined, rec?: Recommendation): Unfreeze[] {
  const stages = model.stages;
  // LP-FT: the probe is epoch 0; from epoch 1 training extends to trainFrom (or, with 'auto', the recommended stage)
  if (strategy === 'lp-ft') return [{ epoch: 1, stage: given ?? 0, from: stages[given ?? 0], lrScale: 1 }];
  if (strategy === 'auto') return rec?.strategy === 'lp-ft' && rec.trainFrom !== undefined ? [{ epoch: 1, stage: stages.indexOf(rec.trainFrom), from: rec.trainFrom, lrScale: 1 }] : [];
  if (probing) return [];
  const stageIndex = stageLookup(model);
  return (o.unfreeze ?? []).map((u, i) => {
    v.plainObject(`unfreeze[${i}]`, u);
    return {
      epoch: v.nonNegativeInt(`unfreeze[${i}].epoch`, u.epoch),
      stage: stageIndex(v.nonEmptyString(`unfreeze[${i}].from`, u.from), `unfreeze[${i}].from`),
      from: u.from,
      lrScale: u.lrScale === undefined ? 1 : v.positiveNumber(`unfreeze[${i}].lrScale`, u.lrScale),
    };
  });
}

/** Epochs of the run; the probe of the probing strategies counts as one. */
function resolveEpochs(o: TrainerOptions, strategy: Strategy, rec?: Recommendation): number {
  if (strategy === 'linear-probe') return 1;
  if (strategy === 'lp-ft') return 1 + (o.epochs ?? TRAINER_DEFAULTS.lpftEpochs);
  if (strategy === 'auto') return 1 + (o.epochs ?? rec?.epochs ?? 0);
  return o.epochs ?? TRAINER_DEFAULTS.epochs;
}

/** Head and backbone rates: given, else the recommendation's ('auto'), else LP-FT's one low rate, else the defaults. */
function resolveRates(o: TrainerOptions, strategy: Strategy, rec?: Recommendation): { lr: number; backboneLr: number } {
  const lr = o.lr ?? (rec ? rec.lr || TRAINER_DEFAULTS.lpftLr : strategy === 'lp-ft' ? TRAINER_DEFAULTS.lpftLr : TRAINER_DEFAULTS.lr);
  // LP-FT fine-tunes the probed head and the backbone at one rate
  const backboneLr = o.backboneLr ?? (rec ? rec.backboneLr || TRAINER_DEFAULTS.lpftLr : strategy === 'lp-ft' ? lr : lr * TRAINER_DEFAULTS.backboneLrFactor);
  return { lr, backboneLr };
}

const bnMode = (f: boolean | 'all'): 'none' | 'frozen' | 'all' => (f === 'all' ? 'all' : f ? 'frozen' : 'none');

function nativeConfig(o: TrainerOptions, optimizer: Optimizer, rates: { lr: number; backboneLr: number }, trainFrom: number, precision: string, lossScale: NativeTrainerConfig['lossScale']): NativeTrainerConfig {
  const D = TRAINER_DEFAULTS;
  return {
    optimizer,
    ...rates,
    weightDecay: o.weightDecay ?? D.weightDecay,
    noDecayNormBias: o.noDecayNormBias ?? D.noDecayNormBias,
    momentum: o.momentum ?? (optimizer === 'sgd' ? D.sgdMomentum : 0),
    nesterov: o.nesterov ?? D.nesterov,
    dampening: o.dampening ?? D.dampening,
    beta1: o.betas?.[0] ?? D.betas[0],
    beta2: o.betas?.[1] ?? D.betas[1],
    eps: o.eps ?? D.eps,
    alpha: o.alpha ?? D.rmspropAlpha,
    trainFrom,
    freezeBatchNormStats: bnMode(o.freezeBatchNormStats ?? D.freezeBatchNormStats),
    labelSmoothing: o.labelSmoothing ?? D.labelSmoothing,
    clipGradNorm: o.clipGradNorm ?? D.clipGradNorm,
    accumulate: o.accumulate ?? D.accumulate,
    precision,
    lossScale,
  };
}

function resolveLossScale(ls: TrainerOptions['lossScale'], precision: string): NativeTrainerConfig['lossScale'] {
  const D = LOSS_SCALE_DEFAULTS;
  if (ls === undefined || typeof ls === 'boolean') return { enabled: ls ?? precision === 'fp16', ...D };
  v.plainObject('lossScale', ls);
  v.knownKeys('lossScale', ls as Record<string, unknown>, Object.keys(D));
  const growthFactor = ls.growthFactor === undefined ? D.growthFactor : v.positiveNumber('lossScale.growthFactor', ls.growthFactor);
  const backoffFactor = ls.backoffFactor === undefined ? D.backoffFactor : v.numberInRange('lossScale.backoffFactor', ls.backoffFactor, 0, 1, false);
  if (growthFactor <= 1) throw v.invalid('lossScale.growthFactor', 'number > 1', growthFactor);
  if (backoffFactor <= 0) throw v.invalid('lossScale.backoffFactor', 'number in (0, 1)', backoffFactor);
  return {
    enabled: true,
    initScale: ls.initScale === undefined ? D.initScale : v.positiveNumber('lossScale.initScale', ls.initScale),
    growthFactor,
    backoffFactor,
    growthInterval: ls.growthInterval === undefined ? D.growthInterval : v.positiveInt('lossScale.growthInterval', ls.growthInterval),
  };
}

function resolveDomainAdaptation(o: TrainerOptions, strategy: Strategy, probing: boolean, dist: ResolvedDistributed | undefined): ResolvedTrainerOptions['domainAdaptation'] {
  if (o.domainAdaptation === undefined) return undefined;
  v.knownKeys('domainAdaptation', v.plainObject('domainAdaptation', o.domainAdaptation), ['method', 'target', 'weight', 'schedule', 'hidden', 'kernels']);
  const da = o.domainAdaptation;
  const method = v.oneOf('domainAdaptation.method', da.method, DOMAIN_ADAPTATION_METHODS);
  if (!(da.target instanceof DataLoader)) throw v.invalid('domainAdaptation.target', 'DataLoader', da.target);
  if (da.weight !== undefined) v.positiveNumber('domainAdaptation.weight', da.weight);
  if (da.schedule !== undefined) v.oneOf('domainAdaptation.schedule', da.schedule, DOMAIN_ADAPTATION_SCHEDULES);
  if (da.hidden !== undefined) v.positiveInt('domainAdaptation.hidden', da.hidden);
  if (da.kernels !== undefined) v.positiveInt('domainAdaptation.kernels', da.kernels);
  if (probing) throw new InvalidOptionError('domainAdaptation', `domainAdaptation does not apply to strategy '${strategy}'`);
  if (o.featureCache === true) throw new InvalidOptionError('featureCache', 'the feature cache cannot serve domain adaptation (the backbone sees target images every step)');
  if (dist) throw new InvalidOptionError('domainAdaptation', 'domain adaptation is not supported in data-parallel training yet');
  const D = DOMAIN_ADAPTATION_DEFAULTS;
  return { method, target: da.target, weight: da.weight ?? D.weight, schedule: da.schedule ?? D.schedule, hidden: da.hidden ?? D.hidden, kernels: da.kernels ?? D.kernels };
}
