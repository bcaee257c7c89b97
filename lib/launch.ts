// Starting the ranks of a data-parallel job on this node, as torchrun does: one process per local rank with
// torchrun's environment, signals forwarded, and the whole job stopped when one rank fails.
import { ChildProcess, spawn } from 'node:child_process';
import { cpus } from 'node:os';
import { InvalidOptionError } from './errors';
import * as v from './validate';

export interface LaunchOptions {
  /** Processes on this node (torchrun's --nproc-per-node). */
  nprocPerNode: number;
  /** Nodes in the job. Default 1. */
  nnodes?: number;
  /** This node's index in [0, nnodes). Default 0. */
  nodeRank?: number;
  /** Address of the rank-0 node (rendezvous). Default 127.0.0.1 (single node). */
  masterAddr?: string;
  /** Port of the rendezvous store on the rank-0 node. Default 29500 (torchrun's). */
  masterPort?: number;
  /** The script every rank runs (a .js/.mjs file, or any file Node runs), and its arguments. */
  script: string;
  args?: string[];
  /** Extra environment for every rank (on top of this process's). */
  env?: Record<string, string>;
  /** 'inherit' (default): the ranks share this terminal; 'pipe': `onOutput` receives their lines. */
  stdio?: 'inherit' | 'pipe';
  onOutput?: (rank: number, stream: 'stdout' | 'stderr', text: string) => void;
  /** After one rank fails, how long the others get after SIGTERM before SIGKILL. Default 10 s. */
  killGraceMs?: number;
}

export interface RankExit {
  rank: number;
  localRank: number;
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface LaunchResult {
  ok: boolean;
  /** The first rank that failed (non-zero exit or a signal it was not sent by the launcher). */
  failed?: RankExit;
  ranks: RankExit[];
}

/** torchrun's defaults (the one place they are defined). */
export const LAUNCH_DEFAULTS = { nnodes: 1, nodeRank: 0, masterAddr: '127.0.0.1', masterPort: 29500, killGraceMs: 10_000 };

/** The environment of one rank: torchrun's variables, and a fair share of the cores unless OMP_NUM_THREADS is set. */
export function rankEnv(o: Required<Pick<LaunchOptions, 'nprocPerNode' | 'nnodes' | 'nodeRank' | 'masterAddr' | 'masterPort'>>, localRank: number): Record<string, string> {
  const env: Record<string, string> = {
    RANK: String(o.nodeRank * o.nprocPerNode + localRank),
    LOCAL_RANK: String(localRank),
    WORLD_SIZE: String(o.nnodes * o.nprocPerNode),
    LOCAL_WORLD_SIZE: String(o.nprocPerNode),
    GROUP_RANK: String(o.nodeRank),
    MASTER_ADDR: o.masterAddr,
    MASTER_PORT: String(o.masterPort),
  };
  // torchrun sets OMP_NUM_THREADS=1 for several ranks per node; a share of the cores keeps them all busy here
  if (!process.env.OMP_NUM_THREADS && o.nprocPerNode > 1) env.OMP_NUM_THREADS = String(Math.max(1, Math.floor(cpus().length / o.nprocPerNode)));
  return env;
}

function validate(o: LaunchOptions) {
  v.plainObject('options', o);
  const nprocPerNode = v.positiveInt('nprocPerNode', o.nprocPerNode);
  const nnodes = o.nnodes === undefined ? LAUNCH_DEFAULTS.nnodes : v.positiveInt('nnodes', o.nnodes);
  const nodeRank = o.nodeRank === undefined ? LAUNCH_DEFAULTS.nodeRank : v.nonNegativeInt('nodeRank', o.nodeRank);
  if (nodeRank >= nnodes) throw new InvalidOptionError('nodeRank', `Expected nodeRank < nnodes (${nnodes}) but received ${nodeRank}`);
  if (nnodes > 1 && o.masterAddr === undefined) throw new InvalidOptionError('masterAddr', 'a job of several nodes needs masterAddr: the address of the node with rank 0');
  const masterAddr = o.masterAddr === undefined ? LAUNCH_DEFAULTS.masterAddr : v.nonEmptyString('masterAddr', o.masterAddr);
  const masterPort = o.masterPort === undefined ? LAUNCH_DEFAULTS.masterPort : v.positiveInt('masterPort', o.masterPort);
  if (masterPort > 65535) throw v.invalid('masterPort', 'port number in [1, 65535]', masterPort);
  const script = v.nonEmptyString('script', o.script);
  const killGraceMs = o.killGraceMs === undefined ? LAUNCH_DEFAULTS.killGraceMs : v.nonNegativeInt('killGraceMs', o.killGraceMs);
  return { nprocPerNode, nnodes, nodeRank, masterAddr, masterPort, script, killGraceMs };
}

/**
 * Runs `script` in `nprocPerNode` processes with torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE,
 * LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR, MASTER_PORT). SIGINT/SIGTERM/SIGHUP sent to this process go to every
 * rank. When a rank exits non-zero or dies, the others get SIGTERM (SIGKILL after `killGraceMs`) and the result
 * names the failed rank. Resolves when every rank has exited.
 */
export function launch(options: LaunchOptions): Promise<LaunchResult> {
  const o = validate(options);
  const children: ChildProcess[] = [];
  const exits: RankExit[] = [];
  let failed: RankExit | undefined;
  let stopping = false;
  const forwarded = new Set<number>();
  let killTimer: NodeJS.Timeout | undefined;

  const stopOthers = () => {
    if (stopping) return;
    stopping = true;
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    killTimer = setTimeout(() => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }, o.killGraceMs);
    killTimer.unref();
  };
  const forward = (sig: NodeJS.Signals) => {
    for (const [i, c] of children.entries()) {
      if (c.exitCode === null && c.signalCode === null) {
        forwarded.add(i);
        c.kill(sig);
      }
    }
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const handlers = signals.map((s) => [s, () => forward(s)] as const);

  return new Promise<LaunchResult>((resolve) => {
    for (const [s, h] of handlers) process.on(s, h);
    const done = () => {
      for (const [s, h] of handlers) process.off(s, h);
      if (killTimer) clearTimeout(killTimer);
      exits.sort((a, b) => a.rank - b.rank);
      resolve({ ok: !failed && exits.every((e) => e.code === 0), failed, ranks: exits });
    };
    for (let local = 0; local < o.nprocPerNode; local++) {
      const env = { ...process.env, ...options.env, ...rankEnv(o, local) };
      const rank = Number(env.RANK);
      const child = spawn(process.execPath, [o.script, ...(options.args ?? [])], { env, stdio: options.stdio === 'pipe' ? ['ignore', 'pipe', 'pipe'] : 'inherit' });
      children.push(child);
      if (options.stdio === 'pipe') {
        child.stdout?.on('data', (d: Buffer) => options.onOutput?.(rank, 'stdout', d.toString()));
        child.stderr?.on('data', (d: Buffer) => options.onOutput?.(rank, 'stderr', d.toString()));
      }
      const onEnd = (code: number | null, signal: NodeJS.Signals | null) => {
        const e: RankExit = { rank, localRank: local, code, signal };
        exits.push(e);
        // a rank we stopped (after another failed) or that got a forwarded signal is not the cause
        const ours = stopping || (forwarded.has(local) && signal !== null);
        if ((code !== 0 || signal !== null) && !ours && !failed) {
          failed = e;
          stopOthers();
        }
        if (exits.length === o.nprocPerNode) done();
      };
      child.once('exit', onEnd);
      child.once('error', (err) => {
        if (!failed) failed = { rank, localRank: local, code: null, signal: null };
        options.onOutput?.(rank, 'stderr', `could not start: ${err.message}\n`);
        stopOthers();
        if (!exits.some((x) => x.localRank === local)) {
          exits.push({ rank, localRank: local, code: null, signal: null });
          if (exits.length === o.nprocPerNode) done();
        }
      });
    }
  });
}

/** A one-line description of a rank's end, for the launcher's error message. */
export function describeExit(e: RankExit): string {
  return `rank ${e.rank} (local rank ${e.localRank}) ${e.signal ? `was killed by ${e.signal}` : `exited with code ${e.code}`}`;
}
