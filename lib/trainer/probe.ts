// Epoch 0 of the probing strategies ('linear-probe', 'lp-ft', 'auto'): the frozen backbone's embeddings of the
// training data, with 'auto' the assessment and its decision, then the head fitted as a linear probe.
import { join } from 'node:path';
import type { DataLoader } from '../data';
import { Scheduler } from '../schedule';
import { assessBank, ASSESS_DEFAULTS, embedDataset, probeConfig } from '../transfer';
import { validate } from './epoch';
import type { EpochRecord } from './records';
import { endEpoch, FitContext, FitRun, scratchDir } from './run';

/** Runs the probe epoch; false when aborted. */
export async function probeEpoch(ctx: FitContext, run: FitRun, train: DataLoader, val: DataLoader | undefined): Promise<boolean> {
  const o = ctx.opts;
  const model = ctx.model;
  train._useDevice(model.device);
  const t0 = performance.now();
  const auto = o.strategy === 'auto';
  const numClasses = model.numClasses;
  const bnSamples = auto ? (o.assess.bnSamples ?? ASSESS_DEFAULTS.bnSamples) : 0;
  const bank = await embedDataset(model, train, { precision: o.precision, bnSamples, views: run.views, signal: o.signal });
  if (!bank) return false;
  if (auto) {
    const assessment = await assessBank(model, bank, numClasses, { ...o.assess, ...o.probe }, t0);
    ctx.decide(assessment);
    ctx.emit('assessment', assessment);
  }
  const fit = await model._run(() => bank.fitHead({ numClasses, probe: probeConfig(o.probe) }));
  const record: EpochRecord = {
    epoch: 0,
    loss: fit.trainLoss,
    accuracy: fit.trainAccuracy,
    lr: { head: 0, backbone: 0 },
    seconds: 0,
    trainableParameters: ctx.trainable,
    featureCacheBytes: 0,
    phase: 'linear-probe',
    probe: { l2: fit.l2, cvAccuracy: fit.cvAccuracy },
  };
  if (val) Object.assign(record, await validate(ctx, run, val, 0));
  record.seconds = (performance.now() - t0) / 1000;
  run.history.push(record);
  if (auto) {
    run.probeWeights = join(await scratchDir(run), 'probe.pth');
    await model.save(run.probeWeights);
  }
  run.epochs = ctx.opts.epochs;
  // the schedule spans the run as decided (the probe is its epoch 0)
  if (auto) run.scheduler = new Scheduler(ctx.opts.schedule, run.epochs, train.length, run.mode);
  await endEpoch(ctx, 0, record, run);
  ctx.emit('epochEnd', record);
  return !o.signal?.aborted;
}
