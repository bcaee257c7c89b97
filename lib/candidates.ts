// Source-model choice: each candidate backbone (arch + weights) is assessed on the user's labelled data — k-NN and
// linear-probe accuracy, LogME, from one pass of embeddings — and the candidates are ranked, best first. The figures
// come from lib/transfer.ts (natively computed); this file owns the candidates, the order and the words.
import type { DataLoader } from './data';
import { manualSeed } from './device';
import { InvalidOptionError } from './errors';
import { ARCHS, Arch, HEAD_KINDS, HeadKind, Model } from './model';
import { Assessment, AssessOptions, assessBank, ASSESS_DEFAULTS, embedDataset } from './transfer';
import * as v from './validate';
import type { WeightsName } from './weights';

/** One source model to rank: an arch and its initial weights. */
export interface Candidate {
  arch: Arch;
  /** `'IMAGENET1K_V1'` … , a `.pth`/`.safetensors` path, or `null` (random initialisation). Default `null`. */
  weights?: WeightsName | string | null;
  /** Head of the model `chooseModel` creates (the ranking only reads the backbone). Default `'linear'`. */
  head?: HeadKind;
  /** How tables and results name it. Default `arch` or `arch:weights`. */
  name?: string;
}

/** A candidate's place in the ranking, with the figures of its assessment. */
export interface RankedCandidate {
  rank: number;
  name: string;
  arch: Arch;
  weights: string | null;
  assessment: Assessment;
}

/** What ranking candidates returns. */
export interface CandidateRanking {
  /** Best first. */
  ranking: RankedCandidate[];
  /** The score that orders the ranking, in words. */
  orderedBy: string;
  /**
   * The first two are within noise: their cross-validated linear-probe accuracies differ by less than two standard
   * errors of the difference (√(p(1−p)/n) each). Either may do better on new data; `closeCallReason` says so in words.
   */
  closeCall: boolean;
  closeCallReason?: string;
  seconds: number;
}

/**
 * The order: cross-validated linear-probe accuracy, then LogME, then k-NN accuracy. The linear probe measures what
 * the chosen model starts from — the linear-probe strategy, and the first phase of LP-FT and 'auto' — in the unit
 * users care about (accuracy); on small data it moves in steps of 1/N, so LogME (evidence, comparable across feature
 * sizes) breaks ties, and k-NN after it.
 */
export const RANKING_ORDER = 'linear-probe accuracy (cross-validated), then LogME, then k-NN accuracy';

/** @internal Checks and names the candidates. */
export function validateCandidates(candidates: unknown, name = 'candidates'): { arch: Arch; weights: string | null; head: HeadKind; name: string }[] {
  if (!Array.isArray(candidates) || candidates.length === 0) throw v.invalid(name, 'a non-empty array of { arch, weights? }', candidates);
  const out = candidates.map((c, i) => {
    const o = v.plainObject(`${name}[${i}]`, c) as Record<string, unknown>;
    v.knownKeys(`${name}[${i}]`, o, ['arch', 'weights', 'head', 'name']);
    const arch = v.oneOf(`${name}[${i}].arch`, o.arch, ARCHS);
    const weights = o.weights === undefined || o.weights === null ? null : v.nonEmptyString(`${name}[${i}].weights`, o.weights);
    const head = o.head === undefined ? 'linear' : v.oneOf(`${name}[${i}].head`, o.head, HEAD_KINDS);
    const label = o.name === undefined ? (weights === null ? `${arch} (random init)` : `${arch}:${weights}`) : v.nonEmptyString(`${name}[${i}].name`, o.name);
    return { arch, weights, head, name: label };
  });
  const names = new Set<string>();
  for (const c of out) {
    if (names.has(c.name)) throw new InvalidOptionError(name, `two candidates are named ${JSON.stringify(c.name)}; give each a distinct name`);
    names.add(c.name);
  }
  return out;
}

const better = (a: Assessment, b: Assessment) => b.linearProbeAccuracy - a.linearProbeAccuracy || b.logme - a.logme || b.knnAccuracy - a.knnAccuracy;

/**
 * @internal Ranks the candidates on `data` (use a deterministic transform); with `keepBest` the best candidate's model
 * stays alive and is returned (the others are disposed as soon as they are measured).
 */
export async function rankCandidates(candidates: Candidate[], data: DataLoader, options: AssessOptions & { device?: string } = {}, keepBest = false): Promise<CandidateRanking & { model?: Model }> {
  const list = validateCandidates(candidates);
  const { device, ...assessOptions } = options;
  const classes = data.dataset.classes;
  const numClasses = classes.length;
  if (numClasses < 2) throw new InvalidOptionError('data', 'ranking candidates needs labelled data with at least 2 classes');
  const t0 = performance.now();
  const scored: { c: (typeof list)[number]; a: Assessment }[] = [];
  let best: { model: Model; a: Assessment } | undefined;
  try {
    for (const c of list) {
      // random-initialised candidates are drawn from `seed`: the same ranking on every run
      manualSeed(assessOptions.seed ?? ASSESS_DEFAULTS.seed);
      const model = await Model._createForArch({ arch: c.arch, weights: c.weights, head: c.head, numClasses, classes, device, precision: assessOptions.precision });
      let kept = false;
      try {
        const t = performance.now();
        const bank = await embedDataset(model, data, { precision: model.precision(assessOptions.precision), bnSamples: assessOptions.bnSamples ?? ASSESS_DEFAULTS.bnSamples, signal: assessOptions.signal });
        if (!bank) throw new InvalidOptionError('signal', 'ranking the candidates was aborted');
        const a = await assessBank(model, bank, numClasses, assessOptions, t);
        scored.push({ c, a });
        if (keepBest && (!best || better(a, best.a) < 0)) {
          best?.model.dispose();
          best = { model, a };
          kept = true;
        }
      } finally {
        if (!kept) model.dispose();
      }
    }
  } catch (e) {
    best?.model.dispose();
    throw e;
  }
  scored.sort((x, y) => better(x.a, y.a));
  const ranking = scored.map(({ c, a }, i) => ({ rank: i + 1, name: c.name, arch: c.arch, weights: c.weights, assessment: a }));
  const close = closeCall(ranking);
  return { ranking, orderedBy: RANKING_ORDER, ...close, seconds: (performance.now() - t0) / 1000, ...(best ? { model: best.model } : {}) };
}

/** @internal Whether the first two are within noise (see `CandidateRanking.closeCall`). */
export function closeCall(r: RankedCandidate[]): { closeCall: boolean; closeCallReason?: string } {
  if (r.length < 2) return { closeCall: false };
  const [a, b] = [r[0].assessment, r[1].assessment];
  const se = (x: Assessment) => Math.sqrt((x.linearProbeAccuracy * (1 - x.linearProbeAccuracy)) / Math.max(1, x.count));
  const twoSe = 2 * Math.hypot(se(a), se(b));
  if (a.linearProbeAccuracy - b.linearProbeAccuracy >= twoSe) return { closeCall: false };
  const p = (x: number) => `${(100 * x).toFixed(1)}%`;
  return { closeCall: true, closeCallReason: `${r[0].name} (${p(a.linearProbeAccuracy)}) and ${r[1].name} (${p(b.linearProbeAccuracy)}) are within two standard errors (${p(twoSe)}) on ${a.count} images: either may do better on new data` };
}

/**
 * Ranks the candidates on `data` (a DataLoader with a deterministic transform, e.g. `Transform.imagenetEval()`;
 * `options.seed`, default 0, also seeds the global generator before each candidate is created, so random-initialised
 * candidates are the same on every run) and
 * returns the best one as a model with `data`'s classes and a fresh head, ready for a Trainer (`strategy: 'auto'`
 * then chooses how to train it), with the ranking.
 */
export async function chooseModel(candidates: Candidate[], data: DataLoader, options: AssessOptions & { device?: string } = {}): Promise<{ model: Model; ranking: CandidateRanking }> {
  const { model, ...ranking } = await rankCandidates(candidates, data, options, true);
  return { model: model!, ranking };
}
