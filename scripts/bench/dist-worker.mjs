// One process of bench:dist (started by scripts/bench/dist.mjs, alone or as a rank through `launch`/ip netns).
// usage: node scripts/bench/dist-worker.mjs train DATA_DIR BATCH_PER_RANK EPOCHS [overlap|after]
//        node scripts/bench/dist-worker.mjs allreduce NUMEL ITERATIONS
// Prints one JSON line (rank 0, or the single process).
import { lib, native } from './common.mjs';

const { ImageFolder, DataLoader, Model, Trainer, Transform, getNumThreads } = lib;
const [mode, ...args] = process.argv.slice(2);
const rank = Number(process.env.RANK ?? 0);

if (mode === 'train') {
  const [dir, batch, epochs] = [args[0], Number(args[1]), Number(args[2])];
  const overlap = args[3] !== 'after'; // all-reduce during the backward pass (default) or after it
  const tf = Transform.compose([Transform.resize([112, 112]), Transform.randomHorizontalFlip(), Transform.toTensor(), Transform.normalize()]);
  const train = await ImageFolder.open(`${dir}/train`, { transform: tf });
  const model = await Model.create({ arch: 'resnet18', numClasses: train.classes.length, classes: train.classes, channelsLast: true });
  const trainer = new Trainer(model, { strategy: 'full', epochs, optimizer: 'sgd', lr: 0.01, seed: 0, precision: 'fp32', distributed: { overlap } });
  const res = await trainer.fit(new DataLoader(train, { batchSize: batch, shuffle: true, seed: 0 }));
  const last = res.history.at(-1).seconds; // the first epoch warms caches and kernels up
  const steps = Math.ceil(train.length / Number(process.env.WORLD_SIZE ?? 1) / batch);
  const ar = res.history.at(-1).allReduce;
  if (rank === 0) process.stdout.write(`${JSON.stringify({ images: train.length, epochSeconds: last, imgPerSec: train.length / last, threads: getNumThreads(), worldSize: Number(process.env.WORLD_SIZE ?? 1), waitMsPerStep: ar ? (1000 * ar.waitSeconds) / steps : 0, bucketsPerStep: ar ? ar.buckets / steps : 0, duringBackward: ar ? ar.bucketsDuringBackward / Math.max(1, ar.buckets) : 0 })}\n`);
  model.dispose();
} else if (mode === 'allreduce') {
  const [numel, iterations] = [Number(args[0]), Number(args[1])];
  const times = await native().allreduceBenchmark({
    rank,
    worldSize: Number(process.env.WORLD_SIZE),
    masterAddr: process.env.MASTER_ADDR,
    masterPort: Number(process.env.MASTER_PORT),
    timeoutMs: 120000,
    bucketBytes: 25 * 2 ** 20,
    backend: 'gloo',
    numel,
    iterations,
  });
  times.sort((a, b) => a - b);
  if (rank === 0) process.stdout.write(`${JSON.stringify({ numel, median: times[Math.floor(times.length / 2)], min: times[0] })}\n`);
} else {
  process.stderr.write('usage: dist-worker.mjs train DIR BATCH EPOCHS | allreduce NUMEL ITERATIONS\n');
  process.exit(2);
}
