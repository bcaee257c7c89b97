// `npm run demo`: an offline demo on embedded defaults. It loads squeezenet1_1 ImageNet weights (the shared file
// when present, else a cached/downloaded torchvision file, else random init with a notice), swaps the head for a
// 2-class task, saves and reloads the model, and reports throughput.
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Model, version, getNumThreads } from '../index';

async function main(): Promise<void> {
  const v = version();
  console.log(`torch-resnet-tl demo — libtorch ${v.libtorch}, ${v.cuda ? 'CUDA' : 'CPU'} build, ${getNumThreads()} threads, BF16: ${v.cpu.bf16}`);
  const shared = resolve(process.env.TORCH_RESNET_TL_SHARED ?? join(__dirname, '..', '..', '..', '..', 'shared'));
  const local = join(shared, 'weights', 'squeezenet1_1-imagenet.pth');
  let weights: string | null = existsSync(local) ? local : 'IMAGENET1K_V1';
  let model: Model;
  try {
    model = await Model.create({ arch: 'squeezenet1_1', numClasses: 2, classes: ['ants', 'bees'], weights, offline: !!process.env.TORCH_RESNET_TL_OFFLINE });
  } catch (e) {
    console.log(`notice: ImageNet weights unavailable (${(e as Error).message}); using random initialisation`);
    weights = null;
    model = await Model.create({ arch: 'squeezenet1_1', numClasses: 2, classes: ['ants', 'bees'] });
  }
  console.log(`model: ${model.arch}, ${model.parameterCount().toLocaleString()} parameters; ${model.loadReport.message}`);
  const n = 8;
  const input = new Float32Array(n * 3 * 224 * 224).map((_, i) => Math.sin(i / 997));
  for (const precision of ['fp32', 'auto'] as const) {
    await model.forward(input, [n, 3, 224, 224], { precision });
    const t0 = performance.now();
    const out = await model.forward(input, [n, 3, 224, 224], { precision });
    const s = (performance.now() - t0) / 1000;
    console.log(`forward ${precision.padEnd(4)}: ${(n / s).toFixed(1)} img/s, logits ${JSON.stringify(out.shape)}`);
  }
  const path = join(tmpdir(), `torch-resnet-tl-demo-${process.pid}.pth`);
  await model.save(path);
  const back = await Model.load(path);
  console.log(`saved ${path} and reloaded: arch=${back.arch} classes=${JSON.stringify(back.classes)}`);
  model.dispose();
  back.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
