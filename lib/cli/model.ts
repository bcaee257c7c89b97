// The commands about a model and its data outside training: assess, eval, predict, export, info.
import { Command } from 'commander';
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { DataLoader, ImageFolder } from '../data';
import { devices, getNumThreads, version } from '../device';
import { InvalidOptionError } from '../errors';
import { ARCHS, Model } from '../model';
import { assess } from '../transfer';
import { ONNX_DEFAULTS } from '../onnx';
import { Trainer } from '../trainer';
import { Output, rankingTable, table } from './progress';
import { evalTransform } from './run';
import { archOption, C, candidatesArg, int, pct, print, weightsArg, weightsOf, withDefaultWeights } from './common';

/** `assess` */
export function addAssessCommand(program: Command, out: () => Output): void {
  program
    .command('assess')
    .description('measure how well a pretrained backbone fits a labelled image folder (k-NN and linear-probe accuracy, LogME, BatchNorm shift, class counts) and recommend a strategy')
    .requiredOption('--data <dir>', 'folder with train/ (or one sub-folder per class)')
    .addOption(archOption())
    .option('--weights <w>', `IMAGENET1K_V1 | IMAGENET1K_V2 | DEFAULT | file (default ${C.weights})`, weightsArg)
    .option('--image-size <n>', `centre-crop size (default ${C.imageSize})`, int(16))
    .option('--batch-size <n>', `batch size (default ${C.batchSize})`, int(1))
    .option('--candidates <list>', 'rank source models instead: arch[:weights],… (weights: a file, IMAGENET1K_V1…, or none for random init; default --weights)', candidatesArg)
    .action(async (o) => {
      const output = out();
      const dir = existsSync(join(o.data, 'train')) ? join(o.data, 'train') : o.data;
      const ds = await ImageFolder.open(dir, { transform: evalTransform(o.imageSize ?? C.imageSize), onError: 'skip' });
      const weights = o.weights === undefined ? C.weights : weightsOf(o.weights);
      if (o.candidates) {
        const r = await assess(withDefaultWeights(o.candidates, weights), new DataLoader(ds, { batchSize: o.batchSize ?? C.batchSize }));
        print(output, () => `${dir}: ${ds.length} images, ${ds.classes.length} classes — ${r.seconds.toFixed(1)} s; ordered by ${r.orderedBy}\n\n${rankingTable(r)}\n\nbest: ${r.ranking[0].name}${r.closeCallReason ? `\nclose call: ${r.closeCallReason}` : ''}`, () => r);
        return;
      }
      if (weights === null) throw new InvalidOptionError('weights', 'assess measures pretrained features: give --weights');
      const model = await Model.create({ arch: o.arch ?? C.arch, numClasses: ds.classes.length, classes: ds.classes, weights });
      try {
        const a = await assess(model, new DataLoader(ds, { batchSize: o.batchSize ?? C.batchSize }));
        const r = a.recommendation;
        print(
          output,
          () =>
            `${dir}: ${a.count} images, ${a.numClasses} classes (${a.imagesPerClass.toFixed(1)} per class, imbalance ${a.imbalance.toFixed(2)}×) — ${a.seconds.toFixed(1)} s

` +
            table(
              ['figure', 'value'],
              [
                ['linear probe (cv)', `${pct(a.linearProbeAccuracy)} (L2 ${a.linearProbeL2})`],
                ['k-NN (cv)', pct(a.knnAccuracy)],
                ['chance', pct(a.chance)],
                ['LogME', a.logme.toFixed(4)],
                ['BatchNorm shift', a.bnShift === null ? 'no BatchNorm' : a.bnShift.toFixed(3)],
              ],
            ) +
            `

recommended: --strategy ${r.strategy}${r.trainFrom ? ` --train-from ${r.trainFrom}` : ''} --head ${r.head}${r.epochs ? ` --epochs ${r.epochs} --lr ${r.lr} --backbone-lr ${r.backboneLr}` : ''}
${r.reason}`,
          () => a,
        );
      } finally {
        model.dispose();
      }
    });
}

/** `eval` */
export function addEvalCommand(program: Command, out: () => Output): void {
  program
    .command('eval')
    .description('evaluate a saved model on an image folder (its val/ when present)')
    .requiredOption('--model <file>', 'a .pth/.safetensors saved by torch-resnet-tl')
    .requiredOption('--data <dir>', 'folder with one sub-folder per class (or with val/)')
    .option('--batch-size <n>', `batch size (default ${C.batchSize})`, int(1))
    .option('--image-size <n>', `centre-crop size (default ${C.imageSize})`, int(16))
    .option('--tta', 'horizontal-flip test-time augmentation')
    .action(async (o) => {
      const output = out();
      const model = await Model.load(o.model);
      try {
        const dir = existsSync(join(o.data, 'val')) ? join(o.data, 'val') : o.data;
        const ds = await ImageFolder.open(dir, { transform: evalTransform(o.imageSize ?? C.imageSize) });
        const classes = model.classes ?? Array.from({ length: model.numClasses }, (_, i) => String(i));
        if (ds.classes.join('\n') !== classes.join('\n'))
          throw new InvalidOptionError('data', `${dir}: classes (${ds.classes.join(', ')}) do not match the model's (${classes.join(', ')})`);
        const rep = await new Trainer(model).evaluate(new DataLoader(ds, { batchSize: o.batchSize ?? C.batchSize }), { tta: !!o.tta });
        print(
          output,
          () =>
            `${dir}: ${rep.count} images, accuracy ${pct(rep.accuracy)}${rep.top5 !== undefined ? `, top-5 ${pct(rep.top5)}` : ''}, loss ${rep.loss.toFixed(4)}\n\n` +
            table(['class', 'precision', 'recall', 'f1', 'support'], rep.perClass.map((c) => [c.class, c.precision.toFixed(3), c.recall.toFixed(3), c.f1.toFixed(3), c.support])),
          () => ({ data: dir, ...rep, errors: rep.errors.map((e) => ({ ...e, path: ds.samples[e.index].path })) }),
        );
      } finally {
        model.dispose();
      }
    });
}

/** `predict` */
export function addPredictCommand(program: Command, out: () => Output): void {
  program
    .command('predict')
    .description('classify images with a saved model')
    .requiredOption('--model <file>', 'a .pth/.safetensors saved by torch-resnet-tl')
    .argument('<images...>', 'image files')
    .option('--topk <k>', 'classes per image (default min(5, classes))', int(1))
    .option('--tta', 'horizontal-flip test-time augmentation')
    .action(async (images: string[], o) => {
      const output = out();
      const model = await Model.load(o.model);
      try {
        const preds = (await model.predict(images, { topk: o.topk, tta: !!o.tta })) as Awaited<ReturnType<Model['predict']>> as { label: string; index: number; probability: number }[][];
        print(
          output,
          () => images.map((p, i) => `${p}\n${preds[i].map((q) => `  ${q.label.padEnd(24)} ${(100 * q.probability).toFixed(2)}%`).join('\n')}`).join('\n'),
          () => images.map((p, i) => ({ image: p, predictions: preds[i] })),
        );
      } finally {
        model.dispose();
      }
    });
}

/** `export` */
export function addExportCommand(program: Command, out: () => Output): void {
  program
    .command('export')
    .description('convert weights between .pth and .safetensors (PyTorch-readable), or to .onnx (onnxruntime), keeping arch and class names')
    .requiredOption('--model <file>', 'a file saved by torch-resnet-tl, or a torchvision state dict with --arch')
    .requiredOption('--to <file>', 'output .pth, .safetensors or .onnx')
    .addOption(archOption('arch of a plain torchvision state dict'))
    .option('--num-classes <n>', 'outputs of a plain state dict (default 1000)', int(1))
    .option('--opset <n>', `ONNX opset, 13–21 (default ${ONNX_DEFAULTS.opset})`, int(1))
    .option('--fixed-batch <n>', 'ONNX: a fixed batch size instead of a symbolic one', int(1))
    .action(async (o) => {
      const output = out();
      const onnx = /\.onnx$/i.test(o.to);
      if (!onnx && !/\.(pth|pt|safetensors)$/.test(o.to)) throw new InvalidOptionError('to', `Expected --to ending in .pth, .safetensors or .onnx but received ${o.to}`);
      if (!onnx && (o.opset !== undefined || o.fixedBatch !== undefined)) throw new InvalidOptionError('opset', '--opset and --fixed-batch apply to --to *.onnx');
      const model = o.arch ? await Model.create({ arch: o.arch, numClasses: o.numClasses ?? 1000, weights: o.model }) : await Model.load(o.model);
      try {
        if (onnx) await model.exportOnnx(o.to, { opset: o.opset, ...(o.fixedBatch !== undefined ? { dynamicBatch: false, batchSize: o.fixedBatch } : {}) });
        else await model.save(o.to);
        print(output, () => `wrote ${resolve(o.to)} (${model.arch}, ${model.numClasses} classes)`, () => ({ from: resolve(o.model), to: resolve(o.to), arch: model.arch, numClasses: model.numClasses, classes: model.classes ?? null }));
      } finally {
        model.dispose();
      }
    });
}

/** `info` */
export function addInfoCommand(program: Command, out: () => Output): void {
  program
    .command('info')
    .description('libtorch version and build, devices, threads, CPU features')
    .action(() => {
      const output = out();
      const v = version();
      const info = { version: require('../../../package.json').version as string, libtorch: v.libtorch, libtorchVariant: v.variant, cudaBuild: v.cuda, cudaAvailable: v.cudaAvailable, devices: devices(), threads: getNumThreads(), cores: cpus().length, cpu: v.cpu, napi: v.napi, node: process.version, archs: [...ARCHS], distributed: v.distributed };
      print(
        output,
        () =>
          table(['item', 'value'], [
            ['torch-resnet-tl', info.version],
            ['libtorch', `${info.libtorch} (${info.libtorchVariant}, ${info.cudaBuild ? 'CUDA' : 'CPU'} build)`],
            ['devices', info.devices.join(', ')],
            ['threads', `${info.threads} of ${info.cores} cores`],
            ['CPU BF16 / AVX-512', `${info.cpu.bf16} / ${info.cpu.avx512}`],
            ['data-parallel backends', info.distributed.length ? info.distributed.join(', ') : 'none (built without c10d)'],
            ['N-API / Node', `${info.napi} / ${info.node}`],
          ]),
        () => info,
      );
    });
}
