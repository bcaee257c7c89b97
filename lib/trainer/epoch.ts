// One epoch of a fit: unfreezing due at it, training (through the feature cache or batch by batch, with domain
// adaptation's target batches) and validation.
import type { Batch, DataLoader } from '../data';
import { InvalidOptionError } from '../errors';
import { EvalReport, MetricAccumulator } from '../metrics';
import type { NativeReduceStats } from '../native';
import { detectCollapse } from '../transfer';
import { DOMAIN_ADAPTATION_DEFAULTS } from './defaults';
import type { AllReduceStats, BatchEndEvent, EpochRecord } from './records';
import { cachesAt, FitContext, FitRun } from './run';

export interface EpochTotals {
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

/** Learning rates of step `step` of `epoch`: the schedule over each group's base rate (the backbone's scaled by unfreezing). */
function lrsAt(ctx: FitContext, run: FitRun, epoch: number, step: number): { head: number; backbone: number } {
  return { head: run.scheduler.lr(ctx.opts.lr, epoch, step), backbone: run.scheduler.lr(ctx.opts.backboneLr * run.lrScale, epoch, step) };
}

/** Gradual unfreezing due at `epoch`: training extends to the stage, the feature cache (if any) is dropped. */
export async function unfreezeAt(ctx: FitContext, epoch: number, run: FitRun): Promise<void> {
  for (const u of ctx.opts.unfreeze.filter((u) => u.epoch === epoch && u.stage < run.trainFrom)) {
    ctx.trainable = await ctx.model._run(() => run.nt.setTrainFrom(u.stage));
    run.trainFrom = u.stage;
    run.lrScale = u.lrScale;
    ctx.emit('unfreeze', { epoch, from: u.from });
    // setTrainFrom dropped the native cache (its stages now train)
    run.cached = run.valCached = false;
    run.cacheBytes = 0;
    // the cache is rebuilt at the new boundary when it can serve it (LP-FT's and 'auto''s fine-tuning phase)
    run.useCache = cachesAt(ctx, run);
  }
}

/** Backbone features of every sample (K views): false when aborted or over featureCacheMaxBytes. */
async function buildFeatureCache(ctx: FitContext, run: FitRun, train: DataLoader): Promise<boolean> {
  const limit = ctx.opts.featureCacheMaxBytes;
  for (let view = 0; view < run.views; view++) {
    train.setEpoch(view);
    for await (const batch of train) {
      if (ctx.opts.signal?.aborted) return false;
      run.cacheBytes = await ctx.model._run(() => run.nt.cacheBatch(batch.native, view));
      batch.dispose();
      if (run.cacheBytes > limit) {
        await ctx.model._run(() => run.nt.clearCache());
        ctx.emit('featureCache', { bytes: run.cacheBytes, enabled: false, reason: `over featureCacheMaxBytes (${limit})` });
        run.cacheBytes = 0;
        return false;
      }
    }
  }
  ctx.emit('featureCache', { bytes: run.cacheBytes, enabled: true, views: run.views });
  return true;
}

function emptyTotals(): EpochTotals {
  return { lossSum: 0, correct: 0, count: 0, skippedSteps: 0, reduce: { buckets: 0, bucketsDuringBackward: 0, waitSeconds: 0 }, lrs: { head: 0, backbone: 0 } };
}

function addReduce(totals: EpochTotals, r: NativeReduceStats): void {
  totals.reduce.buckets += r.buckets;
  totals.reduce.bucketsDuringBackward += r.bucketsDuringBackward;
  totals.reduce.waitSeconds += r.allReduceWait;
}

/** One training epoch, through the feature cache or batch by batch; undefined when aborted. */
export async function trainEpoch(ctx: FitContext, epoch: number, run: FitRun, train: DataLoader): Promise<EpochTotals | undefined> {
  if (run.useCache && !run.cached) {
    run.cached = await buildFeatureCache(ctx, run, train);
    run.useCache = run.cached;
    if (ctx.opts.signal?.aborted) return undefined;
  }
  return run.cached ? trainCachedEpoch(ctx, epoch, run, train) : trainBatches(ctx, epoch, run, train);
}

/** The head's epoch on cached features: one native call (the schedule's rate for every step passed along). */
async function trainCachedEpoch(ctx: FitContext, epoch: number, run: FitRun, train: DataLoader): Promise<EpochTotals> {
  const totals = emptyTotals();
  const steps = train.length;
  const plan = Array.from({ length: steps }, (_, k) => {
    const l = lrsAt(ctx, run, epoch, k);
    return [l.head, l.backbone] as [number, number];
  });
  const r = await ctx.model._run(() =>
    run.nt.trainCachedEpoch({ epoch, datasetSize: train.dataset.length, batchSize: train.batchSize, shuffle: train.shuffle, dropLast: train.dropLast, seed: train.seed, views: run.views, lrs: plan }),
  );
  Object.assign(totals, { lossSum: r.loss * r.count, correct: r.correct, count: r.count, lrs: { head: plan[steps - 1][0], backbone: plan[steps - 1][1] } });
  addReduce(totals, r);
  ctx.emit('batchEnd', { epoch, batch: steps - 1, batches: steps, loss: r.loss, accuracy: r.count ? r.correct / r.count : 0, lr: totals.lrs } satisfies BatchEndEvent);
  return totals;
}

/** The target loader, cycled: a new pass (its next epoch) whenever one ends. */
function targetCycle(target: DataLoader): { next(): Promise<Batch>; close(): Promise<void> } {
  let it = target[Symbol.asyncIterator]();
  return {
    async next() {
      let t = await it.next();
      if (t.done) {
        it = target[Symbol.asyncIterator]();
        t = await it.next();
        if (t.done) throw new InvalidOptionError('domainAdaptation.target', 'the target DataLoader yields no batches');
      }
      return t.value;
    },
    async close() {
      await it.return?.(undefined); // stops the target loader's threads
    },
  };
}

/** One epoch batch by batch; undefined when aborted. */
async function trainBatches(ctx: FitContext, epoch: number, run: FitRun, train: DataLoader): Promise<EpochTotals | undefined> {
  const totals = emptyTotals();
  const signal = ctx.opts.signal;
  const da = ctx.opts.domainAdaptation;
  train.setEpoch(epoch);
  const target = da && targetCycle(da.target);
  if (da) totals.adapt = { lossSum: 0, accSum: 0, steps: 0, lambda: 0 };
  let step = 0;
  try {
    for await (const batch of train) {
      if (signal?.aborted) return undefined;
      const lrs = (totals.lrs = lrsAt(ctx, run, epoch, step));
      let r;
      if (target && totals.adapt) {
        const tb = await target.next();
        const p = (epoch * train.length + step) / Math.max(1, run.epochs * train.length);
        const lambda = da.schedule === 'constant' ? 1 : 2 / (1 + Math.exp(-DOMAIN_ADAPTATION_DEFAULTS.warmupGamma * p)) - 1;
        r = await ctx.model._run(() => run.nt.step(batch.native, lrs.head, lrs.backbone, tb.native, lambda));
        tb.dispose();
        Object.assign(totals.adapt, { lossSum: totals.adapt.lossSum + r.adaptLoss, accSum: totals.adapt.accSum + r.domainAccuracy, steps: totals.adapt.steps + 1, lambda });
      } else {
        r = await ctx.model._run(() => run.nt.step(batch.native, lrs.head, lrs.backbone));
      }
      batch.dispose();
      if (r.skipped) totals.skippedSteps++;
      addReduce(totals, r);
      run.lossScale = r.lossScale;
      totals.lossSum += r.loss * r.count;
      totals.correct += r.correct;
      totals.count += r.count;
      ctx.emit('batchEnd', { epoch, batch: step, batches: train.length, loss: r.loss, accuracy: r.count ? r.correct / r.count : 0, lr: lrs } satisfies BatchEndEvent);
      step++;
    }
  } finally {
    await target?.close();
  }
  return totals;
}

/** The class names of a loader's data (numbers for data without names). */
export function classNames(ctx: Pick<FitContext, 'model'>, data: DataLoader): string[] {
  return data.dataset.classes.length ? data.dataset.classes : Array.from({ length: ctx.model.numClasses }, (_, i) => String(i));
}

/** Validation metrics; through the feature cache when the backbone is frozen and the transform deterministic. */
export async function validate(ctx: FitContext, run: FitRun, val: DataLoader, epoch: number): Promise<Pick<EpochRecord, 'valLoss' | 'valAccuracy' | 'valTop5' | 'collapse'>> {
  let rep: EvalReport;
  if (run.cached && !ctx.opts.tta && val.dataset.transform.deterministic && !val.mixing) {
    // the frozen backbone's outputs never change: computed once
    if (!run.valCached) {
      for await (const batch of val) {
        run.cacheBytes = await ctx.model._run(() => run.nt.cacheEvalBatch(batch.native));
        batch.dispose();
      }
      run.valCached = true;
    }
    const r = await ctx.model._run(() => run.nt.evalCached());
    const acc = new MetricAccumulator(classNames(ctx, val));
    acc.add(r.lossSum, r.logits.data, r.logits.shape, r.labels, r.indices);
    rep = acc.report();
  } else {
    rep = await ctx.evaluate(val, { tta: ctx.opts.tta });
  }
  // every rank validates on the whole validation set: each sees a collapse by itself
  const collapse = detectCollapse(rep, epoch);
  if (collapse) {
    run.collapses.push(collapse);
    ctx.emit('collapse', collapse);
  }
  const seen = collapse ? { collapse } : {};
  if (run.dist) {
    // ranks whose BatchNorm statistics differ see slightly different figures: every rank decides on the mean
    const n = run.dist.worldSize;
    const [loss, accuracy, top5] = await ctx.model._run(() => run.nt.allreduceSum([rep.loss, rep.accuracy, rep.top5 ?? 0]));
    return { valLoss: loss / n, valAccuracy: accuracy / n, valTop5: rep.top5 === undefined ? undefined : top5 / n, ...seen };
  }
  return { valLoss: rep.loss, valAccuracy: rep.accuracy, valTop5: rep.top5, ...seen };
}

/** The record of a fine-tuning epoch from its totals (validation figures are added by the caller). */
export function epochRecord(ctx: FitContext, epoch: number, run: FitRun, totals: EpochTotals): EpochRecord {
  const da = ctx.opts.domainAdaptation;
  return {
    epoch,
    loss: totals.count ? totals.lossSum / totals.count : NaN,
    accuracy: totals.count ? totals.correct / totals.count : NaN,
    lr: totals.lrs,
    seconds: 0,
    trainableParameters: ctx.trainable,
    featureCacheBytes: run.cacheBytes,
    ...(ctx.opts.lossScale.enabled ? { lossScale: run.lossScale, skippedSteps: totals.skippedSteps } : {}),
    ...(ctx.opts.probing ? { phase: 'fine-tune' as const } : {}),
    ...(run.dist ? { allReduce: totals.reduce } : {}),
    ...(totals.adapt?.steps
      ? { adaptation: { loss: totals.adapt.lossSum / totals.adapt.steps, ...(da?.method === 'dann' ? { domainAccuracy: totals.adapt.accSum / totals.adapt.steps } : {}), lambda: totals.adapt.lambda } }
      : {}),
  };
}
