import * as v from './validate';

/** Learning-rate schedules. Per-step ones (cosine, onecycle) advance every optimizer step; the rest per epoch. */
export type Schedule =
  | { type: 'constant' }
  | { type: 'step'; stepSize: number; gamma?: number }
  | { type: 'multistep'; milestones: number[]; gamma?: number }
  | { type: 'exponential'; gamma: number }
  | { type: 'cosine'; warmupEpochs?: number; minLr?: number }
  | { type: 'onecycle'; pctStart?: number; divFactor?: number; finalDivFactor?: number }
  | { type: 'plateau'; factor?: number; patience?: number; threshold?: number; minLr?: number };

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
      return { type, stepSize: v.positiveInt('schedule.stepSize', o.stepSize), gamma: gamma(0.1) };
    case 'multistep':
      if (!Array.isArray(o.milestones) || o.milestones.some((m) => !Number.isInteger(m) || m < 1)) throw v.invalid('schedule.milestones', 'array of positive integers (epochs)', o.milestones);
      return { type, milestones: [...(o.milestones as number[])].sort((a, b) => a - b), gamma: gamma(0.1) };
    case 'exponential':
      return { type, gamma: v.positiveNumber('schedule.gamma', o.gamma) };
    case 'cosine':
      return {
        type,
        warmupEpochs: o.warmupEpochs === undefined ? 0 : v.nonNegativeInt('schedule.warmupEpochs', o.warmupEpochs),
        minLr: o.minLr === undefined ? 0 : v.numberInRange('schedule.minLr', o.minLr, 0, Number.MAX_VALUE),
      };
    case 'onecycle':
      return {
        type,
        pctStart: o.pctStart === undefined ? 0.3 : v.numberInRange('schedule.pctStart', o.pctStart, 0, 1),
        divFactor: o.divFactor === undefined ? 25 : v.positiveNumber('schedule.divFactor', o.divFactor),
        finalDivFactor: o.finalDivFactor === undefined ? 1e4 : v.positiveNumber('schedule.finalDivFactor', o.finalDivFactor),
      };
    case 'plateau':
      return {
        type,
        factor: o.factor === undefined ? 0.1 : v.numberInRange('schedule.factor', o.factor, 0, 1, false),
        patience: o.patience === undefined ? 10 : v.nonNegativeInt('schedule.patience', o.patience),
        threshold: o.threshold === undefined ? 1e-4 : v.numberInRange('schedule.threshold', o.threshold, 0, Number.MAX_VALUE),
        minLr: o.minLr === undefined ? 0 : v.numberInRange('schedule.minLr', o.minLr, 0, Number.MAX_VALUE),
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
 * Computes the multiplier applied to the base learning rates. `at(epoch, stepInEpoch)` gives the multiplier for a
 * step; `endEpoch(metric)` advances ReduceLROnPlateau (mode: 'min' or 'max').
 */
export class Scheduler {
  state: SchedulerState = { scale: 1, badEpochs: 0 };
  constructor(
    readonly schedule: Schedule,
    readonly epochs: number,
    readonly stepsPerEpoch: number,
    readonly mode: 'min' | 'max',
  ) {}

  /** Multiplier for the step `step` (0-based) of epoch `epoch` (0-based). */
  at(epoch: number, step: number): number {
    const s = this.schedule;
    const total = Math.max(1, this.epochs * this.stepsPerEpoch);
    const t = epoch * this.stepsPerEpoch + step;
    switch (s.type) {
      case 'constant':
        return 1;
      case 'step':
        return Math.pow(s.gamma ?? 0.1, Math.floor(epoch / s.stepSize));
      case 'multistep':
        return Math.pow(s.gamma ?? 0.1, s.milestones.filter((m) => m <= epoch).length);
      case 'exponential':
        return Math.pow(s.gamma, epoch);
      case 'cosine': {
        const warm = (s.warmupEpochs ?? 0) * this.stepsPerEpoch;
        if (t < warm) return (t + 1) / warm;
        const p = (t - warm) / Math.max(1, total - warm);
        return 0.5 * (1 + Math.cos(Math.PI * p));
      }
      case 'onecycle': {
        const up = Math.max(1, Math.floor((s.pctStart ?? 0.3) * total) - 1);
        const start = 1 / (s.divFactor ?? 25);
        const end = start / (s.finalDivFactor ?? 1e4);
        const cos = (a: number, b: number, p: number) => b + ((a - b) / 2) * (1 + Math.cos(Math.PI * p));
        return t <= up ? cos(start, 1, t / up) : cos(1, end, (t - up) / Math.max(1, total - 1 - up));
      }
      case 'plateau':
        return this.state.scale;
    }
  }

  /** Minimum learning rate of the schedule (cosine minLr, plateau minLr), as an absolute floor. */
  floor(): number {
    const s = this.schedule;
    return s.type === 'cosine' || s.type === 'plateau' ? (s.minLr ?? 0) : 0;
  }

  /** ReduceLROnPlateau: call once per epoch with the monitored metric. Returns true when the rate was reduced. */
  endEpoch(metric: number | undefined): boolean {
    const s = this.schedule;
    if (s.type !== 'plateau' || metric === undefined || Number.isNaN(metric)) return false;
    const thr = s.threshold ?? 1e-4;
    const better = this.state.best === undefined || (this.mode === 'min' ? metric < this.state.best * (1 - thr) : metric > this.state.best * (1 + thr));
    if (better) {
      this.state.best = metric;
      this.state.badEpochs = 0;
      return false;
    }
    if (++this.state.badEpochs > (s.patience ?? 10)) {
      this.state.scale *= s.factor ?? 0.1;
      this.state.badEpochs = 0;
      return true;
    }
    return false;
  }
}
