// `tune`: hyperparameter search by successive halving on an image folder (lib/tune.ts), resumable in its --out.
import { Command, Option } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImageFolder } from '../data';
import { InvalidOptionError } from '../errors';
import { ARCHS } from '../model';
import { Transform } from '../transform';
import { tune, TUNE_DEFAULTS, TuneSpace } from '../tune';
import { C, int, interruptSignal, pct, print, weightsArg, weightsOf } from './common';
import { Output, table } from './progress';
import { evalTransform } from './run';

export function addTuneCommand(program: Command, out: () => Output): void {
  program
    .command('tune')
    .description('search lr, backbone lr, weight decay, trainFrom, label smoothing and MixUp by successive halving; resumable (run it again with the same --out); the best weights go to <out>/best.pth')
    .requiredOption('--data <root>', 'folder with train/ and val/')
    .requiredOption('--out <dir>', 'the search directory (journal tune.json, best.pth, metrics.json, report.html)')
    .addOption(new Option('--arch <name>', `architecture (default ${C.arch})`).choices([...ARCHS]))
    .option('--weights <w>', `initial weights of every trial (default ${C.weights})`, weightsArg)
    .option('--trials <n>', `configurations in the first rung (default ${TUNE_DEFAULTS.trials})`, int(1))
    .option('--eta <n>', `keep 1/eta of the trials per rung, eta× the epochs (default ${TUNE_DEFAULTS.eta})`, int(2))
    .option('--max-epochs <n>', `epochs of the last rung (default ${TUNE_DEFAULTS.maxEpochs})`, int(1))
    .option('--rungs <n>', 'rungs (default: as many as --trials and --max-epochs allow, at most 3)', int(1))
    .option('--seed <n>', `draws the configurations, seeds every fit (default ${TUNE_DEFAULTS.seed})`, int(0))
    .option('--space <json>', 'dimensions replacing the defaults, as JSON or a JSON file: {"lr": {"log": [1e-4, 1e-2]}, "trainFrom": {"choices": [null, "layer4"]}, …}')
    .option('--image-size <n>', `training crop (default ${C.imageSize})`, int(16))
    .option('--batch-size <n>', `batch size (default ${C.batchSize})`, int(1))
    .action(async (o) => {
      const output = out();
      const trainDir = join(o.data, 'train');
      const valDir = join(o.data, 'val');
      if (!existsSync(trainDir) || !existsSync(valDir)) throw new InvalidOptionError('data', `--data ${o.data}: tune needs train/ and val/ folders`);
      const size = o.imageSize ?? C.imageSize;
      const train = await ImageFolder.open(trainDir, { transform: Transform.imagenetTrain(size), onError: 'skip' });
      const val = await ImageFolder.open(valDir, { transform: evalTransform(size), onError: 'skip' });
      let space: Partial<TuneSpace> | undefined;
      if (o.space !== undefined) {
        const text = existsSync(o.space) ? readFileSync(o.space, 'utf8') : o.space;
        try {
          space = JSON.parse(text);
        } catch (e) {
          throw new InvalidOptionError('space', `--space is neither JSON nor a JSON file: ${(e as Error).message}`);
        }
      }
      const signal = interruptSignal(output);
      const weights = o.weights === undefined ? C.weights : weightsOf(o.weights);
      try {
        const r = await tune({
          model: { arch: o.arch ?? C.arch, weights },
          train,
          val,
          dir: o.out,
          ...(space ? { space } : {}),
          ...(o.trials !== undefined ? { trials: o.trials } : {}),
          ...(o.eta !== undefined ? { eta: o.eta } : {}),
          ...(o.maxEpochs !== undefined ? { maxEpochs: o.maxEpochs } : {}),
          ...(o.rungs !== undefined ? { rungs: o.rungs } : {}),
          ...(o.seed !== undefined ? { seed: o.seed } : {}),
          batchSize: o.batchSize ?? C.batchSize,
          signal,
          onTrial: (t) => output.log(`rung ${t.rung + 1} trial ${t.trial} (${t.epochs} epoch${t.epochs === 1 ? '' : 's'}): val acc ${pct(t.valAccuracy)}, loss ${t.valLoss.toFixed(4)}, ${t.seconds.toFixed(1)} s`),
        });
        const fmt = (x: unknown) => (typeof x === 'number' ? x.toPrecision(3) : x === null ? 'head only' : String(x));
        const last = r.results.filter((x) => x.rung === r.best.rung).sort((a, b) => b.valAccuracy - a.valAccuracy || a.valLoss - b.valLoss);
        print(
          output,
          () =>
            `${r.results.length} fits, ${r.epochs} epochs, ${r.seconds.toFixed(1)} s${r.resumedFits ? ` (${r.resumedFits} fits from the journal)` : ''}\n\n` +
            table(['trial', 'epochs', 'lr', 'backbone lr', 'weight decay', 'train from', 'smoothing', 'mixup', 'val acc', 'val loss'], last.map((x) => [x.trial, x.epochs, fmt(x.config.lr), fmt(x.config.backboneLr), fmt(x.config.weightDecay), fmt(x.config.trainFrom), fmt(x.config.labelSmoothing), fmt(x.config.mixup), pct(x.valAccuracy), x.valLoss.toFixed(4)])) +
            `\n\nbest: trial ${r.best.trial}, val acc ${pct(r.best.valAccuracy)}; weights ${r.weights}; report ${join(o.out, 'report.html')}`,
          () => r,
        );
      } catch (e) {
        // Ctrl-C / SIGTERM: the journal holds every finished fit; the exit code says interrupted
        if (signal.aborted) return void output.log(`interrupted: the finished fits are in ${join(o.out, 'tune.json')}; run the same command again to resume`);
        throw e;
      }
    });
}
