#!/usr/bin/env node
// The `torch-resnet-tl` command line: train, eval, predict, export, info, demo, experiment, launch, serve, setup, doctor.
// Exit codes: 0 success, 1 unexpected failure, 2 bad arguments or options, 3 bad input (data, checkpoint, weights
// file), 4 device unavailable, 5 set-up needed (no libtorch / binary; `setup`, `doctor`), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM); after either the newest complete
// checkpoint generation is intact and metrics.json says interrupted.
import { Command, CommanderError } from 'commander';
import { setNumThreads } from '../device';
import { TorchResNetError } from '../errors';
import { makeOutput } from './progress';
import { addSetupCommands } from './setup';
import { EXIT, exitCodeOf, int, interruptedExit } from './common';
import { addAssessCommand, addEvalCommand, addExportCommand, addInfoCommand, addPredictCommand } from './model';
import { addDemoCommand, addExperimentCommand, addLaunchCommand, addTrainCommand } from './train';
import { addServeCommand } from './serve';
import { addTuneCommand } from './tune';

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
  addTuneCommand(program, out);
  addLaunchCommand(program, out);
  addServeCommand(program, out);
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
    return interruptedExit() ?? EXIT.ok;
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
