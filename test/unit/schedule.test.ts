// Learning-rate schedules against torch.optim.lr_scheduler, step by step (Debian's torch via scripts/fixtures/lr_schedules.py).
import { execFileSync } from 'node:child_process';
import { Schedule, Scheduler, validateSchedule } from '../../lib/schedule';
import { PYTHON } from '../helpers';
import { noAddon } from './no-addon';

noAddon();

interface Case {
  name: string;
  schedule: Schedule;
  epochs: number;
  stepsPerEpoch: number;
  base: number;
  mode: 'min' | 'max';
  metrics: number[];
}

const loss = [1.0, 0.9, 0.95, 0.96, 0.97, 0.5, 0.6, 0.61, 0.62, 0.63];
const acc = [0.5, 0.6, 0.6, 0.59, 0.7, 0.7, 0.7, 0.7, 0.8, 0.8];
const cases: Case[] = [
  ['constant', { type: 'constant' }],
  ['step', { type: 'step', stepSize: 3 }],
  ['step gamma', { type: 'step', stepSize: 2, gamma: 0.5 }],
  ['multistep (repeated milestone)', { type: 'multistep', milestones: [2, 5, 5], gamma: 0.3 }],
  ['exponential', { type: 'exponential', gamma: 0.8 }],
  ['cosine', { type: 'cosine' }],
  ['cosine minLr', { type: 'cosine', minLr: 1e-4 }],
  ['cosine warm-up', { type: 'cosine', warmupEpochs: 2, minLr: 1e-5 }],
  ['cosine warm-up start factor', { type: 'cosine', warmupEpochs: 1, warmupStartFactor: 0.25 }],
  ['onecycle', { type: 'onecycle' }],
  ['onecycle pctStart 0.25, divFactor 10', { type: 'onecycle', pctStart: 0.25, divFactor: 10, finalDivFactor: 100 }],
  ['plateau min', { type: 'plateau', patience: 1, factor: 0.5 }],
  ['plateau min, minLr', { type: 'plateau', patience: 0, factor: 0.1, minLr: 2e-5 }],
  ['plateau max threshold', { type: 'plateau', patience: 1, factor: 0.3, threshold: 0.1 }],
].map(([name, schedule], i) => {
  const mode: 'min' | 'max' = String(name).includes('max') ? 'max' : 'min';
  return { name: name as string, schedule: validateSchedule(schedule), epochs: 9, stepsPerEpoch: 7 - (i % 3), base: 0.01 * (1 + i), mode, metrics: mode === 'max' ? acc : loss };
});

function ours(c: Case): number[] {
  const s = new Scheduler(c.schedule, c.epochs, c.stepsPerEpoch, c.mode);
  const out: number[] = [];
  for (let e = 0; e < c.epochs; e++) {
    for (let k = 0; k < c.stepsPerEpoch; k++) out.push(s.lr(c.base, e, k));
    s.endEpoch(c.metrics[e]);
  }
  return out;
}

describe('learning-rate schedules equal torch.optim.lr_scheduler step by step', () => {
  const theirs: number[][] = JSON.parse(execFileSync(PYTHON, ['scripts/fixtures/lr_schedules.py'], { input: JSON.stringify(cases) }).toString());
  test('every schedule type is covered', () => {
    expect(new Set(cases.map((c) => c.schedule.type)).size).toBe(7);
    expect(theirs).toHaveLength(cases.length);
  });
  test.each(cases.map((c, i) => [c.name, i] as [string, number]))('%s', (_, i) => {
    const c = cases[i];
    const a = ours(c);
    const b = theirs[i];
    expect(a).toHaveLength(c.epochs * c.stepsPerEpoch);
    expect(b).toHaveLength(a.length);
    const worst = Math.max(...a.map((x, k) => Math.abs(x - b[k]) / Math.max(1e-12, Math.abs(b[k]))));
    if (worst > 1e-9) console.log(c.name, '\nours  ', a.map((x) => x.toPrecision(6)).join(' '), '\ntorch ', b.map((x) => x.toPrecision(6)).join(' '));
    expect(worst).toBeLessThanOrEqual(1e-9);
  });
});
