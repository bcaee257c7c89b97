// One training run as the CLI (train, experiment, demo) performs it: ImageFolder train/ + val/, model with the
// requested weights, Trainer with checkpoints in the run directory, evaluation of the best weights, report.
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DataLoader, ImageFolder, needTwoClasses } from '../data';
import { manualSeed, version, getNumThreads } from '../device';
import { DatasetError, InvalidOptionError } from '../errors';
import { latestGeneration } from '../durable';
import { thumbnailJpeg } from '../image';
import { ARCHS, Arch, HeadKind, Model } from '../model';
import { RunSummary, SkipSummary, writeRunReport } from '../report';
import { rankDevice, resolveDistributed } from '../distributed';
import { DOMAIN_ADAPTATION_METHODS, DomainAdaptationMethod, Trainer, TRAINER_OPTION_KEYS, TrainerOptions } from '../trainer';
import type { EvalReport } from '../metrics';
import { Transform } from '../transform';
import * as v from '../validate';
import { attachProgress, Output, rankingTable } from './progress';
import { Candidate, CandidateRanking, chooseModel } from '../candidates';

/** Keys a `--config` file may hold besides the Trainer's options. */
export const RUN_KEYS = ['data', 'targetData', 'adapt', 'out', 'arch', 'candidates', 'weights', 'head', 'dropout', 'channelsLast', 'device', 'imageSize', 'batchSize', 'workers', 'cache', 'mixup', 'cutmix', 'maxSkipped'] as const;

/** Default share of a split's image files that may be undecodable before a run fails (exit code 3). */
export const DEFAULT_MAX_SKIPPED = 0.05;
/** The Trainer's options a config may hold: all but runtime objects and what the run directory decides. */
export const TRAINER_KEYS = TRAINER_OPTION_KEYS.filter((k) => k !== 'signal' && k !== 'checkpointDir' && k !== 'resumeFrom');

export interface RunConfig {
  data: string;
  /** Unlabelled (or labelled) target-domain images for domain adaptation: a folder of class folders, or with train/. */
  targetData?: string;
  /** Domain adaptation method with targetData. Default 'dann'. */
  adapt?: DomainAdaptationMethod;
  out: string;
  arch: Arch;
  /** Source models to rank on the training images (centre crops) before training: the best replaces `arch`/`weights`. */
  candidates?: Candidate[];
  /** WeightsName, file path, or null (random initialisation). */
  weights: string | null;
  /** Demo behaviour: when the weights cannot be had, train from random initialisation with a notice. */
  weightsFallback?: boolean;
  /** See ModelOptions.head. */
  head?: HeadKind;
  dropout?: number;
  channelsLast?: boolean;
  device?: string;
  imageSize: number;
  batchSize: number;
  workers?: number;
  cache?: boolean | number;
  mixup?: { alpha: number; p?: number };
  cutmix?: { alpha: number; p?: number };
  /** Largest share (0..1) of a split's files that may be undecodable; more fails the run. Default 0.05. */
  maxSkipped?: number;
  /** Continue the run in `out` from its newest complete checkpoint generation. */
  resume?: boolean;
  trainer: TrainerOptions;
  /** Default `Transform.imagenetTrain(imageSize)`. */
  trainTransform?: Transform;
  /** Default `evalTransform(imageSize)`. */
  valTransform?: Transform;
  title?: string;
  maxThumbnails?: number;
  offline?: boolean;
}

export interface RunResult {
  summary: RunSummary;
  reportPath: string;
  /** The weights file the run ended with (best.pth, else the newest checkpoint generation's); undefined when none was written. */
  bestWeights?: string;
  /** Data-parallel ranks other than 0 train only: rank 0 evaluates and writes the run directory. */
  rank?: number;
}

/** Splits a config object (TS option names) into run and trainer options; unknown keys are errors. */
export function splitConfig(obj: Record<string, unknown>, where: string): { run: Partial<RunConfig>; trainer: TrainerOptions } {
  const run: Record<string, unknown> = {};
  const trainer: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(obj)) {
    if ((RUN_KEYS as readonly string[]).includes(k)) run[k] = val;
    else if ((TRAINER_KEYS as readonly string[]).includes(k)) trainer[k] = val;
    else throw new InvalidOptionError(k, `Unknown option ${JSON.stringify(k)} in ${where}; known: ${[...RUN_KEYS, ...TRAINER_KEYS].join(', ')}`);
  }
  return { run: run as Partial<RunConfig>, trainer: trainer as TrainerOptions };
}

function dataRoots(data: string): { train: string; val?: string } {
  const root = resolve(data);
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new DatasetError(`${root}: data directory not found`);
  const train = join(root, 'train');
  // without train/ the folder itself holds the class folders (no validation split)
  if (!existsSync(train)) return { train: root };
  const val = join(root, 'val');
  return { train, val: existsSync(val) ? val : undefined };
}

/** Eval transform matching a training size: resize to size·256/224, centre crop. */
export function evalTransform(size: number): Transform {
  return Transform.imagenetEval(size, Math.round((size * 256) / 224));
}

async function createModel(cfg: RunConfig, classes: string[], out: Output, label: string): Promise<Model> {
  const base = { arch: cfg.arch, classes, head: cfg.head, dropout: cfg.dropout, channelsLast: cfg.channelsLast, device: rankDevice(cfg.device), precision: cfg.trainer.precision, offline: cfg.offline };
  if (cfg.weights === null) return Model.create({ ...base, weights: null });
  try {
    return await Model.create({ ...base, weights: cfg.weights });
  } catch (e) {
    if (!cfg.weightsFallback) throw e;
    out.log(`${label}notice: ImageNet weights for ${cfg.arch} are not available (${(e as Error).message.split('\n')[0]}); training from random initialisation instead`);
    return Model.create({ ...base, weights: null });
  }
}

/**
 * Counts the files each split's loader skips as undecodable. Once a split's share exceeds `maxShare` it aborts
 * the run (through `stop`), so a training on a fraction of the data cannot pass silently; `failure()` then counts
 * the split's undecodable files exactly (one decode pass over the files the run had not reached).
 */
class SkipGuard {
  private readonly undecodable = new Map<string, Map<string, string>>();
  private tripped?: { name: string; ds: ImageFolder };
  constructor(
    private readonly maxShare: number,
    private readonly stop: AbortController,
    private readonly workers?: number,
  ) {}

  watch(name: string, ds: ImageFolder, loader: DataLoader): void {
    const seen = this.seen(name);
    loader.on('skip', (s: { path: string; reason: string }) => {
      seen.set(s.path, s.reason);
      if (!this.tripped && seen.size > this.maxShare * ds.length) {
        this.tripped = { name, ds };
        this.stop.abort();
      }
    });
  }

  private seen(name: string): Map<string, string> {
    let m = this.undecodable.get(name);
    if (!m) this.undecodable.set(name, (m = new Map()));
    return m;
  }

  /** The DatasetError of a split over the limit, with exact counts; undefined while every split is within it. */
  async failure(): Promise<DatasetError | undefined> {
    if (!this.tripped) return undefined;
    const { name, ds } = this.tripped;
    const seen = this.seen(name);
    // every file decoded once (tiny output, no augmentation): the exact number, not the count when the limit tripped
    const probe = await ImageFolder.open(ds.root, { transform: Transform.resize([8, 8]), onError: 'skip' });
    const loader = new DataLoader(probe, { batchSize: 64, workers: this.workers });
    loader.on('skip', (s: { path: string; reason: string }) => seen.set(s.path, s.reason));
    for await (const batch of loader) batch.dispose();
    const k = this.summary(name, ds);
    const first = [...seen].slice(0, 3).map(([p, r]) => `${p} (${r.replace(p, '').replace(/^:\s*/, '')})`);
    return new DatasetError(
      `${ds.root}: ${k.undecodable} of ${k.files} image files could not be decoded${k.unsupported ? ` (and ${k.unsupported} files have an unsupported type)` : ''}, ` +
        `more than the allowed ${(100 * this.maxShare).toFixed(1)} % (maxSkipped / --max-skipped); first: ${first.join('; ')}`,
    );
  }

  summary(name: string, ds: ImageFolder): SkipSummary {
    const seen = this.seen(name);
    const unsupported = ds.skipped.filter((k) => !seen.has(k.path));
    const examples = [...[...seen].map(([path, reason]) => ({ path, reason })), ...unsupported].slice(0, 10);
    return { files: ds.length, undecodable: seen.size, unsupported: unsupported.length, examples };
  }
}

function describeSkips(name: string, k: SkipSummary): string | undefined {
  if (!k.undecodable && !k.unsupported) return undefined;
  const parts = [];
  if (k.undecodable) parts.push(`${k.undecodable} of ${k.files} ${name} files undecodable (${((100 * k.undecodable) / k.files).toFixed(1)} %)`);
  if (k.unsupported) parts.push(`${k.unsupported} ${name} files of an unsupported type`);
  return `skipped: ${parts.join(', ')}; first: ${k.examples.slice(0, 3).map((x) => x.path).join(', ')}`;
}

/** Cells per side of the Grad-CAM maps kept for the report. */
const CAM_GRID = 28;

/** A `h × w` map averaged down to `n × n` cells, as integers 0–255. */
function poolMap(map: Float32Array, h: number, w: number, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      const [y0, y1, x0, x1] = [Math.floor((i * h) / n), Math.floor(((i + 1) * h) / n), Math.floor((j * w) / n), Math.floor(((j + 1) * w) / n)];
      let sum = 0;
      for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) sum += map[y * w + x];
      out.push(Math.round((255 * sum) / Math.max(1, (y1 - y0) * (x1 - x0))));
    }
  return out;
}

/** best.pth when the run wrote one, else the model file of the newest complete checkpoint generation, else undefined. */
async function finalWeights(runDir: string): Promise<string | undefined> {
  const best = join(runDir, 'best.pth');
  if (existsSync(best)) return best;
  const gen = existsSync(runDir) ? await latestGeneration(runDir) : undefined;
  return gen && existsSync(gen.files.model) ? gen.files.model : undefined;
}

/** The training and validation folders of a run (skipped files logged), refused before any model is made. */
async function openRunData(cfg: RunConfig, out: Output, label: string): Promise<{ roots: ReturnType<typeof dataRoots>; train: ImageFolder; val?: ImageFolder }> {
  const roots = dataRoots(cfg.data);
  const train = await ImageFolder.open(roots.train, { transform: cfg.trainTransform ?? Transform.imagenetTrain(cfg.imageSize), onError: 'skip' });
  const val = roots.val ? await ImageFolder.open(roots.val, { transform: cfg.valTransform ?? evalTransform(cfg.imageSize), onError: 'skip' }) : undefined;
  if (val && val.classes.join('\n') !== train.classes.join('\n'))
    throw new DatasetError(`${roots.val}: classes (${val.classes.join(', ')}) differ from train/ (${train.classes.join(', ')})`);
  // refused before the model is made (the Trainer refuses it too, for any caller)
  needTwoClasses(roots.train, train.classes, 'class folder');
  for (const s of [...train.skipped, ...(val?.skipped ?? [])]) out.log(`${label}skipped ${s.path}: ${s.reason}`);
  return { roots, train, val };
}

/** --target-data: the target images and the Trainer's domainAdaptation option. */
async function openTarget(cfg: RunConfig, seed: number, out: Output, label: string): Promise<{ root: string; data: ImageFolder; option: NonNullable<TrainerOptions['domainAdaptation']> } | undefined> {
  if (!cfg.targetData) return undefined;
  const root = dataRoots(cfg.targetData).train;
  const data = await ImageFolder.open(root, { transform: cfg.trainTransform ?? Transform.imagenetTrain(cfg.imageSize), onError: 'skip' });
  const option = { method: cfg.adapt ?? DOMAIN_ADAPTATION_METHODS[0], target: new DataLoader(data, { batchSize: cfg.batchSize, shuffle: true, seed: seed + 1, workers: cfg.workers, dropLast: true }) };
  out.log(`${label}domain adaptation (${option.method}) to ${data.length} target images in ${root}`);
  return { root, data, option };
}

/** Labelled target data (its class folders are the source's): how the adapted model does there. */
async function evaluateTarget(cfg: RunConfig, trainer: Trainer, target: NonNullable<Awaited<ReturnType<typeof openTarget>>>, classes: string[], out: Output, label: string): Promise<RunSummary['targetEvaluation']> {
  if (target.data.classes.join('\n') !== classes.join('\n')) return undefined;
  const t = await ImageFolder.open(target.root, { transform: cfg.valTransform ?? evalTransform(cfg.imageSize), onError: 'skip' });
  const rep = await trainer.evaluate(new DataLoader(t, { batchSize: cfg.batchSize, workers: cfg.workers }));
  out.log(`${label}target accuracy ${(100 * rep.accuracy).toFixed(1)}% on ${rep.count} images of ${target.root}`);
  return { data: target.root, accuracy: rep.accuracy, loss: rep.loss, count: rep.count };
}

/** The report's misclassified validation images: thumbnails framed as the eval transform frames them, with Grad-CAM. */
async function misclassifiedExamples(model: Model, val: ImageFolder, evaluation: EvalReport, max: number, signal?: AbortSignal): Promise<RunSummary['misclassified']> {
  const misclassified: RunSummary['misclassified'] = [];
  // the eval transform's resize-to-crop ratio, so the Grad-CAM map lies on the thumbnail
  const first = val.transform.ops[0];
  const crop = val.transform.ops.find((op) => op.op === 'centerCrop');
  const ratio = first?.op === 'resize' && crop?.op === 'centerCrop' ? Math.max(...first.size) / Math.max(...crop.size) : 1;
  for (const err of evaluation.errors.slice(0, max)) {
    if (signal?.aborted) break;
    const path = val.samples[err.index].path;
    const m: RunSummary['misclassified'][number] = { path, label: val.classes[err.label], predicted: val.classes[err.predicted] };
    try {
      m.thumbnail = (await thumbnailJpeg(path, 112, 80, Math.round(112 * ratio))).toString('base64');
      const x = await model.explain(path, { classIndex: err.predicted, transform: val.transform });
      m.probability = x.probability;
      m.trueProbability = x.probabilities[err.label];
      m.cam = { size: CAM_GRID, data: poolMap(x.heatmap, x.height, x.width, CAM_GRID) };
    } catch {
      // an unreadable file is still listed, without a picture
    }
    misclassified.push(m);
  }
  return misclassified;
}

/** An AbortController that follows `signal` (the CLI's Ctrl-C) and that the skip guard can trip. */
function stopFollowing(signal?: AbortSignal): AbortController {
  const stop = new AbortController();
  if (signal?.aborted) stop.abort();
  else signal?.addEventListener('abort', () => stop.abort(), { once: true });
  return stop;
}

/** Trains, evaluates the best weights, writes best.pth, metrics.json and report.html into `cfg.out`. */
export async function trainRun(cfg: RunConfig, out: Output, signal?: AbortSignal, label = ''): Promise<RunResult> {
  if (!ARCHS.includes(cfg.arch)) throw v.invalid('arch', ARCHS.join(' | '), cfg.arch);
  v.positiveInt('imageSize', cfg.imageSize);
  if (cfg.adapt !== undefined && !cfg.targetData) throw new InvalidOptionError('adapt', '--adapt needs --target-data');
  const runDir = resolve(cfg.out);
  const { roots, train, val } = await openRunData(cfg, out, label);
  const maxSkipped = cfg.maxSkipped === undefined ? DEFAULT_MAX_SKIPPED : v.numberInRange('maxSkipped', cfg.maxSkipped, 0, 1);
  const stop = stopFollowing(signal);
  const guard = new SkipGuard(maxSkipped, stop, cfg.workers);
  const seed = cfg.trainer.seed ?? 0;
  manualSeed(seed);
  let ranking: CandidateRanking | undefined;
  let model: Model;
  if (cfg.candidates) {
    const probe = new DataLoader(await ImageFolder.open(roots.train, { transform: evalTransform(cfg.imageSize), onError: 'skip' }), { batchSize: cfg.batchSize, workers: cfg.workers });
    const chosen = await chooseModel(cfg.candidates, probe, { device: rankDevice(cfg.device), precision: cfg.trainer.precision, signal: stop.signal });
    ({ model, ranking } = chosen);
    out.log(`${label}source model: ${ranking.ranking[0].name} (of ${ranking.ranking.length}, ordered by ${ranking.orderedBy})\n${rankingTable(ranking)}${ranking.closeCallReason ? `\nclose call: ${ranking.closeCallReason}` : ''}`);
  } else model = await createModel(cfg, train.classes, out, label);
  try {
    out.log(`${label}${model.arch}: ${model.loadReport.message}; ${train.length} training / ${val?.length ?? 0} validation images, ${train.classes.length} classes`);
    const target = await openTarget(cfg, seed, out, label);
    const trainer = new Trainer(model, { ...cfg.trainer, ...(target ? { domainAdaptation: target.option } : {}), seed, checkpointDir: runDir, resumeFrom: cfg.resume ? runDir : undefined, signal: stop.signal });
    const loader = new DataLoader(train, { batchSize: cfg.batchSize, shuffle: true, seed, workers: cfg.workers, cache: cfg.cache, mixup: cfg.mixup, cutmix: cfg.cutmix });
    const valLoader = val ? new DataLoader(val, { batchSize: cfg.batchSize, workers: cfg.workers }) : undefined;
    guard.watch('train', train, loader);
    if (val && valLoader) guard.watch('val', val, valLoader);
    const close = attachProgress(trainer, out, label);
    const t0 = performance.now();
    let fit;
    try {
      // the linear probe of the probing strategies embeds centre crops of the training images, not random crops
      const probeData = trainer.resolvedOptions.probing ? new DataLoader(await ImageFolder.open(roots.train, { transform: evalTransform(cfg.imageSize), onError: 'skip' }), { batchSize: cfg.batchSize, workers: cfg.workers }) : undefined;
      fit = await trainer.fit(loader, valLoader, { probeData });
    } finally {
      close();
    }
    const seconds = (performance.now() - t0) / 1000;
    const failure = await guard.failure();
    if (failure) throw failure;
    const rank = resolveDistributed(cfg.trainer.distributed)?.rank ?? 0;
    if (rank !== 0) return { summary: { history: fit.history, best: fit.best, seconds } as RunSummary, reportPath: '', rank };
    const bestWeights = await finalWeights(runDir);
    // interrupted: report what is complete and leave at once (no evaluation of a half-trained model)
    const interrupted = !!signal?.aborted;
    if (bestWeights && !interrupted) await model.loadWeights(bestWeights);
    const evaluation = valLoader && !interrupted ? await trainer.evaluate(valLoader) : undefined;
    const targetEvaluation = target && !interrupted ? await evaluateTarget(cfg, trainer, target, train.classes, out, label) : undefined;
    const lateFailure = await guard.failure();
    if (lateFailure) throw lateFailure;
    const skipped = { train: guard.summary('train', train), val: val ? guard.summary('val', val) : undefined };
    for (const [name, k] of Object.entries(skipped)) {
      const line = k && describeSkips(name, k);
      if (line) out.log(`${label}${line}`);
    }
    const misclassified = evaluation && val ? await misclassifiedExamples(model, val, evaluation, cfg.maxThumbnails ?? 24, signal) : [];
    const summary: RunSummary = {
      ...runHeader(cfg, model, trainer, train, val),
      history: fit.history,
      best: fit.best,
      ...(fit.assessment ? { assessment: fit.assessment } : {}),
      ...(ranking ? { ranking } : {}),
      ...(fit.collapses.length ? { collapses: fit.collapses, recoveries: fit.recoveries } : {}),
      seconds,
      evaluation,
      ...(targetEvaluation ? { targetEvaluation } : {}),
      misclassified,
      ...(bestWeights ? { bestWeights } : {}),
      ...(interrupted ? { interrupted: true } : {}),
      skipped,
    };
    const reportPath = await writeRunReport(runDir, summary);
    return { summary, reportPath, bestWeights };
  } finally {
    model.dispose();
  }
}

/** What the run was: title, model, data and environment. */
function runHeader(cfg: RunConfig, model: Model, trainer: Trainer, train: ImageFolder, val?: ImageFolder) {
  const ver = version();
  return {
    title: cfg.title ?? `${model.arch} · ${trainer.options.strategy} · ${cfg.data}`,
    createdAt: new Date().toISOString(),
    arch: model.arch,
    strategy: String(trainer.options.strategy),
    weights: model.loadReport.source,
    classes: train.classes,
    trainSamples: train.length,
    valSamples: val?.length ?? 0,
    options: { ...cfg.trainer, imageSize: cfg.imageSize, batchSize: cfg.batchSize, weights: cfg.weights },
    environment: { libtorch: ver.libtorch, threads: getNumThreads(), device: model.device, precision: cfg.trainer.precision ?? 'auto', bf16: ver.cpu.bf16 },
  };
}
