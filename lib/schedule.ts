import * as v from './validate';

/** Learning-rate schedules. Per-step ones (cosine, onecycle) advance every optimizer step; the rest per epoch. */
export type Schedule =
  | { type: 'constant' }
  | { type: 'step'; stepSize: number; gamma?: number }
  | { type: 'multistep'; milestones: number[]; gamma?: number }
  | { type: 'exponential'; gamma: number }
  | { type: 'cosine'; warmupEpochs?: number; warmupStartFactor?: number; minLr?: number }
  | { type: 'onecycle'; pctStart?: number; divFactor?: number; finalDivFactor?: number }
  | { type: 'plateau'; factor?: number; patience?: number; threshold?: number; minLr?: number };

/** The schedules' parameter defaults, defined here only (torch.optim.lr_scheduler's, and torchvision's references' warm-up start). */
export const SCHEDULE_DEFAULTS = {
  gamma: 0.1,
  warmupEpochs: 0,
  warmupStartFactor: 0.01,
  minLr: 0,
  pctStart: 0.3,
  divFactor: 25,
  finalDivFactor: 1e4,
  plateauFactor: 0.1,
  plateauPatience: 10,
  plateauThreshold: 1e-4,
};
const SD = SCHEDULE_DEFAULTS;

export const SCHEDULE_TYPES = ['constant', 'step', 'multistep', 'exponential', 'cosine', 'onecycle', 'plateau'] as const;

export function validateSchedule(s: unknown): Schedule {
  if (s === undefined) return { type: 'constant' };
  const o = v.plainObject('schedule', s);
  const type = v.oneOf('schedule.type', o.type, SCHEDULE_TYPES);
  const gamma = (d: number) => (o.gamma === undefined ? d : v.positiveNumber('schedule.gamma', o.gamma));
  switch (type) {
    case 'constant':
      return { type };
    case 'step':
      return { type, stepSize: v.positiveInt('schedule.stepSize', o.stepSize), gamma: gamma(SD.gamma) };
    case 'multistep':
      if (!Array.isArray(o.milestones) || o.milestones.some((m) => !Number.isInteger(m) || m < 1)) throw v.invalid('schedule.milestones', 'array of positive integers (epochs)', o.milestones);
      return { type, milestones: [...(o.milestones as number[])].sort((a, b) => a - b), gamma: gamma(SD.gamma) };
    case 'exponential':
      return { type, gamma: v.positiveNumber('schedule.gamma', o.gamma) };
    case 'cosine':
      return {
        type,
        warmupEpochs: o.warmupEpochs === undefined ? SD.warmupEpochs : v.nonNegativeInt('schedule.warmupEpochs', o.warmupEpochs),
        warmupStartFactor: o.warmupStartFactor === undefined ? SD.warmupStartFactor : v.numberInRange('schedule.warmupStartFactor', o.warmupStartFactor, 0, 1, false),
        minLr: o.minLr === undefined ? SD.minLr : v.numberInRange('schedule.minLr', o.minLr, 0, Number.MAX_VALUE),
      };
    case 'onecycle':
      return {
        type,
        pctStart: o.pctStart === undefined ? SD.pctStart : v.numberInRange('schedule.pctStart', o.pctStart, 0, 1),
        divFactor: o.divFactor === undefined ? SD.divFactor : v.positiveNumber('schedule.divFactor', o.divFactor),
        finalDivFactor: o.finalDivFactor === undefined ? SD.finalDivFactor : v.positiveNumber('schedule.finalDivFactor', o.finalDivFactor),
      };
    case 'plateau':
      return {
        type,
        factor: o.factor === undefined ? SD.plateauFactor : v.numberInRange('schedule.factor', o.factor, 0, 1, false),
        patience: o.patience === undefined ? SD.plateauPatience : v.nonNegativeInt('schedule.patience', o.patience),
        threshold: o.threshold === undefined ? SD.plateauThreshold : v.numberInRange('schedule.threshold', o.threshold, 0, Number.MAX_VALUE),
        minLr: o.minLr === undefined ? SD.minLr : v.numberInRange('schedule.minLr', o.minLr, 0, Number.MAX_VALUE),
      };
  }
}

/** Serializable scheduler state (for checkpoints). */
export interface SchedulerState {
  scale: number;
  best?: number;
  badEpochs: number;
}

/**
 * The learning rate of every step, as torch.optim.lr_scheduler computes it (checked step by step against it in
 * test/unit/schedule.test.ts): `step`, `multistep`, `exponential` and `plateau` change per epoch (StepLR,
 * MultiStepLR, ExponentialLR, ReduceLROnPlateau with threshold_mode 'rel'); `cosine` per optimizer step
 * (CosineAnnealingLR with T_max = all steps after warm-up and eta_min = minLr, after `warmupEpochs` of
 * LinearLR from `warmupStartFactor`, as SequentialLR chains them); `onecycle` per step (OneCycleLR, cosine
 * annealing, cycle_momentum off). `endEpoch(metric)` advances ReduceLROnPlateau (mode 'min' or 'max').
 */
export class Scheduler {
  state: SchedulerState = { scale: 1, badEpochs: 0 };
  constructor(
    readonly schedule: Schedule,
    readonly epochs: number,
    readonly stepsPerEpoch: number,
    readonly mode: 'min' | 'max',
  ) {}

  /** The learning rate of step `step` (0-based) of epoch `epoch` (0-based) for a group whose base rate is `base`. */
  lr(base: number, epoch: number, step: number): number {
    const s = this.schedule;
    const total = this.epochs * this.stepsPerEpoch;
    const t = epoch * this.stepsPerEpoch + step;
    const cosine = (from: number, to: number, p: number) => to + ((from - to) / 2) * (1 + Math.cos(Math.PI * Math.min(1, p)));
    switch (s.type) {
      case 'constant':
        return base;
      case 'step':
        return base * Math.pow(s.gamma ?? SD.gamma, Math.floor(epoch / s.stepSize));
      case 'multistep':
        return base * Math.pow(s.gamma ?? SD.gamma, s.milestones.filter((m) => m <= epoch).length);
      case 'exponential':
        return base * Math.pow(s.gamma, epoch);
      case 'cosine': {
        const warm = (s.warmupEpochs ?? SD.warmupEpochs) * this.stepsPerEpoch;
        if (t < warm) {
          const f0 = s.warmupStartFactor ?? SD.warmupStartFactor;
          return base * (f0 + ((1 - f0) * t) / warm);
        }
        return cosine(base, s.minLr ?? SD.minLr, (t - warm) / Math.max(1, total - warm));
      }
      case 'onecycle': {
        const initial = base / (s.divFactor ?? SD.divFactor);
        const end = initial / (s.finalDivFactor ?? SD.finalDivFactor);
        const peak = (s.pctStart ?? SD.pctStart) * total - 1; // the step of the peak rate (a fraction, as torch has it)
        if (t <= peak && peak > 0) return cosine(initial, base, t / peak);
        return cosine(base, end, (t - peak) / (total - 1 - peak || 1));
      }
      case 'plateau':
        return Math.max(s.minLr ?? SD.minLr, base * this.state.scale);
    }
  }

  /** ReduceLROnPlateau: call once per epoch with the monitored metric. Returns true when the rate was reduced. */
  endEpoch(metric: number | undefined): boolean {
    const s = this.schedule;
    if (s.type !== 'plateau' || metric === undefined || Number.isNaN(metric)) return false;
    const thr = s.threshold ?? SD.plateauThreshold;
    const better = this.state.best === undefined || (this.mode === 'min' ? metric < this.state.best * (1 - thr) : metric > this.state.best * (1 + thr));
    if (better) {
      this.state.best = metric;
      this.state.badEpochs = 0;
      return false;
    }
    if (++this.state.badEpochs > (s.patience ?? SD.plateauPatience)) {
      this.state.scale *= s.factor ?? SD.plateauFactor;
      this.state.badEpochs = 0;
      return true;
    }
    return false;
  }
}
