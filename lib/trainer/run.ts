// One fit's state across its epochs: opening it (settings resolved for the run, checkpoint folder, resume) and closing
// each epoch (the monitored metric, best weights, the checkpoint generation).
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { DataLoader } from '../data';
import type { ResolvedDistributed } from '../distributed';
import { cleanStaleTemporaries, commitGeneration, GENERATIONS, latestGeneration } from '../durable';
import { CheckpointError, InvalidOptionError } from '../errors';
import type { EvalReport } from '../metrics';
import type { Model } from '../model';
import { getNative, NativeTrainer } from '../native';
import { Scheduler, SchedulerState } from '../schedule';
import type { Assessment, Collapse, Recommendation } from '../transfer';
import type { Monitor } from './defaults';
import type { ResolvedTrainerOptions } from './options';
import type { EpochRecord } from './records';

/** What the parts of a fit share with the Trainer that runs it. */
export interface FitContext {
  readonly model: Model;
  /** The resolved options; `'auto'` re-resolves them once, at its decision. */
  opts: ResolvedTrainerOptions;
  /** Trainable parameters under the current freezing (kept from the native session's answers). */
  trainable: number;
  /** Data-parallel: this Trainer's process has joined the group. */
  joined: boolean;
  /** `'auto'`'s decision, once made. */
  decision?: { assessment: Assessment; recommendation: Recommendation };
  /** Resolves `'auto'`'s options with its recommendation. */
  decide(assessment: Assessment): void;
  emit(event: string, payload: unknown): void;
  evaluate(data: DataLoader, options: { tta?: boolean }): Promise<EvalReport>;
}

/** What one fit keeps across its epochs (see openRun). */
export interface FitRun {
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
  /** the data and options allow the feature cache (no domain adaptation or MixUp/CutMix; asked for, or 'auto' with a deterministic transform or featureCacheViews) */
  cacheableData: boolean;
  /** train through the feature cache (built at the next epoch) */
  useCache: boolean;
  cached: boolean;
  valCached: boolean;
  cacheBytes: number;
  collapses: Collapse[];
  recoveries: { epoch: number; action: string }[];
  /** weights right after the linear probe ('auto' restores them when fine-tuning collapses) */
  probeWeights?: string;
  /** temporary folders of this fit, removed however it ends */
  temporary: string[];
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

/** A temporary folder removed when the fit ends. */
export async function scratchDir(run: Pick<FitRun, 'temporary'>, prefix = 'torch-resnet-tl-run-'): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), prefix));
  run.temporary.push(d);
  return d;
}

/** Everything a fit keeps across epochs: settings resolved for this run, and the state a checkpoint stores. */
export async function openRun(ctx: FitContext, nt: NativeTrainer, train: DataLoader, val: DataLoader | undefined, temporary: string[]): Promise<FitRun> {
  const o = ctx.opts;
  const monitor: Monitor = o.monitor ?? (val ? 'valAccuracy' : 'accuracy');
  const mode = monitor.endsWith('Loss') || monitor === 'loss' ? 'min' : 'max';
  if (monitor.startsWith('val') && !val) throw new InvalidOptionError('monitor', `monitor '${monitor}' needs validation data`);
  // resuming reads an existing run directory: a missing one is an error, never created
  if (o.resumeFrom && !existsSync(resolve(o.resumeFrom))) throw new CheckpointError(`${resolve(o.resumeFrom)}: no such run directory to resume from`);
  train._useDevice(ctx.model.device);
  val?._useDevice(ctx.model.device);
  o.domainAdaptation?.target._useDevice(ctx.model.device);
  if (o.dist) await joinRanks(ctx, nt, train, o.dist);
  const writer = !o.dist || o.dist.rank === 0;
  const dir = o.checkpointDir ? resolve(o.checkpointDir) : undefined;
  const run: FitRun = {
    nt,
    dist: o.dist,
    writer,
    epochs: o.epochs,
    monitor,
    mode,
    dir,
    bestDir: dir,
    scheduler: new Scheduler(o.schedule, o.epochs, train.length, mode),
    history: [],
    badEpochs: 0,
    start: 0,
    trainFrom: o.trainFrom,
    lrScale: 1,
    views: o.featureCacheViews,
    lossScale: o.lossScale.initScale,
    cacheableData: !o.domainAdaptation && !train.mixing && (o.featureCache === true || (o.featureCache === 'auto' && (train.dataset.transform.deterministic || o.featureCacheViewsGiven))),
    useCache: false,
    cached: false,
    valCached: false,
    cacheBytes: 0,
    collapses: [],
    recoveries: [],
    temporary,
  };
  run.useCache = cachesAt(ctx, run);
  if (dir && writer) {
    await mkdir(dir, { recursive: true });
    // what a killed run left behind: partial generations, temporary files
    await cleanStaleTemporaries(dir);
    await cleanStaleTemporaries(join(dir, GENERATIONS));
  }
  // Early stopping restores the best weights; without a checkpoint folder they are kept in a temporary one.
  if (!run.bestDir && writer && o.earlyStopping?.restoreBest) run.bestDir = await scratchDir(run, 'torch-resnet-tl-best-');
  if (o.resumeFrom) await resume(ctx, resolve(o.resumeFrom), run);
  return run;
}

/**
 * Whether the feature cache serves training from `run.trainFrom`: the pooled features when only the head trains,
 * else the frozen prefix's output (frozen-prefix cache), which needs the frozen stages' BatchNorm statistics frozen
 * (then their output depends on the image alone).
 */
export function cachesAt(ctx: FitContext, run: FitRun): boolean {
  const headOnly = run.trainFrom === ctx.model.stages.length - 1;
  return run.cacheableData && run.trainFrom > 0 && (headOnly || ctx.opts.native.freezeBatchNormStats !== 'none');
}

/** Data-parallel: joins the process group (once per Trainer) and gives this rank its shard of the training data. */
async function joinRanks(ctx: FitContext, nt: NativeTrainer, train: DataLoader, dist: ResolvedDistributed): Promise<void> {
  if (!ctx.joined) {
    // rendezvous; every rank starts from rank 0's parameters and buffers
    await ctx.model._run(() => nt.joinProcessGroup(dist));
    ctx.joined = true;
  }
  // one shuffling/augmentation seed for every rank (rank 0's), each rank its shard
  const [seed] = await ctx.model._run(() => nt.allreduceSum([dist.rank === 0 ? train.seed : 0]));
  train._shard(dist.rank, dist.worldSize, seed);
}

/** Continues from the newest complete generation of `rdir` (or the one before it). */
async function resume(ctx: FitContext, rdir: string, run: FitRun): Promise<void> {
  const gen = await latestGeneration<CheckpointState>(rdir);
  if (!gen) throw new CheckpointError(`${rdir}: no complete checkpoint generation to resume from (expected ${join(rdir, GENERATIONS, 'epoch-NNNNNN')}/)`);
  if (gen.rejected.length) ctx.emit('checkpoint', { kind: 'fallback', path: gen.dir, rejected: gen.rejected });
  const st = gen.state;
  await ctx.model.loadWeights(gen.files.model);
  if (st.trainFrom !== run.trainFrom) {
    ctx.trainable = await ctx.model._run(() => run.nt.setTrainFrom(st.trainFrom));
    run.trainFrom = st.trainFrom;
  }
  await ctx.model._run(() => run.nt.loadOptimizer(gen.files.optimizer));
  getNative().setRngState(Buffer.from(st.rng, 'base64'));
  run.history = st.history;
  run.best = st.best;
  run.badEpochs = st.badEpochs;
  run.scheduler.state = st.scheduler;
  run.lrScale = st.lrScale;
  run.start = st.epoch;
  if (st.auto) {
    ctx.decide(st.auto.assessment);
    run.epochs = ctx.opts.epochs;
  }
}

/** The monitored metric (best weights, early-stopping count, plateau schedule) and the epoch's checkpoint. */
export async function endEpoch(ctx: FitContext, epoch: number, record: EpochRecord, run: FitRun): Promise<void> {
  const value = record[run.monitor] as number;
  run.scheduler.endEpoch(value);
  const minDelta = ctx.opts.earlyStopping?.minDelta ?? 0;
  const improved = run.best === undefined || (run.mode === 'max' ? value > run.best.value + minDelta : value < run.best.value - minDelta);
  if (improved) {
    run.best = { epoch, value };
    run.badEpochs = 0;
    if (run.bestDir && run.writer) {
      await ctx.model.save(join(run.bestDir, 'best.pth'));
      if (run.dir) ctx.emit('checkpoint', { kind: 'best', path: join(run.dir, 'best.pth') });
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
    ...(ctx.decision ? { auto: { assessment: ctx.decision.assessment } } : {}),
  };
  const nt = run.nt;
  const path = await commitGeneration(run.dir, epoch + 1, async (files) => {
    await ctx.model.save(files.model);
    await ctx.model._run(() => nt.saveOptimizer(files.optimizer));
  }, state);
  ctx.emit('checkpoint', { kind: 'last', path });
}

/** Whether early stopping's patience has run out. */
export function patienceSpent(ctx: FitContext, run: FitRun): boolean {
  const es = ctx.opts.earlyStopping;
  return !!es && run.badEpochs >= es.patience;
}
