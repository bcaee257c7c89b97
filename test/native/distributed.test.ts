// Data-parallel training over c10d (Gloo): N ranks started by `launch` train as one process on the same global
// batch; the sharding follows DistributedSampler; bad set-ups are clear errors.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataLoader, ImageFolder, ImageList, manualSeed, Model, readStateDict, setNumThreads, Trainer, TrainerOptions, Transform, version } from '../../lib';
import { createServer } from 'node:net';
import { cpus } from 'node:os';
import { launch } from '../../lib/launch';
import { rankDevice, resolveDistributed } from '../../lib/distributed';
import { ROOT, maxAbsDiff, sharedPath } from '../helpers';

const tmp = mkdtempSync(join(tmpdir(), 'tl-ddp-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true })); // checkpoints of ResNets add up over runs
const RANK = join(ROOT, 'test', 'scripts', 'ddp-rank.js');
const SEED = 5; // a fixed initialisation: the comparison is reproducible
const port = () => 29000 + Math.floor(Math.random() * 900);

async function items(n: number) {
  const folder = await ImageFolder.open(sharedPath('data', 'hymenoptera', 'train'));
  const pick = folder.samples.filter((_, i) => i % Math.floor(folder.length / n) === 0).slice(0, n);
  return { items: pick.map((s) => ({ path: s.path, label: folder.classes[s.label] })), classes: folder.classes };
}

describe('N ranks train as one process on the same global batch', () => {
  test.each([
    ['SGD with momentum', { optimizer: 'sgd', lr: 0.002 }],
    // eps 1e-6: elements whose gradient is rounding noise (it differs with the batch split) do not move by ±lr
    ['Adam', { optimizer: 'adam', lr: 1e-4, eps: 1e-6 }],
    // each rank caches the backbone features of its own shard
    ['feature extraction through the feature cache', { strategy: 'feature-extract', optimizer: 'sgd', lr: 0.01, featureCache: true }],
    // the overlapped reducer with 1 MiB buckets (a dozen all-reduces started from backward's hooks, in order), and
    // accumulation: each rank's two batches of 4 are summed locally and reduced once per step (DDP's no_sync)
    ['SGD, 1 MiB buckets, 2 batches of 4 accumulated per rank', { optimizer: 'sgd', lr: 0.002, accumulate: 2, distributed: { bucketBytes: 2 ** 20 } }, 4],
    // every bucket reduced after the backward pass
    ['SGD, all-reduce after the backward pass', { optimizer: 'sgd', lr: 0.002, distributed: { overlap: false } }],
  ] as [string, TrainerOptions, number?][])('%s: 2 ranks equal 1 process x 16 (BatchNorm frozen, 3 steps): max |Δ| <= 1e-5', async (name, opt, rankBatch = 8) => {
    const { items: list, classes } = await items(48);
    const tag = name.replace(/\W+/g, '-');
    const start = join(tmp, `start-${tag}.pth`);
    manualSeed(SEED);
    const init = await Model.create({ arch: 'resnet18', numClasses: 2, classes, channelsLast: false });
    await init.save(start);
    init.dispose();
    const trainer: TrainerOptions = { strategy: 'full', epochs: 1, backboneLr: opt.lr, precision: 'fp32', freezeBatchNormStats: 'all', ...opt };
    // one process, global batch 16
    const single = await Model.create({ arch: 'resnet18', numClasses: 2, classes, channelsLast: false });
    await single.loadWeights(start);
    const data = ImageList.from(list, { transform: Transform.compose([Transform.resize([64, 64]), Transform.toTensor(), Transform.normalize()]) });
    const steps: number[] = [];
    setNumThreads(1); // as each rank (OMP_NUM_THREADS = cores / ranks): the same kernels' reduction order
    const t1 = new Trainer(single, { ...trainer, accumulate: 1, distributed: false });
    t1.on('batchEnd', (e) => steps.push(e.batch));
    const r1 = await t1.fit(new DataLoader(data, { batchSize: 16, shuffle: true, seed: 11 }));
    setNumThreads(cpus().length);
    expect(steps).toEqual(opt.featureCache ? [2] : [0, 1, 2]); // the cached epoch is one native call
    // two ranks, 8 each
    const cfg = join(tmp, `ddp-${tag}.json`);
    const out = join(tmp, `ddp-${tag}`);
    writeFileSync(cfg, JSON.stringify({ items: list, classes, start, out, trainer, batchSize: rankBatch, seed: 11 }));
    const lines: string[] = [];
    const r = await launch({ nprocPerNode: 2, masterPort: port(), script: RANK, args: [cfg], stdio: 'pipe', onOutput: (rank, s, t) => lines.push(`[${rank} ${s}] ${t}`) });
    if (!r.ok) console.log(lines.join(''));
    expect(r.ok).toBe(true);
    const reports = lines.filter((l) => l.includes('stdout] {')).map((l) => JSON.parse(l.slice(l.indexOf('{'))));
    expect(reports).toHaveLength(2);
    // the reduced epoch loss is the single process's (the same 48 samples)
    for (const rep of reports) expect(Math.abs(rep.history[0].loss - r1.history[0].loss)).toBeLessThan(1e-4);
    // overlap: every bucket's all-reduce started from backward's gradient hooks (the last one with the stem's
    // gradient); overlap false: all of them after backward
    const ar = reports[0].history[0].allReduce;
    expect(ar.buckets).toBeGreaterThanOrEqual(opt.distributed && (opt.distributed as { bucketBytes?: number }).bucketBytes ? 3 * 10 : 3);
    expect(ar.bucketsDuringBackward).toBe((opt.distributed as { overlap?: boolean } | undefined)?.overlap === false ? 0 : ar.buckets);
    expect(ar.waitSeconds).toBeGreaterThanOrEqual(0);
    expect(r1.history[0].allReduce).toBeUndefined();
    const ours = await single.stateDict();
    let worst = 0;
    for (const rank of [0, 1]) {
      const theirs = await readStateDict(`${out}.rank${rank}.pth`);
      for (const k of theirs.keys) {
        const [a, b] = [ours[k].data, theirs.tensors[k].data];
        if (a.constructor.name !== 'Float32Array') continue;
        worst = Math.max(worst, maxAbsDiff(a as Float32Array, b as Float32Array));
      }
    }
    console.log(`${name}: 2 ranks vs 1 process, worst |Δ| ${worst.toExponential(2)}`);
    expect(worst).toBeLessThanOrEqual(1e-5);
    single.dispose();
  });
});

test('trainable BatchNorm: per-rank running statistics, or averaged over the ranks with averageBatchNormStats', async () => {
  const { items: list, classes } = await items(32);
  const start = join(tmp, 'bn-start.pth');
  manualSeed(SEED);
  const init = await Model.create({ arch: 'resnet18', numClasses: 2, classes, channelsLast: false });
  await init.save(start);
  init.dispose();
  const stats = async (averageBatchNormStats: boolean) => {
    const cfg = join(tmp, `bn-${averageBatchNormStats}.json`);
    const out = join(tmp, `bn-${averageBatchNormStats}`);
    const trainer = { strategy: 'full', epochs: 1, optimizer: 'sgd', lr: 0.01, precision: 'fp32', freezeBatchNormStats: false, distributed: { averageBatchNormStats } };
    writeFileSync(cfg, JSON.stringify({ items: list, classes, start, out, trainer, batchSize: 8, seed: 2 }));
    const r = await launch({ nprocPerNode: 2, masterPort: port(), script: RANK, args: [cfg], stdio: 'pipe' });
    expect(r.ok).toBe(true);
    const [a, b] = [await readStateDict(`${out}.rank0.pth`), await readStateDict(`${out}.rank1.pth`)];
    const k = 'layer1.0.bn1.running_mean';
    const w = 'layer1.0.conv1.weight';
    return { statsEqual: a.tensors[k].data.every((x, i) => x === b.tensors[k].data[i]), weightsEqual: a.tensors[w].data.every((x, i) => x === b.tensors[w].data[i]) };
  };
  expect(await stats(false)).toEqual({ statsEqual: false, weightsEqual: true }); // DDP's default: each rank its own batches' statistics
  expect(await stats(true)).toEqual({ statsEqual: true, weightsEqual: true });
});

describe('set-up errors', () => {
  test('torchrun environment: resolved, or refused naming what is missing', () => {
    expect(resolveDistributed('auto', {})).toBeUndefined();
    expect(resolveDistributed('auto', { WORLD_SIZE: '1', RANK: '0' })).toBeUndefined();
    expect(resolveDistributed(undefined, { WORLD_SIZE: '2', RANK: '1', MASTER_ADDR: 'h', MASTER_PORT: '1234' })).toMatchObject({ rank: 1, worldSize: 2, masterAddr: 'h', masterPort: 1234, timeoutMs: 60000, bucketBytes: 25 * 2 ** 20, backend: 'auto', overlap: true });
    expect(() => resolveDistributed({ rank: 0, worldSize: 2, masterAddr: 'h', masterPort: 5, backend: 'mpi' } as never, {})).toThrow(/'auto', 'gloo', 'nccl' for distributed\.backend/);
    expect(() => resolveDistributed({ rank: 0, worldSize: 2, masterAddr: 'h', masterPort: 5, overlap: 'yes' } as never, {})).toThrow(/distributed\.overlap/);
    // torchrun scripts' one GPU per local rank
    expect(rankDevice('cuda', { WORLD_SIZE: '4', LOCAL_RANK: '3' })).toBe('cuda:3');
    expect(rankDevice('cuda:1', { WORLD_SIZE: '4', LOCAL_RANK: '3' })).toBe('cuda:1');
    expect(rankDevice('cuda', {})).toBe('cuda');
    expect(rankDevice('cpu', { WORLD_SIZE: '4', LOCAL_RANK: '3' })).toBe('cpu');
    expect(() => resolveDistributed('auto', { WORLD_SIZE: '2', RANK: '0', MASTER_PORT: '1' })).toThrow(/MASTER_ADDR/);
    expect(() => resolveDistributed('auto', { WORLD_SIZE: '2', RANK: '2', MASTER_ADDR: 'h', MASTER_PORT: '1' })).toThrow(/rank < worldSize/);
    expect(() => resolveDistributed(true, {})).toThrow(/launch/);
    expect(() => resolveDistributed({ rank: 0, worldSize: 2, masterAddr: 'h', masterPort: 5, bogus: 1 } as never, {})).toThrow(/bogus/);
  });

  test("the backend: this build's list; NCCL for a CPU model (or in a build without it) is refused naming the option", async () => {
    const v = version();
    expect(v.distributed).toContain('gloo');
    // CUDA builds carry NCCL (PyPI's nvidia-nccl headers); Debian's CPU libtorch has none
    expect(v.distributed.includes('nccl')).toBe(v.variant === 'pypi' && v.cuda);
    const model = await Model.create({ arch: 'resnet18', numClasses: 2, channelsLast: false });
    const { items: list, classes } = await items(4);
    const data = ImageList.from(list, { classes, transform: Transform.compose([Transform.resize([32, 32]), Transform.toTensor()]) });
    const tr = new Trainer(model, { strategy: 'full', epochs: 1, distributed: { rank: 0, worldSize: 2, masterAddr: '127.0.0.1', masterPort: port(), timeoutMs: 3000, backend: 'nccl' } });
    const err = await tr.fit(new DataLoader(data, { batchSize: 2 })).catch((e) => e);
    expect(err?.code).toBe('ERR_INVALID_OPTION');
    expect(err.message).toMatch(v.distributed.includes('nccl') ? /distributed\.backend 'nccl' needs the model on a CUDA device; it is on cpu/ : /distributed\.backend 'nccl' needs a CUDA build with NCCL/);
    model.dispose();
  });

  test('a port in use is a DistributedError saying so', async () => {
    const server = createServer();
    const p = port();
    await new Promise<void>((r) => server.listen(p, '127.0.0.1', r));
    const model = await Model.create({ arch: 'resnet18', numClasses: 2, channelsLast: false });
    const { items: list, classes } = await items(4);
    const data = ImageList.from(list, { classes, transform: Transform.compose([Transform.resize([32, 32]), Transform.toTensor()]) });
    const tr = new Trainer(model, { strategy: 'full', epochs: 1, distributed: { rank: 0, worldSize: 2, masterAddr: '127.0.0.1', masterPort: p, timeoutMs: 3000 } });
    const err = await tr.fit(new DataLoader(data, { batchSize: 2 })).catch((e) => e);
    server.close();
    expect(err?.code).toBe('ERR_DISTRIBUTED');
    expect(err.message).toMatch(new RegExp(`rendezvous failed for rank 0 of 2 \\(rendezvous 127.0.0.1:${p}\\).*port in use`));
    model.dispose();
  });

  test('a rank whose peer never comes fails within the timeout with a DistributedError', async () => {
    const model = await Model.create({ arch: 'resnet18', numClasses: 2, channelsLast: false });
    const { items: list, classes } = await items(4);
    const data = ImageList.from(list, { classes, transform: Transform.compose([Transform.resize([32, 32]), Transform.toTensor()]) });
    const t0 = Date.now();
    const tr = new Trainer(model, { strategy: 'full', epochs: 1, distributed: { rank: 0, worldSize: 2, masterAddr: '127.0.0.1', masterPort: port(), timeoutMs: 3000 } });
    const err = await tr.fit(new DataLoader(data, { batchSize: 2 })).catch((e) => e);
    expect(err?.code).toBe('ERR_DISTRIBUTED');
    expect(err.message).toMatch(/rank 0 of 2/);
    expect(Date.now() - t0).toBeLessThan(30_000);
    model.dispose();
  });
});
