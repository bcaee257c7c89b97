// `torch-resnet-tl launch`: torchrun's environment per rank, script arguments passed through, one failing rank
// stops the others and is named in the exit, signals reach every rank.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch } from '../../lib/launch';
import { ROOT } from '../helpers';

const CLI = join(ROOT, 'dist', 'cjs', 'cli', 'index.js');
const RANK = join(ROOT, 'test', 'scripts', 'rank.js');
/** This process's environment without OMP_NUM_THREADS (the launcher then sets a share of the cores). */
const withoutOmp = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'OMP_NUM_THREADS'));
const scratch = () => mkdtempSync(join(tmpdir(), 'tl-launch-'));
const ranks = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.startsWith('rank-'))
    .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')))
    .sort((a, b) => Number(a.RANK) - Number(b.RANK));

test('each rank gets torchrun\'s environment and the script its arguments; a share of the cores each', () => {
  const dir = scratch();
  const r = spawnSync(process.execPath, [CLI, 'launch', '--nproc-per-node', '3', '--master-port', '29611', RANK, dir, 'ok', '--flag', 'x', '--nnodes', '9'], { encoding: 'utf8', env: withoutOmp() });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const got = ranks(dir);
  expect(got).toHaveLength(3);
  got.forEach((e, i) =>
    expect(e).toMatchObject({ RANK: String(i), LOCAL_RANK: String(i), WORLD_SIZE: '3', LOCAL_WORLD_SIZE: '3', GROUP_RANK: '0', MASTER_ADDR: '127.0.0.1', MASTER_PORT: '29611', argv: ['--flag', 'x', '--nnodes', '9'] }), // the script's own options are its own
  );
  const share = Math.max(1, Math.floor(cpus().length / 3));
  for (const e of got) expect([e.OMP_NUM_THREADS, e.threads]).toEqual([String(share), share]);
});

test('node rank and node count give global ranks; a multi-node job without --master-addr is refused', () => {
  const dir = scratch();
  const r = spawnSync(process.execPath, [CLI, 'launch', '--nproc-per-node', '2', '--nnodes', '3', '--node-rank', '2', '--master-addr', '10.0.0.1', RANK, dir, 'ok'], { encoding: 'utf8' });
  expect(r.status).toBe(0);
  expect(ranks(dir).map((e) => [e.RANK, e.LOCAL_RANK, e.WORLD_SIZE, e.GROUP_RANK, e.MASTER_ADDR])).toEqual([
    ['4', '0', '6', '2', '10.0.0.1'],
    ['5', '1', '6', '2', '10.0.0.1'],
  ]);
  const bad = spawnSync(process.execPath, [CLI, 'launch', '--nproc-per-node', '2', '--nnodes', '2', RANK, dir, 'ok'], { encoding: 'utf8' });
  expect(bad.status).toBe(2);
  expect(bad.stderr).toMatch(/masterAddr/);
});

test('a failing rank stops the others at once; the exit names it and carries its code', () => {
  const dir = scratch();
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [CLI, 'launch', '--nproc-per-node', '3', RANK, dir, 'fail:1:7'], { encoding: 'utf8' });
  const seconds = (Date.now() - t0) / 1000;
  expect(r.status).toBe(7);
  expect(r.stderr).toMatch(/rank 1 \(local rank 1\) exited with code 7; the other ranks were stopped/);
  expect(seconds).toBeLessThan(30); // the others would wait 60 s
  // the others were told to stop
  expect(['0', '2'].map((k) => existsSync(join(dir, `signal-${k}.txt`)) && readFileSync(join(dir, `signal-${k}.txt`), 'utf8'))).toEqual(['SIGTERM', 'SIGTERM']);
});

test('SIGTERM to the launcher reaches every rank', async () => {
  const dir = scratch();
  const child = spawn(process.execPath, [CLI, 'launch', '--nproc-per-node', '2', RANK, dir, 'wait'], { stdio: 'ignore' });
  for (let i = 0; i < 200 && ranks(dir).length < 2; i++) await new Promise((r) => setTimeout(r, 50));
  expect(ranks(dir)).toHaveLength(2);
  child.kill('SIGTERM');
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  expect(['0', '1'].map((k) => readFileSync(join(dir, `signal-${k}.txt`), 'utf8'))).toEqual(['SIGTERM', 'SIGTERM']);
  expect(code).not.toBe(0);
});

test('the library call reports each rank and validates its options', async () => {
  const dir = scratch();
  const r = await launch({ nprocPerNode: 2, script: RANK, args: [dir, 'fail:0:5'], stdio: 'pipe' });
  expect(r.ok).toBe(false);
  expect(r.failed).toEqual({ rank: 0, localRank: 0, code: 5, signal: null });
  expect(r.ranks.map((e) => e.rank)).toEqual([0, 1]);
  expect(() => launch({ nprocPerNode: 0, script: RANK })).toThrow(/nprocPerNode/);
  expect(() => launch({ nprocPerNode: 1, nnodes: 2, nodeRank: 2, masterAddr: 'h', script: RANK })).toThrow(/nodeRank < nnodes/);
});
