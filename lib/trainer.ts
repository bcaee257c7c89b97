import { EventEmitter } from 'node:events';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DataLoader } from './data';
import { cleanStaleTemporaries, commitGeneration, GENERATIONS, latestGeneration } from './durable';
import { CheckpointError, InvalidOptionError } from './errors';
import { EvalReport, MetricAccumulator } from './metrics';
import { Model, Precision } from './model';
import { getNative, NativeTrainer } from './native';
import { Schedule, Scheduler, SchedulerState, validateSchedule } from './schedule';
import * as v from './validate';

export type Strategy = 'feature-extract' | 'partial' | 'full';
export type Optimizer = 'sgd' | 'adam' | 'adamw' | 'rmsprop';
export type Monitor = 'valAccuracy' | 'valLoss' | 'accuracy' | 'loss';

export interface TrainerOptions {
  /**
   * Which layers train. `'feature-extract'`: only the head; `'partial'`: from `trainFrom` on; `'full'`: everything.
   * Default: `'feature-extract'` when the model was loaded with pretrained weights, else `'full'`.
   */
  strategy?: Strategy;
  /** First trainable stage for `'partial'` (a name from `model.stages`). Default: the last stage before the head. */
  trainFrom?: string;
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
  /** BatchNorm layers of frozen stages stay in eval mode (running statistics frozen). Default true. */
  freezeBatchNormStats?: boolean;
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
}

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
}

/** Every Trainer option (the one list: the CLI's --config keys derive from it). */
export const TRAINER_OPTION_KEYS = ['strategy', 'trainFrom', 'unfreeze', 'epochs', 'optimizer', 'lr', 'backboneLr', 'weightDecay', 'noDecayNormBias', 'momentum', 'nesterov', 'dampening', 'betas', 'eps', 'alpha', 'schedule', 'labelSmoothing', 'clipGradNorm', 'accumulate', 'precision', 'lossScale', 'freezeBatchNormStats', 'monitor', 'earlyStopping', 'checkpointDir', 'resumeFrom', 'signal', 'seed', 'tta', 'featureCache', 'featureCacheViews', 'featureCacheMaxBytes'] as const;
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
  freezeBatchNormStats: true,
  featureCache: 'auto' as const,
  featureCacheViews: 1,
  featureCacheMaxBytes: 4 * 2 ** 30,
  earlyStoppingMinDelta: 0,
  restoreBest: true,
};

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
}

/**
 * Transfer-learning training loop. The loop runs in TypeScript with one native call per step, so the event loop
 * keeps ticking; tensors stay native. Emits `'batchEnd'` (BatchEndEvent), `'epochEnd'` (EpochRecord),
 * `'unfreeze'` ({ epoch, from }), `'checkpoint'` ({ kind, path }).
 */
export class Trainer extends EventEmitter {
  readonly model: Model;
  readonly options: Readonly<TrainerOptions>;
  private readonly trainFromIndex: number;
  private readonly unfreeze: { epoch: number; stage: number; from: string; lrScale: number }[];
  private readonly schedule: Schedule;
  private native?: Promise<NativeTrainer>;
  /** Trainable parameters under the current freezing (kept from the native session's answers). */
  private trainable = 0;
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
    const strategy = options.strategy === undefined ? (pretrained ? 'feature-extract' : 'full') : v.oneOf('strategy', options.strategy, ['feature-extract', 'partial', 'full'] as const);
    const stageIndex = (name: string, option: string) => {
      const i = stages.indexOf(name);
      if (i < 0 || i === head) throw v.invalid(option, `a stage of ${model.arch} before the head (${stages.slice(0, head).join(', ')})`, name);
      return i;
    };
    if (options.trainFrom !== undefined && strategy !== 'partial') throw new InvalidOptionError('trainFrom', "trainFrom applies to strategy 'partial'");
    this.trainFromIndex = strategy === 'full' ? 0 : strategy === 'feature-extract' ? head : options.trainFrom === undefined ? head - 1 : stageIndex(v.nonEmptyString('trainFrom', options.trainFrom), 'trainFrom');
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
    if (options.featureCache !== undefined && options.featureCache !== 'auto') v.bool('featureCache', options.featureCache);
    if (options.featureCacheViews !== undefined) v.positiveInt('featureCacheViews', options.featureCacheViews);
    if (options.featureCacheMaxBytes !== undefined) v.positiveInt('featureCacheMaxBytes', options.featureCacheMaxBytes);
    if (options.featureCache === true && strategy !== 'feature-extract') throw new InvalidOptionError('featureCache', "featureCache needs strategy 'feature-extract'");
    this.unfreeze = (options.unfreeze ?? []).map((u, i) => {
      v.plainObject(`unfreeze[${i}]`, u);
      return {
        epoch: v.nonNegativeInt(`unfreeze[${i}].epoch`, u.epoch),
        stage: stageIndex(v.nonEmptyString(`unfreeze[${i}].from`, u.from), `unfreeze[${i}].from`),
        from: u.from,
        lrScale: u.lrScale === undefined ? 1 : v.positiveNumber(`unfreeze[${i}].lrScale`, u.lrScale),
      };
    });
    this.schedule = validateSchedule(options.schedule);
    // the model's precision unless told otherwise
    this.precision = model.precision(options.precision);
    this.lossScale = validateLossScale(options.lossScale, this.precision);
    this.options = { ...options, strategy };
  }

  private get lr(): number {
    return this.options.lr ?? TRAINER_DEFAULTS.lr;
  }

  private get backboneLr(): number {
    return this.options.backboneLr ?? this.lr * TRAINER_DEFAULTS.backboneLrFactor;
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
      frozenBnEval: o.freezeBatchNormStats ?? TRAINER_DEFAULTS.freezeBatchNormStats,
      labelSmoothing: o.labelSmoothing ?? TRAINER_DEFAULTS.labelSmoothing,
      clipGradNorm: o.clipGradNorm ?? TRAINER_DEFAULTS.clipGradNorm,
      accumulate: o.accumulate ?? TRAINER_DEFAULTS.accumulate,
      precision: this.precision,
      lossScale: this.lossScale,
    });
    this.trainable = await this.model._run(() => nt.init());
    return nt;
  }

  /** Trainable parameter count under the current freezing. */
  async trainableParameters(): Promise<number> {
    await this.ensureNative();
    return this.trainable;
  }

  /** Trains; returns the per-epoch history. Stops early on `signal` (aborted: true) or early stopping. */
  async fit(train: DataLoader, val?: DataLoader): Promise<FitResult> {
    // temporary folders made for this fit are removed however it ends (result, error, abort)
    const temporary: string[] = [];
    try {
      return await this.fitEpochs(train, val, temporary);
    } finally {
      for (const d of temporary) await rm(d, { recursive: true, force: true });
    }
  }

  private async fitEpochs(train: DataLoader, val: DataLoader | undefined, temporary: string[]): Promise<FitResult> {
    if (!(train instanceof DataLoader)) throw v.invalid('train', 'DataLoader', train);
    if (val !== undefined && !(val instanceof DataLoader)) throw v.invalid('val', 'DataLoader', val);
    const o = this.options;
    const epochs = o.epochs ?? TRAINER_DEFAULTS.epochs;
    const monitor: Monitor = o.monitor ?? (val ? 'valAccuracy' : 'accuracy');
    const mode = monitor.endsWith('Loss') || monitor === 'loss' ? 'min' : 'max';
    if (monitor.startsWith('val') && !val) throw new InvalidOptionError('monitor', `monitor '${monitor}' needs validation data`);
    if (o.seed !== undefined) getNative().manualSeed(o.seed);
    const nt = await this.ensureNative();
    train._useDevice(this.model.device);
    val?._useDevice(this.model.device);
    const scheduler = new Scheduler(this.schedule, epochs, train.length, mode);
    let history: EpochRecord[] = [];
    let best: FitResult['best'];
    let badEpochs = 0;
    let start = 0;
    let trainFrom = this.trainFromIndex;
    let lrScale = 1;
    const dir = o.checkpointDir ? resolve(o.checkpointDir) : undefined;
    if (dir) await mkdir(dir, { recursive: true });
    // Early stopping restores the best weights; without a checkpoint folder they are kept in a temporary one.
    let bestDir = dir;
    if (!bestDir && o.earlyStopping && (o.earlyStopping.restoreBest ?? TRAINER_DEFAULTS.restoreBest)) {
      bestDir = await mkdtemp(join(tmpdir(), 'torch-resnet-tl-best-'));
      temporary.push(bestDir);
    }

    if (dir) {
      // what a killed run left behind: partial generations, temporary files
      await cleanStaleTemporaries(dir);
      await cleanStaleTemporaries(join(dir, GENERATIONS));
    }
    if (o.resumeFrom) {
      const rdir = resolve(o.resumeFrom);
      const gen = await latestGeneration<CheckpointState>(rdir);
      if (!gen) throw new CheckpointError(`${rdir}: no complete checkpoint generation to resume from (expected ${join(rdir, GENERATIONS, 'epoch-NNNNNN')}/)`);
      if (gen.rejected.length) this.emit('checkpoint', { kind: 'fallback', path: gen.dir, rejected: gen.rejected });
      const st = gen.state;
      await this.model.loadWeights(gen.files.model);
      if (st.trainFrom !== trainFrom) {
        this.trainable = await this.model._run(() => nt.setTrainFrom(st.trainFrom));
        trainFrom = st.trainFrom;
      }
      await this.model._run(() => nt.loadOptimizer(gen.files.optimizer));
      getNative().setRngState(Buffer.from(st.rng, 'base64'));
      history = st.history;
      best = st.best;
      badEpochs = st.badEpochs;
      scheduler.state = st.scheduler;
      lrScale = st.lrScale;
      start = st.epoch;
    }

    /** Learning rates of step `step` of `epoch`: the schedule over each group's base rate (the backbone's scaled by unfreezing). */
    const lrsAt = (epoch: number, step: number) => ({ head: scheduler.lr(this.lr, epoch, step), backbone: scheduler.lr(this.backboneLr * lrScale, epoch, step) });
    const signal = o.signal;
    let aborted = false;
    let stoppedEarly = false;
    const views = o.featureCacheViews ?? TRAINER_DEFAULTS.featureCacheViews;
    let useCache =
      trainFrom === this.model.stages.length - 1 &&
      !train.mixing &&
      (o.featureCache === true || ((o.featureCache ?? TRAINER_DEFAULTS.featureCache) === 'auto' && (train.dataset.transform.deterministic || o.featureCacheViews !== undefined)));
    let cacheBytes = 0;
    let lossScale = this.lossScale.initScale;
    let cached = false;
    let valCached = false;
    const buildCache = async (): Promise<boolean> => {
      const limit = o.featureCacheMaxBytes ?? TRAINER_DEFAULTS.featureCacheMaxBytes;
      for (let view = 0; view < views; view++) {
        train.setEpoch(view);
        for await (const batch of train) {
          if (signal?.aborted) return false;
          cacheBytes = await this.model._run(() => nt.cacheBatch(batch.native, view));
          batch.dispose();
          if (cacheBytes > limit) {
            await this.model._run(() => nt.clearCache());
            this.emit('featureCache', { bytes: cacheBytes, enabled: false, reason: `over featureCacheMaxBytes (${limit})` });
            cacheBytes = 0;
            return false;
          }
        }
      }
      this.emit('featureCache', { bytes: cacheBytes, enabled: true, views });
      return true;
    };
    for (let epoch = start; epoch < epochs && !aborted && !stoppedEarly; epoch++) {
      for (const u of this.unfreeze.filter((u) => u.epoch === epoch && u.stage < trainFrom)) {
        this.trainable = await this.model._run(() => nt.setTrainFrom(u.stage));
        trainFrom = u.stage;
        lrScale = u.lrScale;
        this.emit('unfreeze', { epoch, from: u.from });
        if (cached) await this.model._run(() => nt.clearCache());
        useCache = cached = valCached = false;
        cacheBytes = 0;
      }
      const t0 = performance.now();
      let lossSum = 0;
      let correct = 0;
      let count = 0;
      let step = 0;
      let skippedSteps = 0;
      let lrs = { head: 0, backbone: 0 };
      if (useCache && !cached) {
        cached = await buildCache();
        useCache = cached;
        if (signal?.aborted) {
          aborted = true;
          break;
        }
      }
      if (cached) {
        const steps = train.length;
        const plan = Array.from({ length: steps }, (_, k) => {
          const l = lrsAt(epoch, k);
          return [l.head, l.backbone] as [number, number];
        });
        const r = await this.model._run(() =>
          nt.trainCachedEpoch({ epoch, datasetSize: train.dataset.length, batchSize: train.batchSize, shuffle: train.shuffle, dropLast: train.dropLast, seed: train.seed, views, lrs: plan }),
        );
        lossSum = r.loss * r.count;
        correct = r.correct;
        count = r.count;
        lrs = { head: plan[plan.length - 1][0], backbone: plan[plan.length - 1][1] };
        this.emit('batchEnd', { epoch, batch: steps - 1, batches: steps, loss: r.loss, accuracy: r.count ? r.correct / r.count : 0, lr: lrs } satisfies BatchEndEvent);
      }
      train.setEpoch(epoch);
      for await (const batch of cached ? [] : train) {
        if (signal?.aborted) {
          aborted = true;
          break;
        }
        lrs = lrsAt(epoch, step);
        const { head, backbone } = lrs;
        const r = await this.model._run(() => nt.step(batch.native, head, backbone));
        batch.dispose();
        if (r.skipped) skippedSteps++;
        lossScale = r.lossScale;
        lossSum += r.loss * r.count;
        correct += r.correct;
        count += r.count;
        this.emit('batchEnd', { epoch, batch: step, batches: train.length, loss: r.loss, accuracy: r.count ? r.correct / r.count : 0, lr: lrs } satisfies BatchEndEvent);
        step++;
      }
      if (aborted || signal?.aborted) {
        aborted = true;
        break;
      }
      const record: EpochRecord = {
        epoch,
        loss: count ? lossSum / count : NaN,
        accuracy: count ? correct / count : NaN,
        lr: lrs,
        seconds: 0,
        trainableParameters: this.trainable,
        featureCacheBytes: cacheBytes,
        ...(this.lossScale.enabled ? { lossScale, skippedSteps } : {}),
      };
      if (val && cached && !o.tta && val.dataset.transform.deterministic && !val.mixing) {
        // validation through the feature cache: the frozen backbone's outputs never change
        if (!valCached) {
          for await (const batch of val) {
            cacheBytes = await this.model._run(() => nt.cacheEvalBatch(batch.native));
            batch.dispose();
          }
          valCached = true;
        }
        const r = await this.model._run(() => nt.evalCached());
        const acc = new MetricAccumulator(val.dataset.classes.length ? val.dataset.classes : Array.from({ length: this.model.numClasses }, (_, i) => String(i)));
        acc.add(r.lossSum, r.logits.data, r.logits.shape, r.labels, r.indices);
        const rep = acc.report();
        record.valLoss = rep.loss;
        record.valAccuracy = rep.accuracy;
        record.valTop5 = rep.top5;
      } else if (val) {
        const rep = await this.evaluate(val, { tta: o.tta });
        record.valLoss = rep.loss;
        record.valAccuracy = rep.accuracy;
        record.valTop5 = rep.top5;
      }
      record.featureCacheBytes = cacheBytes;
      record.seconds = (performance.now() - t0) / 1000;
      history.push(record);
      const value = record[monitor] as number;
      scheduler.endEpoch(value);
      const minDelta = o.earlyStopping?.minDelta ?? TRAINER_DEFAULTS.earlyStoppingMinDelta;
      const improved = best === undefined || (mode === 'max' ? value > best.value + minDelta : value < best.value - minDelta);
      if (improved) {
        best = { epoch, value };
        badEpochs = 0;
        if (bestDir) {
          await this.model.save(join(bestDir, 'best.pth'));
          if (dir) this.emit('checkpoint', { kind: 'best', path: join(dir, 'best.pth') });
        }
      } else {
        badEpochs++;
      }
      if (dir) {
        const state: CheckpointState = {
          version: 1,
          epoch: epoch + 1,
          history,
          scheduler: scheduler.state,
          best,
          badEpochs,
          trainFrom,
          rng: getNative().getRngState().toString('base64'),
          lrScale,
        };
        const path = await commitGeneration(dir, epoch + 1, async (files) => {
          await this.model.save(files.model);
          await this.model._run(() => nt.saveOptimizer(files.optimizer));
        }, state);
        this.emit('checkpoint', { kind: 'last', path });
      }
      this.emit('epochEnd', record);
      if (o.earlyStopping && badEpochs >= o.earlyStopping.patience) stoppedEarly = true;
    }
    if (stoppedEarly && (o.earlyStopping?.restoreBest ?? TRAINER_DEFAULTS.restoreBest) && bestDir && best) await this.model.loadWeights(join(bestDir, 'best.pth'));
    return { history, best, stoppedEarly, aborted };
  }

  /** Loss, top-1, top-5 (≥ 5 classes), per-class precision/recall/F1/support and the confusion matrix. */
  async evaluate(data: DataLoader, options: { tta?: boolean } = {}): Promise<EvalReport> {
    if (!(data instanceof DataLoader)) throw v.invalid('data', 'DataLoader', data);
    const nt = await this.ensureNative();
    data._useDevice(this.model.device);
    const classes = data.dataset.classes.length ? data.dataset.classes : Array.from({ length: this.model.numClasses }, (_, i) => String(i));
    const acc = new MetricAccumulator(classes);
    for await (const batch of data) {
      const r = await this.model._run(() => nt.eval(batch.native, options.tta ?? false));
      batch.dispose();
      acc.add(r.lossSum, r.logits.data, r.logits.shape, r.labels, batch.indices);
    }
    return acc.report();
  }
}

