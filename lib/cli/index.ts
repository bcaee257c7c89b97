#!/usr/bin/env node
// The `torch-resnet-tl` command line: train, eval, predict, export, info, demo, experiment.
// Exit codes: 0 success, 1 unexpected failure, 2 bad arguments or options, 3 bad input (data, checkpoint, weights
// file), 4 device unavailable, 5 set-up needed (no libtorch / binary; `setup`, `doctor`), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM); after either the newest complete
// checkpoint generation is intact and metrics.json says interrupted.
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DataLoader, ImageFolder, LOADER_DEFAULTS } from '../data';
import { devices, getNumThreads, setNumThreads, version } from '../device';
import { InvalidOptionError, TorchResNetError } from '../errors';
import { ARCHS, Arch, HEAD_KINDS, Model, PRECISIONS } from '../model';
import { assess } from '../transfer';
import { ONNX_DEFAULTS } from '../onnx';
import { writeFileDurable } from '../durable';
import { ExperimentRow, renderExperimentReport } from '../report';
import { makeSyntheticDataset } from '../synthetic';
import { Schedule, validateSchedule } from '../schedule';
import { describeExit, launch, LAUNCH_DEFAULTS, LaunchOptions } from '../launch';
import { DOMAIN_ADAPTATION_METHODS, OPTIMIZERS, STRATEGIES, Trainer, TRAINER_DEFAULTS, TrainerOptions } from '../trainer';
import { Transform } from '../transform';
import { makeOutput, Output, table } from './progress';
import { addSetupCommands } from './setup';
import { DEFAULT_MAX_SKIPPED, evalTransform, RunConfig, splitConfig, trainRun } from './run';

const EXIT = { ok: 0, failure: 1, usage: 2, input: 3, device: 4, setup: 5, interrupted: 130, terminated: 143 } as const;

const int = (min: number) => (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`Expected an integer >= ${min}.`);
  return n;
};
const positive = (value: string): number => {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('Expected a positive number.');
  return n;
};
const nonNegative = (value: string): number => {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('Expected a number >= 0.');
  return n;
};
/** `type[:key=value,...]`, numbers as numbers, `a+b+c` as a list (multistep milestones); checked by validateSchedule. */
const scheduleArg = (value: string): Schedule => {
  const [type, params = ''] = value.split(':', 2);
  const spec: Record<string, unknown> = { type };
  for (const kv of params.split(',').filter(Boolean)) {
    const [k, raw] = kv.split('=', 2);
    if (!k || raw === undefined) throw new InvalidArgumentError(`Expected key=value in ${JSON.stringify(kv)}.`);
    const num = (x: string) => {
      const n = Number(x);
      if (!Number.isFinite(n)) throw new InvalidArgumentError(`${k}: expected a number, got ${JSON.stringify(x)}.`);
      return n;
    };
    spec[k] = raw.includes('+') || k === 'milestones' ? raw.split('+').map(num) : num(raw);
  }
  try {
    return validateSchedule(spec);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
};
const share = (value: string): number => {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError('Expected a number in 0..1.');
  return n;
};
const archList = (value: string): Arch[] => {
  const list = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const a of list) if (!ARCHS.includes(a as Arch)) throw new InvalidArgumentError(`Unknown arch ${JSON.stringify(a)}; choose from ${ARCHS.join(', ')}.`);
  if (!list.length) throw new InvalidArgumentError('Expected at least one arch.');
  return list as Arch[];
};
const EXP_STRATEGIES = ['scratch', 'feature-extract', 'partial', 'full'] as const;
const strategyList = (value: string): string[] => {
  const list = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const s of list) if (!(EXP_STRATEGIES as readonly string[]).includes(s)) throw new InvalidArgumentError(`Unknown strategy ${JSON.stringify(s)}; choose from ${EXP_STRATEGIES.join(', ')}.`);
  return list;
};
// commander turns a parser's null into '' (its "no value"): 'none' stays a string here and becomes null in weightsOf
const weightsArg = (value: string): string => value;
/** A --weights value as the library takes it: 'none' / 'null' mean random initialisation. */
const weightsOf = (w: string | null): string | null => (w === 'none' || w === 'null' || w === null ? null : w);

function exitCodeOf(e: unknown): number {
  const code = (e as { code?: string }).code;
  if (code === 'ERR_INVALID_OPTION') return EXIT.usage;
  if (code === 'ERR_DATASET' || code === 'ERR_CHECKPOINT' || code === 'ERR_WEIGHTS' || code === 'ENOENT') return EXIT.input;
  if (code === 'ERR_DEVICE') return EXIT.device;
  if (code === 'ERR_SETUP' || code === 'ERR_NATIVE_LOAD') return EXIT.setup;
  if (code === 'ERR_RANK_FAILED') return (e as { exitCode: number }).exitCode; // the failed rank's own code
  return EXIT.failure;
}

/** The signal that stopped the command (Ctrl-C = SIGINT, SIGTERM), if one did. */
let interruptedBy: 'SIGINT' | 'SIGTERM' | undefined;
const INTERRUPT_EXIT = { SIGINT: EXIT.interrupted, SIGTERM: EXIT.terminated } as const;

/**
 * Ends the process now with `code`, without waiting for native work in flight (a training step can take seconds):
 * every file is written atomically, so nothing half-written is left behind.
 */
function exitNow(code: number): never {
  process.stderr.write(`exiting now (${code})\n`);
  process.exit(code);
}

/**
 * Ctrl-C or SIGTERM stops training at the next step boundary: what is complete is kept (checkpoint generations,
 * metrics.json and report.html marked interrupted) and the command exits 130 (SIGINT) or 143 (SIGTERM). A second
 * signal exits at once with the same code; checkpoint files are written atomically, so the newest complete
 * generation stays intact.
 */
function interruptSignal(out: Output): AbortSignal {
  const ac = new AbortController();
  // the listeners stay for the life of the command: removing the last one would restore the default action (death
  // by signal, no exit code) for a moment
  const onSignal = (sig: 'SIGINT' | 'SIGTERM') => {
    if (interruptedBy) exitNow(INTERRUPT_EXIT[interruptedBy]);
    interruptedBy = sig;
    out.log(`interrupted (${sig}): stopping at the next step and keeping what is complete (${sig === 'SIGINT' ? 'Ctrl-C' : 'SIGTERM'} again to exit now)`);
    ac.abort();
  };
  process.on('SIGINT', () => onSignal('SIGINT')).on('SIGTERM', () => onSignal('SIGTERM'));
  return ac.signal;
}

function readConfig(path: string | undefined): { run: Partial<RunConfig>; trainer: TrainerOptions } {
  if (!path) return { run: {}, trainer: {} };
  let obj: unknown;
  try {
    obj = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new InvalidOptionError('config', `Cannot read --config ${path}: ${(e as Error).message}`);
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new InvalidOptionError('config', `--config ${path} must hold a JSON object`);
  return splitConfig(obj as Record<string, unknown>, path);
}

function print(out: Output, human: () => string, json: () => unknown): void {
  if (out.json) process.stdout.write(`${JSON.stringify(json(), null, 1)}\n`);
  else if (!out.quiet) process.stdout.write(`${human()}\n`);
}

const pct = (x: number | null | undefined) => (x === null || x === undefined ? '–' : `${(100 * x).toFixed(1)}%`);

function historyTable(r: Awaited<ReturnType<typeof trainRun>>): string {
  return table(
    ['epoch', 'loss', 'acc', 'val loss', 'val acc', 'lr', 'seconds'],
    r.summary.history.map((h) => [h.epoch + 1, h.loss.toFixed(4), pct(h.accuracy), h.valLoss?.toFixed(4) ?? '–', pct(h.valAccuracy), h.lr.head.toExponential(2), h.seconds.toFixed(1)]),
  );
}

/** What an interrupted run left: completed epochs, the weights file only when it exists, the report. */
function interruptedLine(r: Awaited<ReturnType<typeof trainRun>>): string {
  const n = r.summary.history.length;
  const weights = !r.bestWeights ? 'no epoch finished, so no weights were written' : r.bestWeights.endsWith('best.pth') ? `best weights so far: ${r.bestWeights}` : `weights of the newest complete checkpoint: ${r.bestWeights}`;
  return `interrupted after ${n} complete epoch${n === 1 ? '' : 's'}; ${weights}; report ${r.reportPath}`;
}

/** Finds `<arch>*.pth|.safetensors` in a folder of weight files (e.g. `squeezenet1_1-imagenet.pth`). */
function weightsInDir(dir: string, arch: string): string | undefined {
  if (!existsSync(dir)) throw new InvalidOptionError('weights-dir', `--weights-dir ${dir}: no such folder`);
  const f = readdirSync(dir)
    .filter((n) => (n.startsWith(`${arch}-`) || n.startsWith(`${arch}.`)) && /\.(pth|safetensors)$/.test(n))
    .sort()[0];
  return f ? join(dir, f) : undefined;
}

/** The Trainer options the common training flags set (flags not given are left out). */
function trainerFlags(o: Record<string, unknown>): TrainerOptions {
  const keys = ['epochs', 'lr', 'backboneLr', 'optimizer', 'precision', 'strategy', 'trainFrom', 'seed', 'weightDecay', 'labelSmoothing', 'schedule'] as const;
  const t: Record<string, unknown> = Object.fromEntries(keys.filter((k) => o[k] !== undefined).map((k) => [k, o[k]]));
  if (o.earlyStopping !== undefined) t.earlyStopping = { patience: o.earlyStopping };
  return t as TrainerOptions;
}

const D = TRAINER_DEFAULTS;
/** The CLI's own defaults (the library's come from TRAINER_DEFAULTS and LOADER_DEFAULTS). */
const C = { arch: 'resnet18' as Arch, weights: 'DEFAULT', imageSize: 224, batchSize: LOADER_DEFAULTS.batchSize, demoImageSize: 64, demoEpochs: 8, experimentEpochs: 5 };
function commonTrainOptions(cmd: Command): Command {
  return cmd
    .option('--epochs <n>', `epochs (default ${D.epochs})`, int(1))
    .option('--batch-size <n>', `batch size (default ${C.batchSize})`, int(1))
    .option('--lr <x>', `head learning rate (default ${D.lr})`, positive)
    .option('--backbone-lr <x>', `learning rate of trainable layers before the head (default lr × ${D.backboneLrFactor})`, positive)
    .addOption(new Option('--optimizer <name>', `optimizer (default ${D.optimizer})`).choices([...OPTIMIZERS]))
    .option('--weight-decay <x>', `L2 weight decay (decoupled for adamw; default ${D.weightDecay}; norm and bias parameters excluded)`, nonNegative)
    .option('--label-smoothing <x>', `label smoothing in [0, 1) (default ${D.labelSmoothing})`, nonNegative)
    .option('--schedule <spec>', "learning-rate schedule: constant (default) | step:stepSize=7,gamma=0.1 | multistep:milestones=5+8,gamma=0.1 | exponential:gamma=0.9 | cosine[:warmupEpochs=1,warmupStartFactor=0.01,minLr=1e-6] | onecycle[:pctStart=0.3] | plateau[:factor=0.1,patience=2]", scheduleArg)
    .option('--early-stopping <patience>', 'stop after this many epochs without improvement of the monitored metric and restore the best weights (default off)', int(1))
    .addOption(new Option('--precision <p>', "'auto' = bf16 autocast where the CPU has BF16; fp16 needs a CUDA device (default: the model's, auto)").choices([...PRECISIONS]))
    .option('--image-size <n>', `training crop size (default ${C.imageSize})`, int(16))
    .option('--workers <n>', 'data-loading threads (default: cores)', int(1))
    .option('--seed <n>', 'seed of initialisation, shuffling and augmentation (default 0)', int(0));
}

/** `train` */
function addTrainCommand(program: Command, out: () => Output): void {
  commonTrainOptions(
    program
      .command('train')
      .description('fine-tune a model on an image folder (train/ and val/, one sub-folder per class) and write a run directory')
      .option('--data <root>', 'folder with train/ (and val/), or with the class folders themselves')
      .option('--target-data <dir>', 'domain adaptation: target-domain images (class folders, or with train/); labels, when the classes match, only score the result')
      .addOption(new Option('--adapt <method>', 'domain adaptation method with --target-data (default dann)').choices([...DOMAIN_ADAPTATION_METHODS]))
      .addOption(new Option('--arch <name>', `architecture (default ${C.arch})`).choices(ARCHS as unknown as string[]))
      .option('--weights <w>', `IMAGENET1K_V1 | IMAGENET1K_V2 | DEFAULT | file | none (default ${C.weights})`, weightsArg)
      .addOption(
        new Option('--strategy <s>', "which layers train: feature-extract | partial | full | linear-probe (closed-form head on frozen features) | lp-ft (probe, then fine-tune) | auto (assess the data, choose, recover from collapse); default feature-extract with weights, else full").choices([...STRATEGIES]),
      )
      .option('--train-from <stage>', 'first trainable stage for --strategy partial or lp-ft (e.g. layer3)')
      .addOption(new Option('--head <kind>', "classifier head: torchvision (the arch's own, default) | linear (one Linear layer on the pooled features; what probes need)").choices([...HEAD_KINDS]))
      .option('--out <dir>', 'run directory (default runs/<time>)')
      .option('--resume <dir>', 'continue an interrupted run in its directory from its newest complete checkpoint')
      .option('--config <file>', 'JSON file with the TS option names (CLI flags override it)')
      .option('--nproc-per-node <n>', 'data-parallel: start this many ranks on this node (through `launch`; --batch-size is per rank)', int(1))
      .option('--nnodes <n>', `data-parallel: nodes in the job (default ${LAUNCH_DEFAULTS.nnodes})`, int(1))
      .option('--node-rank <r>', `data-parallel: this node's index (default ${LAUNCH_DEFAULTS.nodeRank})`, int(0))
      .option('--master-addr <addr>', `data-parallel: address of the rank-0 node (default ${LAUNCH_DEFAULTS.masterAddr})`)
      .option('--master-port <port>', `data-parallel: rendezvous port (default ${LAUNCH_DEFAULTS.masterPort})`, int(1))
      .option('--max-skipped <share>', `largest share (0..1) of a split's image files that may be undecodable; more fails with exit code 3 (default ${DEFAULT_MAX_SKIPPED})`, share),
  ).action(async (o) => {
    if (o.nprocPerNode !== undefined && !process.env.WORLD_SIZE) return relaunch(o);
    const rank = Number(process.env.RANK ?? 0);
    const output = rank === 0 ? out() : makeOutput(false, true); // ranks other than 0 train quietly
    const cfg = readConfig(o.config);
    const trainer: TrainerOptions = { ...cfg.trainer, ...trainerFlags(o) };
    if (o.earlyStopping !== undefined) trainer.earlyStopping = { ...cfg.trainer.earlyStopping, patience: o.earlyStopping };
    const data = o.data ?? cfg.run.data;
    if (!data) throw new InvalidOptionError('data', 'train needs --data <root with train/ and val/> (or "data" in --config)');
    if (o.resume !== undefined && o.out !== undefined && resolve(o.out) !== resolve(o.resume))
      throw new InvalidOptionError('resume', '--resume continues the run in its own directory; leave --out out');
    const run: RunConfig = {
      ...cfg.run,
      data,
      resume: o.resume !== undefined,
      out: o.resume ?? o.out ?? cfg.run.out ?? join('runs', new Date().toISOString().replace(/[:.]/g, '-')),
      arch: o.arch ?? cfg.run.arch ?? C.arch,
      head: o.head ?? cfg.run.head,
      targetData: o.targetData ?? cfg.run.targetData,
      adapt: o.adapt ?? cfg.run.adapt,
      weights: o.weights !== undefined ? weightsOf(o.weights) : cfg.run.weights !== undefined ? cfg.run.weights : C.weights,
      imageSize: o.imageSize ?? cfg.run.imageSize ?? C.imageSize,
      batchSize: o.batchSize ?? cfg.run.batchSize ?? C.batchSize,
      workers: o.workers ?? cfg.run.workers,
      maxSkipped: o.maxSkipped ?? cfg.run.maxSkipped,
      trainer,
    };
    const r = await trainRun(run, output, interruptSignal(output));
    if (r.rank) return; // rank 0 reports
    print(
      output,
      () =>
        r.summary.interrupted
          ? `${historyTable(r)}\n\n${interruptedLine(r)}`
          : `${historyTable(r)}\n\nval accuracy ${pct(r.summary.evaluation?.accuracy)}${r.summary.targetEvaluation ? `, target accuracy ${pct(r.summary.targetEvaluation.accuracy)}` : ''} (best weights ${r.bestWeights ?? 'none written'}); report ${r.reportPath}`,
      () => ({ ...r.summary, misclassified: r.summary.misclassified.map(({ thumbnail, ...m }) => m), reportPath: r.reportPath }),
    );
  });
}

/** `assess` */
function addAssessCommand(program: Command, out: () => Output): void {
  program
    .command('assess')
    .description('measure how well a pretrained backbone fits a labelled image folder (k-NN and linear-probe accuracy, LogME, BatchNorm shift, class counts) and recommend a strategy')
    .requiredOption('--data <dir>', 'folder with train/ (or one sub-folder per class)')
    .addOption(new Option('--arch <name>', `architecture (default ${C.arch})`).choices(ARCHS as unknown as string[]))
    .option('--weights <w>', `IMAGENET1K_V1 | IMAGENET1K_V2 | DEFAULT | file (default ${C.weights})`, weightsArg)
    .option('--image-size <n>', `centre-crop size (default ${C.imageSize})`, int(16))
    .option('--batch-size <n>', `batch size (default ${C.batchSize})`, int(1))
    .action(async (o) => {
      const output = out();
      const dir = existsSync(join(o.data, 'train')) ? join(o.data, 'train') : o.data;
      const ds = await ImageFolder.open(dir, { transform: evalTransform(o.imageSize ?? C.imageSize), onError: 'skip' });
      const weights = o.weights === undefined ? C.weights : weightsOf(o.weights);
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
function addEvalCommand(program: Command, out: () => Output): void {
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
function addPredictCommand(program: Command, out: () => Output): void {
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
function addExportCommand(program: Command, out: () => Output): void {
  program
    .command('export')
    .description('convert weights between .pth and .safetensors (PyTorch-readable), or to .onnx (onnxruntime), keeping arch and class names')
    .requiredOption('--model <file>', 'a file saved by torch-resnet-tl, or a torchvision state dict with --arch')
    .requiredOption('--to <file>', 'output .pth, .safetensors or .onnx')
    .addOption(new Option('--arch <name>', 'arch of a plain torchvision state dict').choices(ARCHS as unknown as string[]))
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
function addInfoCommand(program: Command, out: () => Output): void {
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

/** `demo` */
function addDemoCommand(program: Command, out: () => Output): void {
  program
    .command('demo')
    .description('offline demo: a synthetic shapes dataset (unless --data), training, a final table and report.html')
    .option('--data <root>', 'use this folder (train/ and val/) instead of the synthetic dataset')
    .addOption(new Option('--arch <name>', `architecture (default ${C.arch})`).choices(ARCHS as unknown as string[]))
    .option('--weights <w>', `weights (default ${C.weights}: cached, else downloaded, else random init with a notice)`, weightsArg)
    .option('--epochs <n>', `epochs (default ${C.demoEpochs})`, int(1))
    .option('--image-size <n>', `image size (default ${C.demoImageSize} for the synthetic data, else ${C.imageSize})`, int(16))
    .option('--out <dir>', 'run directory (default <tmp>/torch-resnet-tl-demo)')
    .action(async (o) => {
      const output = out();
      const v = version();
      output.log(`torch-resnet-tl demo — libtorch ${v.libtorch}, ${v.cuda ? 'CUDA' : 'CPU'} build, ${getNumThreads()} threads, BF16 ${v.cpu.bf16}`);
      const outDir = resolve(o.out ?? join(tmpdir(), 'torch-resnet-tl-demo'));
      let data = o.data as string | undefined;
      if (!data) {
        data = join(outDir, 'data');
        const t0 = performance.now();
        const classes = await makeSyntheticDataset(data, { classes: 4, trainPerClass: 300, valPerClass: 40, size: 64 });
        output.log(`synthetic dataset: ${classes.join(', ')} — 300 training + 40 validation images each, 64×64, in ${data} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
      }
      const r = await trainRun(
        {
          data,
          out: join(outDir, 'run'),
          arch: o.arch ?? C.arch,
          weights: o.weights !== undefined ? weightsOf(o.weights) : C.weights,
          weightsFallback: o.weights === undefined,
          imageSize: o.imageSize ?? (o.data ? C.imageSize : C.demoImageSize),
          batchSize: C.batchSize,
          // shapes must stay in view: milder crops than the ImageNet preset's scale (0.08, 1)
          trainTransform: o.data
            ? undefined
            : Transform.compose(Transform.randomResizedCrop(o.imageSize ?? 64, { scale: [0.8, 1] }), Transform.randomHorizontalFlip(), Transform.toTensor(), Transform.normalize()),
          valTransform: o.data ? undefined : Transform.compose(Transform.resize(o.imageSize ?? 64), Transform.toTensor(), Transform.normalize()),
          trainer: { strategy: 'full', epochs: o.epochs ?? C.demoEpochs, lr: 3e-3, schedule: { type: 'cosine' }, seed: 0 },
          title: 'torch-resnet-tl demo',
        },
        output,
        interruptSignal(output),
      );
      print(
        output,
        () =>
          r.summary.interrupted
            ? `\n${historyTable(r)}\n\n${interruptedLine(r)}`
            : `\n${historyTable(r)}\n\nvalidation accuracy ${pct(r.summary.evaluation?.accuracy)} in ${r.summary.seconds.toFixed(1)} s\nbest weights: ${r.bestWeights ?? 'none written'}\nreport: ${r.reportPath}`,
        () => ({ accuracy: r.summary.evaluation?.accuracy, seconds: r.summary.seconds, history: r.summary.history, bestWeights: r.bestWeights, reportPath: r.reportPath }),
      );
    });
}

/** `experiment` */
function addExperimentCommand(program: Command, out: () => Output): void {
  commonTrainOptions(
    program
      .command('experiment')
      .description('for each arch: from scratch, feature extraction, partial and full fine-tuning; a table of val accuracy and time + report.html')
      .requiredOption('--data <root>', 'folder with train/ and val/')
      .requiredOption('--archs <list>', 'comma-separated archs, e.g. squeezenet1_1,resnet18', archList)
      .option('--strategies <list>', `subset of ${EXP_STRATEGIES.join(',')} (default all)`, strategyList)
      .option('--weights <w>', `pretrained weights for the transfer strategies (default ${C.weights})`, weightsArg)
      .option('--weights-dir <dir>', 'a folder of weight files named <arch>-*.pth|.safetensors, tried before --weights')
      .option('--out <dir>', 'experiment directory (default runs/experiment-<time>)'),
  ).action(async (o) => {
    const output = out();
    const signal = interruptSignal(output);
    const outDir = resolve(o.out ?? join('runs', `experiment-${new Date().toISOString().replace(/[:.]/g, '-')}`));
    const strategies: string[] = o.strategies ?? [...EXP_STRATEGIES];
    const rows: ExperimentRow[] = [];
    const epochs = o.epochs ?? C.experimentEpochs;
    for (const arch of o.archs as Arch[]) {
      const pretrained = (o.weightsDir ? weightsInDir(o.weightsDir, arch) : undefined) ?? (o.weights !== undefined ? weightsOf(o.weights) : C.weights);
      for (const strategy of strategies) {
        if (signal.aborted) break;
        const weights = strategy === 'scratch' ? null : pretrained;
        const runDir = join(outDir, `${arch}-${strategy}`);
        const label = `[${arch} ${strategy}] `;
        if (weights === null && strategy !== 'scratch') {
          rows.push({ arch, strategy, weights: null, valAccuracy: null, bestEpoch: null, seconds: 0, epochs: 0, runDir, note: 'no weights given' });
          continue;
        }
        try {
          const r = await trainRun(
            {
              data: o.data,
              out: runDir,
              arch,
              weights,
              imageSize: o.imageSize ?? C.imageSize,
              batchSize: o.batchSize ?? C.batchSize,
              workers: o.workers,
              trainer: { ...trainerFlags(o), strategy: strategy === 'scratch' ? 'full' : (strategy as TrainerOptions['strategy']), epochs, seed: o.seed ?? 0 },
              title: `${arch} · ${strategy}`,
            },
            output,
            signal,
            label,
          );
          rows.push({ arch, strategy, weights: r.summary.weights, valAccuracy: r.summary.evaluation?.accuracy ?? null, bestEpoch: r.summary.best?.epoch ?? null, seconds: r.summary.seconds, epochs: r.summary.history.length, runDir: `${arch}-${strategy}` });
        } catch (e) {
          if ((e as { code?: string }).code !== 'ERR_WEIGHTS') throw e;
          output.log(`${label}skipped: ${(e as Error).message}`);
          rows.push({ arch, strategy, weights: String(weights), valAccuracy: null, bestEpoch: null, seconds: 0, epochs: 0, runDir, note: `weights unavailable: ${(e as Error).message}` });
        }
      }
    }
    const v = version();
    const info = `${o.data} · ${epochs} epochs each · libtorch ${v.libtorch}, ${getNumThreads()} threads · ${new Date().toISOString()}`;
    const reportPath = join(outDir, 'report.html');
    await writeFileDurable(reportPath, renderExperimentReport('torch-resnet-tl experiment', rows, info));
    await writeFileDurable(join(outDir, 'metrics.json'), JSON.stringify({ info, rows }, null, 1));
    print(
      output,
      () =>
        `\n${table(['arch', 'strategy', 'val acc', 'best epoch', 'time (s)'], rows.map((r) => [r.arch, r.strategy, r.note ? 'n/a' : pct(r.valAccuracy), r.bestEpoch === null ? '–' : r.bestEpoch + 1, r.note ? '–' : r.seconds.toFixed(1)]))}\n` +
        [...new Set(rows.filter((r) => r.note).map((r) => `n/a ${r.arch}: ${r.note}`))].join('\n') +
        `\nreport: ${reportPath}`,
      () => ({ rows, reportPath }),
    );
  });
}

/** `train --nproc-per-node N`: the same command in N ranks through `launch` (the ranks see WORLD_SIZE and train data-parallel). */
async function relaunch(o: Record<string, unknown>): Promise<void> {
  const flags = ['--nproc-per-node', '--nnodes', '--node-rank', '--master-addr', '--master-port'];
  const argv = process.argv.slice(2);
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const [flag] = argv[i].split('=');
    if (flags.includes(flag)) {
      if (!argv[i].includes('=')) i++; // its value
      continue;
    }
    args.push(argv[i]);
  }
  await runRanks({ nprocPerNode: o.nprocPerNode as number, nnodes: o.nnodes as number | undefined, nodeRank: o.nodeRank as number | undefined, masterAddr: o.masterAddr as string | undefined, masterPort: o.masterPort as number | undefined, script: process.argv[1], args });
}

/** Runs the ranks; a failed rank is an error naming it, with its exit code as the CLI's. */
async function runRanks(options: LaunchOptions): Promise<void> {
  const r = await launch(options);
  if (r.ok) return;
  const why = r.failed ? `${describeExit(r.failed)}; the other ranks were stopped` : 'a rank failed';
  throw Object.assign(new Error(why), { code: 'ERR_RANK_FAILED', exitCode: r.failed?.code || EXIT.failure });
}

/** `launch` */
function addLaunchCommand(program: Command, out: () => Output): void {
  program
    .command('launch')
    .description("start the ranks of a data-parallel job on this node, as torchrun: RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT set per process; signals forwarded; one failing rank stops the others")
    .requiredOption('--nproc-per-node <n>', 'processes on this node', int(1))
    .option('--nnodes <n>', `nodes in the job (default ${LAUNCH_DEFAULTS.nnodes})`, int(1))
    .option('--node-rank <r>', `this node's index (default ${LAUNCH_DEFAULTS.nodeRank})`, int(0))
    .option('--master-addr <addr>', `address of the rank-0 node (default ${LAUNCH_DEFAULTS.masterAddr}; required with --nnodes > 1)`)
    .option('--master-port <port>', `rendezvous port on the rank-0 node (default ${LAUNCH_DEFAULTS.masterPort})`, int(1))
    .argument('<script>', 'the script every rank runs')
    .argument('[args...]', "the script's arguments (its options included: everything after the script is the script's)")
    .action(async (script: string, args: string[], o) => {
      await runRanks({ nprocPerNode: o.nprocPerNode, nnodes: o.nnodes, nodeRank: o.nodeRank, masterAddr: o.masterAddr, masterPort: o.masterPort, script, args });
    });
}

export function buildProgram(): Command {
  const program = new Command('torch-resnet-tl')
    .description('ResNet transfer learning on libtorch, from the command line')
    .version(require('../../../package.json').version as string)
    .option('--json', 'machine-readable output on stdout (progress lines go to stderr)')
    .option('--quiet', 'no progress output')
    .option('--threads <n>', 'intra-op threads (default: all cores)', int(1))
    .showSuggestionAfterError(true)
    .exitOverride();

  const out = () => makeOutput(!!program.opts().json, !!program.opts().quiet);
  program.hook('preAction', () => {
    const t = program.opts().threads as number | undefined;
    if (t) setNumThreads(t);
  });

  addTrainCommand(program, out);
  addEvalCommand(program, out);
  addAssessCommand(program, out);
  addPredictCommand(program, out);
  addExportCommand(program, out);
  addInfoCommand(program, out);
  addDemoCommand(program, out);
  addExperimentCommand(program, out);
  addLaunchCommand(program, out);
  addSetupCommands(program, out);

  // One-line error + the command's usage for bad arguments.
  const configure = (cmd: Command) => {
    cmd.exitOverride().configureOutput({
      outputError: (str, write) => write(`${str.trim()}\nUsage: ${cmd.parent ? `${cmd.parent.name()} ` : ''}${cmd.name()} ${cmd.usage()}\n`),
    });
    cmd.commands.forEach(configure);
  };
  configure(program);
  return program;
}

/**
 * `launch … script args`: as torchrun, everything from the script on belongs to the script, its options too; a `--`
 * before the script tells the parser so.
 */
function launchArgv(argv: string[]): string[] {
  const at = argv.indexOf('launch', 2);
  if (at < 0 || argv.slice(2, at).some((a) => !a.startsWith('-') && !/^\d+$/.test(a))) return argv;
  const valued = new Set(['--nproc-per-node', '--nnodes', '--node-rank', '--master-addr', '--master-port']);
  for (let i = at + 1; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') return argv;
    if (!a.startsWith('-')) return [...argv.slice(0, i), '--', ...argv.slice(i)];
    if (valued.has(a)) i++;
  }
  return argv;
}

export async function main(argv = process.argv): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(launchArgv(argv));
    return interruptedBy ? INTERRUPT_EXIT[interruptedBy] : EXIT.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and version exit 0; parse errors were already printed with the usage
      return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const json = !!program.opts().json;
    const msg = e instanceof TorchResNetError || (e as { code?: string }).code ? `error: ${(e as Error).message}` : `error: ${(e as Error)?.stack ?? String(e)}`;
    process.stderr.write(`${msg}\n`);
    const code = exitCodeOf(e);
    if (code === EXIT.usage) {
      const sub = program.commands.find((c) => c.name() === argv[2 + argv.slice(2).findIndex((a) => !a.startsWith('-'))]);
      process.stderr.write(`Usage: ${program.name()} ${sub ? `${sub.name()} ${sub.usage()}` : program.usage()}\n`);
    }
    if (json) process.stdout.write(`${JSON.stringify({ error: { code: (e as { code?: string }).code ?? 'ERR_UNKNOWN', message: (e as Error).message } })}\n`);
    return code;
  }
}

if (require.main === module) {
  main().then((code) => {
    process.exitCode = code;
  });
}
