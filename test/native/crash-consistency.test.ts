// Crash-consistent checkpoints: a training run SIGKILLed at random moments and resumed ends bit-identical to the
// uninterrupted run; a full disk during a save is a CheckpointError and the previous generation stays usable.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointError, DataLoader, ImageFolder, ImageList, manualSeed, Model, Trainer, Transform } from '../../lib';
import { latestGeneration, GENERATIONS } from '../../lib/durable';
import { mulberry32 } from '../../lib/synthetic';
import { ROOT, sharedPath } from '../helpers';

const KILLS = 50;
const CHILD = join(ROOT, 'test', 'scripts', 'ckpt-child.js');
const tmp = mkdtempSync(join(tmpdir(), 'tl-crash-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface ChildRun { hash?: string; epochs?: number; signal: NodeJS.Signals | null; code: number | null; ms: number; stderr: string }

/** Runs the child; with `killAfter(readyMs)` it is SIGKILLed that many ms after it printed "ready". */
function child(dir: string, mode: 'fresh' | 'resume', killAfter?: number): Promise<ChildRun> {
  return new Promise((resolvePromise) => {
    const p = spawn(process.execPath, [CHILD, dir, mode], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let t0 = 0;
    p.stdout.on('data', (d: Buffer) => {
      out += d;
      if (!t0 && out.includes('ready\n')) {
        t0 = performance.now();
        if (killAfter !== undefined) setTimeout(() => p.kill('SIGKILL'), killAfter);
      }
    });
    p.stderr.on('data', (d: Buffer) => (err += d));
    p.on('exit', (code, signal) => {
      const m = /done ([0-9a-f]{64}) (\d+)/.exec(out);
      resolvePromise({ hash: m?.[1], epochs: m ? Number(m[2]) : undefined, signal, code, ms: t0 ? performance.now() - t0 : 0, stderr: err });
    });
  });
}

test(`${KILLS} SIGKILLs at random moments of a fit with checkpointDir, each resumed: every run ends bit-identical to the uninterrupted one`, async () => {
  const ref = await child(join(tmp, 'ref'), 'fresh');
  expect({ code: ref.code, stderr: ref.stderr }).toEqual({ code: 0, stderr: '' });
  expect(ref.epochs).toBe(5);
  const random = mulberry32(20261129); // the kill moments
  let kills = 0;
  let withGeneration = 0;
  let partialLeft = 0;
  const mismatches: string[] = [];
  // two trials at a time (one per core)
  const trial = async (i: number, delay: number) => {
    const dir = join(tmp, `t${i}`);
    const killed = await child(dir, 'fresh', delay);
    if (killed.signal === 'SIGKILL') kills++;
    const gens = existsSync(join(dir, GENERATIONS)) ? readdirSync(join(dir, GENERATIONS)) : [];
    if (gens.some((g) => /^epoch-\d+$/.test(g))) withGeneration++;
    if (gens.some((g) => g.includes('.partial-'))) partialLeft++;
    const resumed = await child(dir, 'resume');
    if (resumed.code !== 0 || resumed.hash !== ref.hash || resumed.epochs !== 5)
      mismatches.push(`trial ${i} (kill after ${delay.toFixed(0)} ms): exit ${resumed.code}, epochs ${resumed.epochs}, hash ${resumed.hash?.slice(0, 12)} ${resumed.stderr.slice(0, 300)}`);
    // the resumed run cleaned what the killed one left
    const after = readdirSync(join(dir, GENERATIONS));
    if (after.some((g) => g.includes('.partial-'))) mismatches.push(`trial ${i}: a partial generation was left after the resume`);
    rmSync(dir, { recursive: true, force: true });
  };
  // until KILLS children were killed (a child that finished before its kill moment is another trial, not a kill)
  let trials = 0;
  while (kills < KILLS && trials < 2 * KILLS) {
    const pair = Math.min(2, KILLS - kills);
    await Promise.all(Array.from({ length: pair }, () => trial(trials++, random() * ref.ms * 0.9)));
  }
  console.log(`crash consistency: uninterrupted run ${ref.ms.toFixed(0)} ms after start; ${kills} SIGKILLs delivered (${withGeneration} after at least one ` +
    `committed generation, ${partialLeft} left a partial generation behind) in ${trials} trials; ${trials - mismatches.length} of ${trials} resumed runs bit-identical`);
  expect(mismatches).toEqual([]);
  expect(kills).toBeGreaterThanOrEqual(KILLS);
  expect(withGeneration).toBeGreaterThanOrEqual(10);
}, 20 * 60 * 1000);

test('a full disk (ENOSPC) during a checkpoint is a CheckpointError; the previous generation stays usable', async () => {
  const folder = await ImageFolder.open(sharedPath('data', 'hymenoptera', 'val'));
  const data = ImageList.from(
    folder.samples.filter((_, i) => i % 19 === 0).slice(0, 8).map((s) => ({ path: s.path, label: folder.classes[s.label] })),
    { transform: Transform.compose(Transform.resize([64, 64]), Transform.toTensor(), Transform.normalize()) },
  );
  const make = async () => {
    manualSeed(2);
    return Model.create({ arch: 'squeezenet1_1', numClasses: 2, classes: data.classes });
  };
  // one generation's size, measured on a normal folder
  const probe = join(tmp, 'probe');
  await new Trainer(await make(), { strategy: 'full', epochs: 1, optimizer: 'adam', checkpointDir: probe }).fit(new DataLoader(data, { batchSize: 8 }));
  const genDir = (await latestGeneration(probe))!.dir;
  const genBytes = readdirSync(genDir).reduce((s, f) => s + statSync(join(genDir, f)).size, 0);
  const bestBytes = statSync(join(probe, 'best.pth')).size;
  // room for best.pth (and its temporary copy) plus one and a half generations: the second generation cannot fit
  const mnt = join(tmp, 'small-disk');
  mkdirSync(mnt);
  const size = Math.ceil((2 * bestBytes + 1.5 * genBytes) / 4096) * 4096;
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', mnt], { encoding: 'utf8' });
  if (m.status !== 0) throw new Error(`this test mounts a small tmpfs to fill the disk and needs root: ${m.stderr}`);
  try {
    const model = await make();
    const events: string[] = [];
    const tr = new Trainer(model, { strategy: 'full', epochs: 3, optimizer: 'adam', checkpointDir: mnt });
    tr.on('checkpoint', (e: { kind: string }) => events.push(e.kind));
    const err = await tr.fit(new DataLoader(data, { batchSize: 8 })).catch((e) => e);
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.message).toMatch(/no space left on device/i);
    expect(events.filter((k) => k === 'last')).toEqual(['last']);
    // nothing partial is left, and generation 1 is intact and resumable
    expect(readdirSync(join(mnt, GENERATIONS))).toEqual(['epoch-000001']);
    const gen = await latestGeneration<{ epoch: number }>(mnt);
    expect(gen?.state.epoch).toBe(1);
    expect(gen?.rejected).toEqual([]);
    const resumed = await make();
    const r = await new Trainer(resumed, { strategy: 'full', epochs: 1, optimizer: 'adam', resumeFrom: mnt }).fit(new DataLoader(data, { batchSize: 8 }));
    expect(r.history.map((h) => h.epoch)).toEqual([0]);
  } finally {
    spawnSync('umount', [mnt]);
  }
  // a damaged newest generation is passed over for the one before it
  const two = join(tmp, 'two');
  await new Trainer(await make(), { strategy: 'full', epochs: 2, optimizer: 'adam', checkpointDir: two }).fit(new DataLoader(data, { batchSize: 8 }));
  writeFileSync(join(two, GENERATIONS, 'epoch-000002', 'model.pth'), 'torn');
  const gen = await latestGeneration<{ epoch: number }>(two);
  expect(gen?.state.epoch).toBe(1);
  expect(gen?.rejected.map((x) => x.reason)).toEqual([expect.stringMatching(/model.pth does not match its manifest/)]);
});
