// Data-parallel training settings: torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) or explicit
// options, resolved once; the collectives themselves are native (c10d: Gloo, or NCCL in CUDA builds).
import { InvalidOptionError } from './errors';
import * as v from './validate';

export interface DistributedOptions {
  /** This process's rank. Default: $RANK. */
  rank?: number;
  /** Number of ranks. Default: $WORLD_SIZE. */
  worldSize?: number;
  /** Rendezvous host (rank 0). Default: $MASTER_ADDR. */
  masterAddr?: string;
  /** Rendezvous port. Default: $MASTER_PORT. */
  masterPort?: number;
  /** A rank that does not answer a rendezvous or collective within this fails the others. Default 60 s. */
  timeoutMs?: number;
  /** Gradient all-reduce bucket size. Default 25 MiB (DDP's). */
  bucketBytes?: number;
  /**
   * Trainable BatchNorm keeps per-rank running statistics (DDP's default); true averages them over the ranks at
   * every epoch end. Frozen BatchNorm stays frozen either way.
   */
  averageBatchNormStats?: boolean;
  /**
   * The c10d backend: 'gloo' (CPU; CUDA gradients are staged through host memory), 'nccl' (GPU to GPU; CUDA builds,
   * one GPU per rank) or 'auto': NCCL for a model on a GPU when this build has it, else Gloo. `version().distributed`
   * lists what this build has. Default 'auto'.
   */
  backend?: 'auto' | 'gloo' | 'nccl';
  /**
   * Start each bucket's all-reduce during the backward pass, as soon as its gradients are computed (DDP's reducer;
   * the first bucket is 1 MiB so communication starts early); false reduces every bucket after the backward pass.
   * The result is the same. Default true.
   */
  overlap?: boolean;
}

export interface ResolvedDistributed {
  rank: number;
  worldSize: number;
  masterAddr: string;
  masterPort: number;
  timeoutMs: number;
  bucketBytes: number;
  averageBatchNormStats: boolean;
  backend: 'auto' | 'gloo' | 'nccl';
  overlap: boolean;
}

/** Defaults of data-parallel training, defined here only. */
export const DISTRIBUTED_DEFAULTS = { timeoutMs: 60_000, bucketBytes: 25 * 2 ** 20, averageBatchNormStats: false, backend: 'auto' as const, overlap: true };
const KEYS = ['rank', 'worldSize', 'masterAddr', 'masterPort', 'timeoutMs', 'bucketBytes', 'averageBatchNormStats', 'backend', 'overlap'] as const;
const BACKENDS = ['auto', 'gloo', 'nccl'] as const;

function envInt(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new InvalidOptionError('distributed', `Expected a non-negative integer in $${name} but received ${JSON.stringify(raw)}`);
  return n;
}

/**
 * The Trainer's `distributed` option resolved against torchrun's environment: undefined for a single process
 * (`false`, or no WORLD_SIZE above 1 with `'auto'`). Refuses a partial set-up (a world size without MASTER_ADDR,
 * a rank outside the world) naming what is missing.
 */
export function resolveDistributed(option: boolean | 'auto' | DistributedOptions | undefined, env: NodeJS.ProcessEnv = process.env): ResolvedDistributed | undefined {
  if (option === false) return undefined;
  const o: DistributedOptions = typeof option === 'object' && option !== null ? option : {};
  if (typeof option === 'object') {
    v.plainObject('distributed', option);
    v.knownKeys('distributed', option as Record<string, unknown>, KEYS);
  } else if (option !== undefined && option !== true && option !== 'auto') throw v.invalid('distributed', "boolean, 'auto' or an options object", option);
  const worldSize = o.worldSize !== undefined ? v.positiveInt('distributed.worldSize', o.worldSize) : envInt(env, 'WORLD_SIZE');
  if (worldSize === undefined || (worldSize === 1 && option !== true && typeof option !== 'object')) {
    if (option === true) throw new InvalidOptionError('distributed', 'distributed: true needs WORLD_SIZE, RANK, MASTER_ADDR and MASTER_PORT (start the ranks with `torch-resnet-tl launch`) or explicit options');
    return undefined;
  }
  const rank = o.rank !== undefined ? v.nonNegativeInt('distributed.rank', o.rank) : envInt(env, 'RANK');
  if (rank === undefined) throw new InvalidOptionError('distributed', 'a data-parallel run needs its rank: $RANK or distributed.rank');
  if (rank >= worldSize) throw new InvalidOptionError('distributed.rank', `Expected rank < worldSize (${worldSize}) but received ${rank}`);
  const masterAddr = o.masterAddr !== undefined ? v.nonEmptyString('distributed.masterAddr', o.masterAddr) : env.MASTER_ADDR;
  if (!masterAddr) throw new InvalidOptionError('distributed', 'a data-parallel run needs the rendezvous host: $MASTER_ADDR or distributed.masterAddr');
  const masterPort = o.masterPort !== undefined ? v.positiveInt('distributed.masterPort', o.masterPort) : envInt(env, 'MASTER_PORT');
  if (masterPort === undefined || masterPort < 1 || masterPort > 65535) throw new InvalidOptionError('distributed', 'a data-parallel run needs the rendezvous port: $MASTER_PORT or distributed.masterPort (1..65535)');
  return {
    rank,
    worldSize,
    masterAddr,
    masterPort,
    timeoutMs: o.timeoutMs === undefined ? DISTRIBUTED_DEFAULTS.timeoutMs : v.positiveInt('distributed.timeoutMs', o.timeoutMs),
    bucketBytes: o.bucketBytes === undefined ? DISTRIBUTED_DEFAULTS.bucketBytes : v.positiveInt('distributed.bucketBytes', o.bucketBytes),
    averageBatchNormStats: o.averageBatchNormStats === undefined ? DISTRIBUTED_DEFAULTS.averageBatchNormStats : v.bool('distributed.averageBatchNormStats', o.averageBatchNormStats),
    backend: o.backend === undefined ? DISTRIBUTED_DEFAULTS.backend : v.oneOf('distributed.backend', o.backend, BACKENDS),
    overlap: o.overlap === undefined ? DISTRIBUTED_DEFAULTS.overlap : v.bool('distributed.overlap', o.overlap),
  };
}

/**
 * A rank's GPU, as torchrun scripts pick it: in a data-parallel process ($WORLD_SIZE above 1), `'cuda'` without an
 * index means `cuda:$LOCAL_RANK` (one GPU per local rank, what NCCL needs). Anything else is returned unchanged.
 */
export function rankDevice(device: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (device !== 'cuda' || !env.LOCAL_RANK || Number(env.WORLD_SIZE ?? 1) <= 1) return device;
  return `cuda:${envInt(env, 'LOCAL_RANK')}`;
}
