// The commands that train: train (and its data-parallel relaunch), demo, experiment, launch.
import { Command, Option } from 'commander';
import { existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { getNumThreads, version } from '../device';
import { InvalidOptionError } from '../errors';
import { Arch, HEAD_KINDS, PRECISIONS } from '../model';
import { writeFileDurable } from '../durable';
import { ExperimentRow, renderExperimentReport } from '../report';
import { makeSyntheticDataset } from '../synthetic';
import { describeExit, launch, LAUNCH_DEFAULTS, LaunchOptions } from '../launch';
import { DOMAIN_ADAPTATION_METHODS, OPTIMIZERS, STRATEGIES, TRAINER_DEFAULTS, TrainerOptions } from '../trainer';
import { Transform } from '../transform';
import { makeOutput, Output, table } from './progress';
import { DEFAULT_MAX_SKIPPED, RunConfig, trainRun } from './run';
import { archList, archOption, C, candidatesArg, EXIT, EXP_STRATEGIES, int, interruptSignal, nonNegative, pct, positive, print, readConfig, scheduleArg, share, strategyList, weightsArg, weightsOf, withDefaultWeights } from './common';


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
export function addTrainCommand(program: Command, out: () => Output): void {
  commonTrainOptions(
    program
      .command('train')
      .description('fine-tune a model on an image folder (train/ and val/, one sub-folder per class) and write a run directory')
      .option('--data <root>', 'folder with train/ (and val/), or with the class folders themselves')
      .option('--target-data <dir>', 'domain adaptation: target-domain images (class folders, or with train/); labels, when the classes match, only score the result')
      .addOption(new Option('--adapt <method>', 'domain adaptation method with --target-data (default dann)').choices([...DOMAIN_ADAPTATION_METHODS]))
      .addOption(archOption())
      .option('--weights <w>', `IMAGENET1K_V1 | IMAGENET1K_V2 | DEFAULT | file | none (default ${C.weights})`, weightsArg)
      .addOption(
        new Option('--strategy <s>', "which layers train: feature-extract | partial | full | linear-probe (closed-form head on frozen features) | lp-ft (probe, then fine-tune) | auto (assess the data, choose, recover from collapse); default feature-extract with weights, else full").choices([...STRATEGIES]),
      )
      .option('--train-from <stage>', 'first trainable stage for --strategy partial or lp-ft (e.g. layer3)')
      .option('--candidates <list>', 'choose the source model first: rank arch[:weights],… on the training images (as `assess --candidates`) and train the best (replaces --arch; weights: a file, IMAGENET1K_V1…, none; default --weights)', candidatesArg)
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
      ...(o.candidates ? { candidates: withDefaultWeights(o.candidates, o.weights !== undefined ? weightsOf(o.weights) : cfg.run.weights !== undefined ? cfg.run.weights : C.weights) } : {}),
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

/** `demo` */
export function addDemoCommand(program: Command, out: () => Output): void {
  program
    .command('demo')
    .description('offline demo: a synthetic shapes dataset (unless --data), training, a final table and report.html')
    .option('--data <root>', 'use this folder (train/ and val/) instead of the synthetic dataset')
    .addOption(archOption())
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
export function addExperimentCommand(program: Command, out: () => Output): void {
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
export function addLaunchCommand(program: Command, out: () => Output): void {
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
