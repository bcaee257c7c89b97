// What every command shares: exit codes, argument parsers, the CLI's own defaults, output, config files, Ctrl-C.
import { InvalidArgumentError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { LOADER_DEFAULTS } from '../data';
import { InvalidOptionError } from '../errors';
import { ARCHS, Arch } from '../model';
import { exitProcessNow } from '../native';
import { Schedule, validateSchedule } from '../schedule';
import { TrainerOptions } from '../trainer';
import type { Candidate } from '../candidates';
import { Output } from './progress';
import { RunConfig, splitConfig } from './run';

export const EXIT = { ok: 0, failure: 1, usage: 2, input: 3, device: 4, setup: 5, interrupted: 130, terminated: 143 } as const;

export const int = (min: number) => (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`Expected an integer >= ${min}.`);
  return n;
};
export const positive = (value: string): number => {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('Expected a positive number.');
  return n;
};
export const nonNegative = (value: string): number => {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('Expected a number >= 0.');
  return n;
};
/** `type[:key=value,...]`, numbers as numbers, `a+b+c` as a list (multistep milestones); checked by validateSchedule. */
export const scheduleArg = (value: string): Schedule => {
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
export const share = (value: string): number => {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError('Expected a number in 0..1.');
  return n;
};
export const archList = (value: string): Arch[] => {
  const list = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const a of list) if (!ARCHS.includes(a as Arch)) throw new InvalidArgumentError(`Unknown arch ${JSON.stringify(a)}; choose from ${ARCHS.join(', ')}.`);
  if (!list.length) throw new InvalidArgumentError('Expected at least one arch.');
  return list as Arch[];
};
export const EXP_STRATEGIES = ['scratch', 'feature-extract', 'partial', 'full'] as const;
export const strategyList = (value: string): string[] => {
  const list = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const s of list) if (!(EXP_STRATEGIES as readonly string[]).includes(s)) throw new InvalidArgumentError(`Unknown strategy ${JSON.stringify(s)}; choose from ${EXP_STRATEGIES.join(', ')}.`);
  return list;
};
// commander turns a parser's null into '' (its "no value"): 'none' stays a string here and becomes null in weightsOf
export const weightsArg = (value: string): string => value;
/** A --weights value as the library takes it: 'none' / 'null' mean random initialisation. */
export const weightsOf = (w: string | null): string | null => (w === 'none' || w === 'null' || w === null ? null : w);

/**
 * A --candidates value: `arch[:weights],…`; weights `none` means random initialisation, no weights the command's
 * default (`withDefaultWeights`). Parsed here; checked and named by the library.
 */
export const candidatesArg = (value: string): { arch: string; weights?: string | null }[] =>
  value.split(',').map((item) => {
    const s = item.trim();
    const i = s.indexOf(':');
    return i < 0 ? { arch: s } : { arch: s.slice(0, i), weights: weightsOf(s.slice(i + 1)) };
  });

/** Candidates without weights get the command's. */
export const withDefaultWeights = (list: { arch: string; weights?: string | null }[], weights: string | null): Candidate[] =>
  list.map((c) => ({ ...c, weights: c.weights === undefined ? weights : c.weights }) as Candidate);

export function exitCodeOf(e: unknown): number {
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
  exitProcessNow(code);
}

/**
 * Ctrl-C or SIGTERM stops training at the next step boundary: what is complete is kept (checkpoint generations,
 * metrics.json and report.html marked interrupted) and the command exits 130 (SIGINT) or 143 (SIGTERM). A second
 * signal exits at once with the same code; checkpoint files are written atomically, so the newest complete
 * generation stays intact.
 */
export function interruptSignal(out: Output): AbortSignal {
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

export function readConfig(path: string | undefined): { run: Partial<RunConfig>; trainer: TrainerOptions } {
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

export function print(out: Output, human: () => string, json: () => unknown): void {
  if (out.json) process.stdout.write(`${JSON.stringify(json(), null, 1)}\n`);
  else if (!out.quiet) process.stdout.write(`${human()}\n`);
}

export const pct = (x: number | null | undefined) => (x === null || x === undefined ? '–' : `${(100 * x).toFixed(1)}%`);

/** The CLI's own defaults (the library's come from TRAINER_DEFAULTS and LOADER_DEFAULTS). */
export const C = { arch: 'resnet18' as Arch, weights: 'DEFAULT', imageSize: 224, batchSize: LOADER_DEFAULTS.batchSize, demoImageSize: 64, demoEpochs: 8, experimentEpochs: 5 };

/** The exit code of the signal that interrupted the command, if one did. */
export function interruptedExit(): number | undefined {
  return interruptedBy ? INTERRUPT_EXIT[interruptedBy] : undefined;
}

/** `--arch <name>`, one of ARCHS. */
export const archOption = (help = `architecture (default ${C.arch})`): Option => new Option('--arch <name>', help).choices([...ARCHS]);
