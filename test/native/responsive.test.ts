// The event loop keeps ticking while native work runs, also when the machine is saturated: native compute (intra-op
// threads, loader threads, the worker running a call) runs at nice +10, below the JS thread, so the JS thread's
// timers preempt it, and other CPU-bound processes (here: one busy loop per core, started by the test itself) do
// not starve the event loop either. Measured in a plain Node process on the built package (the jest sandbox adds its
// own pauses).
import { execFileSync, spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers';

const HOGS = cpus().length;

function measure(kind: string, hogs: number, seconds?: number): { maxLag: number; ticks: number; seconds: number; steps: number } {
  const args = [join(ROOT, 'test', 'scripts', 'lag.js'), kind, String(hogs), ...(seconds === undefined ? [] : [String(seconds)])];
  const out = execFileSync(process.execPath, args, { encoding: 'utf8', cwd: ROOT });
  return JSON.parse(out.trim().split('\n').pop()!);
}

test('a 10 ms interval keeps firing (lag <= 50 ms) during a resnet50 forward of batch 16', () => {
  const r = measure('forward', 0);
  console.log(`resnet50 forward batch 16, idle machine: ${r.seconds.toFixed(2)} s, ${r.ticks} ticks, max lag ${r.maxLag.toFixed(1)} ms`);
  expect(r.seconds).toBeGreaterThan(0.1); // real work happened while we measured
  expect(r.ticks).toBeGreaterThan((r.seconds * 100) / 3);
  expect(r.maxLag).toBeLessThanOrEqual(50);
});

test(`saturated machine (${HOGS} busy processes): lag <= 50 ms during resnet50 forwards for 4 s`, () => {
  const r = measure('forward', HOGS, 4);
  console.log(`resnet50 forwards with ${HOGS} busy processes: ${r.steps} forwards in ${r.seconds.toFixed(2)} s, ${r.ticks} ticks, max lag ${r.maxLag.toFixed(1)} ms`);
  expect(r.steps).toBeGreaterThanOrEqual(1);
  expect(r.ticks).toBeGreaterThan((r.seconds * 100) / 3);
  expect(r.maxLag).toBeLessThanOrEqual(50);
});

test(`saturated machine (${HOGS} busy processes): lag <= 50 ms during Trainer.fit (decode threads, steps) for 6 s`, () => {
  const r = measure('fit', HOGS, 6);
  console.log(`fit (squeezenet1_1 full) with ${HOGS} busy processes: ${r.steps} steps in ${r.seconds.toFixed(2)} s, ${r.ticks} ticks, max lag ${r.maxLag.toFixed(1)} ms`);
  expect(r.steps).toBeGreaterThanOrEqual(1);
  expect(r.ticks).toBeGreaterThan((r.seconds * 100) / 3);
  expect(r.maxLag).toBeLessThanOrEqual(50);
});

test('compute priority: native threads run at the configured nice value, the JS thread keeps its own; bad values are named', () => {
  const script = `
const { ResNet, getComputePriority, setComputePriority } = require('.');
const { readdirSync, readFileSync } = require('node:fs');
(async () => {
  const m = await ResNet.create({ arch: 'resnet18', numClasses: 2 });
  await m.forward(new Float32Array(2 * 3 * 64 * 64), [2, 3, 64, 64]);
  const nice = readdirSync('/proc/self/task').map((t) => ({ main: Number(t) === process.pid, nice: Number(readFileSync('/proc/self/task/' + t + '/stat', 'utf8').split(') ')[1].split(' ')[16]) }));
  let err = '';
  try { setComputePriority(25); } catch (e) { err = e.code + ' ' + e.message; }
  console.log(JSON.stringify({ setting: getComputePriority(), main: nice.find((t) => t.main).nice, others: nice.filter((t) => !t.main).map((t) => t.nice), err }));
})();`;
  const run = (env: Record<string, string>) => {
    const r = spawnSync(process.execPath, ['-e', script], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env } });
    return { ...r, json: r.status === 0 ? JSON.parse(r.stdout.trim().split('\n').pop()!) : undefined };
  };
  const def = run({}).json;
  expect(def.setting).toBe(10);
  expect(def.main).toBe(0);
  expect(def.others).toContain(10);
  expect(def.err).toMatch(/^ERR_INVALID_OPTION .*nice/);
  const five = run({ TORCH_RESNET_TL_COMPUTE_NICE: '5' }).json;
  expect(five.setting).toBe(5);
  expect(five.others).toContain(5);
  expect(five.others).not.toContain(10);
  const bad = run({ TORCH_RESNET_TL_COMPUTE_NICE: 'high' });
  expect(bad.status).not.toBe(0);
  expect(bad.stderr).toContain('TORCH_RESNET_TL_COMPUTE_NICE');
});
