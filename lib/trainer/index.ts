// The Trainer: a fit's top level. Options are resolved once (options.ts); a run's state and checkpoints live in
// run.ts, the probe epoch in probe.ts, a fine-tuning epoch in epoch.ts.
import { EventEmitter } from 'node:events';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { DataLoader, ImageFolder, needTwoClasses } from '../data';
import { InvalidOptionError } from '../errors';
import { EvalReport, MetricAccumulator } from '../metrics';
import { Model } from '../model';
import { getNative, NativeTrainer } from '../native';
import type { Assessment, Recommendation } from '../transfer';
import { Candidate, CandidateRanking, chooseModel } from '../candidates';
import * as v from '../validate';
import { classNames, epochRecord, trainEpoch, unfreezeAt, validate } from './epoch';
import { ResolvedTrainerOptions, resolveTrainerOptions, TrainerOptions } from './options';
import { probeEpoch } from './probe';
import type { EpochRecord, FitResult } from './records';
import { endEpoch, FitContext, FitRun, openRun, patienceSpent } from './run';

export { DOMAIN_ADAPTATION_DEFAULTS, DOMAIN_ADAPTATION_METHODS, MONITORS, OPTIMIZERS, STRATEGIES, TRAINER_DEFAULTS, TRAINER_OPTION_KEYS } from './defaults';
export type { DomainAdaptationMethod, Monitor, Optimizer, Strategy } from './defaults';
export { resolveTrainerOptions } from './options';
export type { DomainAdaptationOptions, ResolvedTrainerOptions, TrainerOptions } from './options';
export type { AllReduceStats, BatchEndEvent, EpochRecord, FitResult } from './records';

/**
 * Transfer-learning training loop. The loop runs in TypeScript with one native call per step, so the event loop
 * keeps ticking; tensors stay native. Emits `'batchEnd'` (BatchEndEvent), `'epochEnd'` (EpochRecord),
 * `'unfreeze'` ({ epoch, from }), `'checkpoint'` ({ kind, path }), `'assessment'` (Assessment, with `'auto'`),
 * `'collapse'` (Collapse: ≥ 95 % of validation predictions in one class holding ≤ 85 % of the data) and
 * `'recovery'` ({ epoch, action }).
 */
export class Trainer extends EventEmitter {
  readonly model: Model;
  /** The options as given, with the strategy resolved. */
  readonly options: Readonly<TrainerOptions>;
  private readonly ctx: FitContext;
  private native?: Promise<NativeTrainer>;

  constructor(model: Model, options: TrainerOptions = {}) {
    super();
    const opts = resolveTrainerOptions(model, options);
    this.model = model;
    this.options = { ...options, strategy: opts.strategy };
    const emit = (event: string, payload: unknown) => void this.emit(event, payload);
    const evaluate = (data: DataLoader, o: { tta?: boolean }) => this.evaluate(data, o);
    this.ctx = {
      model,
      opts,
      trainable: 0,
      joined: false,
      emit,
      evaluate,
      decide(assessment: Assessment) {
        const recommendation: Recommendation = assessment.recommendation;
        this.decision = { assessment, recommendation };
        this.opts = resolveTrainerOptions(model, options, recommendation);
      },
    };
  }

  /** Every option validated and with its default (after `'auto'`'s decision, with the recommendation applied). */
  get resolvedOptions(): ResolvedTrainerOptions {
    return this.ctx.opts;
  }

  /** Epochs `fit` runs (the probe of the probing strategies counts as one; `'auto'` knows after its assessment). */
  get plannedEpochs(): number {
    return this.ctx.opts.epochs;
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
    const nt = new (getNative().NativeTrainer)(this.model._handle(), this.ctx.opts.native);
    this.ctx.trainable = await this.model._run(() => nt.init());
    const da = this.ctx.opts.domainAdaptation;
    if (da) await this.model._run(() => nt.setAdaptation({ method: da.method, weight: da.weight, hidden: da.hidden, kernels: da.kernels }));
    return nt;
  }

  /** Trainable parameter count under the current freezing. */
  async trainableParameters(): Promise<number> {
    await this.ensureNative();
    return this.ctx.trainable;
  }

  /**
   * Trains; returns the per-epoch history. Stops early on `signal` (aborted: true) or early stopping.
   * `options.probeData`: what the linear probe of `'linear-probe'`, `'lp-ft'` and `'auto'` embeds (and `'auto'`
   * assesses). Default: the training images through `train`'s transform without its randomness
   * (`Transform.withoutRandomness()`: random crops become centre crops at the training size, flips, rotations and
   * jitter are left out), in a loader of `train`'s batch size without MixUp/CutMix — `train` itself when its
   * transform is deterministic and it does not mix. Embedding randomly augmented crops gives a worse probe.
   */
  /**
   * `strategy: 'auto'` over several source models: ranks `candidates` on the training images (their probe view, or
   * `options.probeData`; see `assess(candidates, …)`), makes a Trainer for the best with `options` (strategy 'auto'
   * unless given) and fits it. Returns the trained model, its Trainer, the fit and the ranking. `options.device`
   * places the candidates.
   */
  static async auto(candidates: Candidate[], train: DataLoader, val?: DataLoader, options: TrainerOptions & { probeData?: DataLoader; device?: string } = {}): Promise<{ model: Model; trainer: Trainer; fit: FitResult; ranking: CandidateRanking }> {
    if (!(train instanceof DataLoader)) throw v.invalid('train', 'DataLoader', train);
    const { probeData, device, ...trainerOptions } = v.plainObject('options', options) as TrainerOptions & { probeData?: DataLoader; device?: string };
    if (probeData !== undefined && !(probeData instanceof DataLoader)) throw v.invalid('probeData', 'DataLoader', probeData);
    const probe = probeData ?? probeView(train);
    const { model, ranking } = await chooseModel(candidates, probe, { device, precision: trainerOptions.precision, signal: trainerOptions.signal });
    try {
      const trainer = new Trainer(model, { strategy: 'auto', ...trainerOptions });
      const fit = await trainer.fit(train, val, trainer.ctx.opts.probing ? { probeData: probe } : {});
      return { model, trainer, fit, ranking };
    } catch (e) {
      model.dispose();
      throw e;
    }
  }

  async fit(train: DataLoader, val?: DataLoader, options: { probeData?: DataLoader } = {}): Promise<FitResult> {
    const o = v.plainObject('options', options);
    v.knownKeys('options', o, ['probeData']);
    if (options.probeData !== undefined && !(options.probeData instanceof DataLoader)) throw v.invalid('probeData', 'DataLoader', options.probeData);
    if (options.probeData !== undefined && !this.ctx.opts.probing) throw new InvalidOptionError('probeData', "probeData applies to strategies 'linear-probe', 'lp-ft' and 'auto'");
    if (!(train instanceof DataLoader)) throw v.invalid('train', 'DataLoader', train);
    if (val !== undefined && !(val instanceof DataLoader)) throw v.invalid('val', 'DataLoader', val);
    // data without class names (buffers) has the model's classes
    const ds = train.dataset;
    const where = ds instanceof ImageFolder ? ds.root : `the training data (${ds.constructor.name}, ${ds.length} samples)`;
    needTwoClasses(where, classNames(this.ctx, train), 'class');
    // one fit per model at a time; calls from outside it that would change the model are refused meanwhile
    return this.model._fit(this, async () => {
      // temporary folders made for this fit are removed however it ends (result, error, abort)
      const temporary: string[] = [];
      try {
        return await this.fitEpochs(train, val, temporary, options.probeData ?? (this.ctx.opts.probing ? probeView(train) : train));
      } finally {
        for (const d of temporary) await rm(d, { recursive: true, force: true });
      }
    });
  }

  private async fitEpochs(train: DataLoader, val: DataLoader | undefined, temporary: string[], probeData: DataLoader): Promise<FitResult> {
    const ctx = this.ctx;
    if (ctx.opts.strategy === 'auto' && this.model.head !== 'linear' && this.model.arch === 'squeezenet1_1') {
      // every recommendation starts with a linear probe: squeezenet1_1 gets a linear head on its pooled features
      await this.model.setHead('linear');
      this.native = undefined; // a session built earlier held the old head
    }
    if (ctx.opts.seed !== undefined) getNative().manualSeed(ctx.opts.seed);
    const run = await openRun(ctx, await this.ensureNative(), train, val, temporary);
    let aborted = false;
    if (ctx.opts.probing && run.start === 0) {
      aborted = !(await probeEpoch(ctx, run, probeData, val));
      run.start = 1;
      run.epochs = ctx.opts.epochs;
    }
    let stoppedEarly = patienceSpent(ctx, run);
    for (let epoch = run.start; epoch < run.epochs && !aborted && !stoppedEarly; epoch++) {
      const record = await this.fineTuneEpoch(epoch, run, train, val);
      if (!record) {
        aborted = true;
        break;
      }
      stoppedEarly = patienceSpent(ctx, run);
      if (record.collapse && ctx.opts.strategy === 'auto' && run.probeWeights) {
        // fine-tuning destroyed what the probe had: back to the probe's weights, and no more fine-tuning
        await this.model.loadWeights(run.probeWeights);
        const action = `validation predictions collapsed to '${record.collapse.class}' at epoch ${epoch}: restored the linear probe's weights (epoch 0) and stopped fine-tuning`;
        run.recoveries.push({ epoch, action });
        this.emit('recovery', { epoch, action });
        break;
      }
    }
    if (stoppedEarly && ctx.opts.earlyStopping?.restoreBest && run.best) {
      if (run.writer && run.bestDir) await this.model.loadWeights(join(run.bestDir, 'best.pth'));
      if (run.dist) await this.model._run(() => run.nt.broadcastModel(0)); // rank 0 restored: the others take its weights
    }
    return { history: run.history, best: run.best, stoppedEarly, aborted, assessment: ctx.decision?.assessment, collapses: run.collapses, recoveries: run.recoveries };
  }

  /** One fine-tuning epoch: unfreezing due, training, reduction over ranks, validation, the epoch's end; undefined when aborted. */
  private async fineTuneEpoch(epoch: number, run: FitRun, train: DataLoader, val: DataLoader | undefined): Promise<EpochRecord | undefined> {
    const ctx = this.ctx;
    await unfreezeAt(ctx, epoch, run);
    const t0 = performance.now();
    const totals = await trainEpoch(ctx, epoch, run, train);
    if (!totals || ctx.opts.signal?.aborted) return undefined;
    if (run.dist) {
      // the epoch's loss and accuracy over every rank's shard
      [totals.lossSum, totals.correct, totals.count] = await this.model._run(() => run.nt.allreduceSum([totals.lossSum, totals.correct, totals.count]));
      if (run.dist.averageBatchNormStats) await this.model._run(() => run.nt.averageBatchNormStats());
    }
    const record = epochRecord(ctx, epoch, run, totals);
    if (val) Object.assign(record, await validate(ctx, run, val, epoch));
    record.featureCacheBytes = run.cacheBytes;
    record.seconds = (performance.now() - t0) / 1000;
    run.history.push(record);
    await endEpoch(ctx, epoch, record, run);
    this.emit('epochEnd', record);
    return record;
  }

  /** Loss, top-1, top-5 (≥ 5 classes), per-class precision/recall/F1/support and the confusion matrix. */
  async evaluate(data: DataLoader, options: { tta?: boolean } = {}): Promise<EvalReport> {
    if (!(data instanceof DataLoader)) throw v.invalid('data', 'DataLoader', data);
    const nt = await this.ensureNative();
    data._useDevice(this.model.device);
    const acc = new MetricAccumulator(classNames(this.ctx, data));
    for await (const batch of data) {
      const r = await this.model._run(() => nt.eval(batch.native, options.tta ?? false));
      batch.dispose();
      acc.add(r.lossSum, r.logits.data, r.logits.shape, r.labels, batch.indices);
    }
    return acc.report();
  }
}

/** The default probe data: `train`'s images without random augmentation or mixing (see `fit`). */
function probeView(train: DataLoader): DataLoader {
  const t = train.dataset.transform;
  if (t.deterministic && !train.mixing) return train;
  return new DataLoader(train.dataset.withTransform(t.withoutRandomness()), { batchSize: train.batchSize, seed: train.seed });
}
