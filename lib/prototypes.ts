// Few-shot classes without training: a head that classifies by cosine similarity to class prototypes, built from a
// handful of example images per class through the model's frozen backbone. The math runs natively
// (cpp/transfer/probe.cpp, fit_prototypes); this file validates, assembles the new model and keeps the record.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataLoader, ImageList } from './data';
import { CheckpointError, InvalidOptionError } from './errors';
import { Model, Precision } from './model';
import { embedDataset } from './transfer';
import { Transform } from './transform';
import * as v from './validate';

/** Options of `model.withPrototypes`. */
export interface PrototypeOptions {
  /** Pipeline of the example images. Default `Transform.imagenetEval()` (what `predict` uses). */
  transform?: Transform;
  /** Precision of the embeddings. Default: the model's. */
  precision?: Precision;
  /**
   * Logit scale s (class scores are s·cos(embedding, prototype)): sets how sharp the probabilities are, never which
   * class wins. Default `'auto'`: the value minimising the leave-one-out cross-entropy of the examples (classes with
   * at least two examples), 10 when no class has two; when classes are kept, their scale.
   */
  scale?: number | 'auto';
  /**
   * Keep the prototypes of the classes this call does not name. Default: true when this model's head is a prototype
   * head (so adding or replacing a class is one call), false otherwise (the head holds exactly the named classes).
   */
  keep?: boolean;
  /** Images per forward pass. Default 16. */
  batchSize?: number;
}

/** What a prototype head was built from (`model.prototypes`; saved with the weights). */
export interface PrototypeInfo {
  /** The logit scale s. */
  scale: number;
  /** Example images per class, by class name. */
  examples: Record<string, number>;
  /** Leave-one-out nearest-prototype accuracy of the last call's examples (classes with ≥ 2 examples); null when none. */
  looAccuracy: number | null;
}

export const PROTOTYPE_DEFAULTS = { scale: 'auto' as const, batchSize: 16 };

/** @internal The implementation of `Model.withPrototypes`. */
export async function withPrototypes(src: Model, examples: Record<string, (string | Buffer)[]>, options: PrototypeOptions = {}): Promise<Model> {
  const ex = v.plainObject('examples', examples) as Record<string, unknown>;
  const o = v.plainObject('options', options) as PrototypeOptions;
  v.knownKeys('options', o as Record<string, unknown>, ['transform', 'precision', 'scale', 'keep', 'batchSize']);
  const names = Object.keys(ex);
  if (names.length === 0) throw v.invalid('examples', 'an object mapping class names to example images', examples);
  const items: { input: string | Buffer; label: number }[] = [];
  const keep = o.keep === undefined ? src.prototypes !== undefined : v.bool('keep', o.keep);
  if (keep && !src.prototypes) throw new InvalidOptionError('keep', 'keep: true needs a model whose head was made by withPrototypes');
  const kept = keep ? (src.classes ?? []).filter((c) => !names.includes(c)) : [];
  const classes = keep ? [...(src.classes ?? []), ...names.filter((n) => !src.classes?.includes(n))] : names;
  for (const name of names) {
    if (name.length === 0) throw v.invalid('examples', 'non-empty class names', name);
    const list = ex[name];
    if (!Array.isArray(list) || list.length === 0) throw v.invalid(`examples[${JSON.stringify(name)}]`, 'a non-empty array of file paths or Buffers', list);
    list.forEach((input, i) => {
      if (typeof input !== 'string' && !Buffer.isBuffer(input)) throw v.invalid(`examples[${JSON.stringify(name)}][${i}]`, 'file path or Buffer', input);
      if (typeof input === 'string' && input.length === 0) throw v.invalid(`examples[${JSON.stringify(name)}][${i}]`, 'non-empty file path', input);
      items.push({ input, label: classes.indexOf(name) });
    });
  }
  if (classes.length < 2) throw new InvalidOptionError('examples', `a prototype head needs at least 2 classes; got ${classes.length} (${classes.join(', ')})`);
  const transform = o.transform ?? Transform.imagenetEval();
  if (!(transform instanceof Transform)) throw v.invalid('transform', 'Transform', transform);
  const scale = o.scale === undefined || o.scale === 'auto' ? -1 : v.positiveNumber('scale', o.scale);
  const batchSize = o.batchSize === undefined ? PROTOTYPE_DEFAULTS.batchSize : v.positiveInt('batchSize', o.batchSize);
  const precision = src.precision(o.precision ?? src.defaultPrecision);

  const info = src._handle().info();
  // the kept classes' rows, at their (unchanged) indices
  let base: { data: Float32Array; shape: number[] } | null = null;
  if (kept.length) {
    const w = (await src.stateDict())[`${info.headPrefix}.weight`];
    const d = info.featureDim;
    if (!w || w.shape.length !== 2 || w.shape[1] !== d) throw new InvalidOptionError('keep', `the head of this ${src.arch} is not one Linear layer on ${d} features`);
    const data = new Float32Array(classes.length * d);
    for (const c of kept) {
      const i = classes.indexOf(c);
      data.set((w.data as Float32Array).subarray(i * d, (i + 1) * d), i * d);
    }
    base = { data, shape: [classes.length, d] };
  }

  // the new model: this backbone, a linear head over the classes
  const dir = mkdtempSync(join(tmpdir(), 'tl-prototypes-'));
  let model: Model;
  try {
    const file = join(dir, 'backbone.pth');
    await src.save(file);
    model = await Model._createForArch({ arch: src.arch, classes, head: 'linear', weights: file, device: src.device, channelsLast: info.channelsLast, fuse: info.fuse, precision: src.defaultPrecision });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  try {
    const loader = new DataLoader(ImageList._fromInputs(items, classes, { transform }), { batchSize, shuffle: false });
    const bank = await embedDataset(model, loader, { precision, bnSamples: 0 });
    if (!bank) throw new InvalidOptionError('examples', 'embedding the examples was aborted');
    const fit = await model._run(() => bank.fitPrototypes({ numClasses: classes.length, scale, base }));
    const counts: Record<string, number> = {};
    for (const c of kept) counts[c] = src.prototypes?.examples[c] ?? 0;
    for (const n of names) counts[n] = (ex[n] as unknown[]).length;
    model.prototypes = { scale: fit.scale, examples: Object.fromEntries(classes.map((c) => [c, counts[c]])), looAccuracy: fit.looAccuracy };
    return model;
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** @internal The `prototypes` metadata of a saved file (undefined when it has none). */
export function parsePrototypeInfo(file: string, json: string | undefined): PrototypeInfo | undefined {
  if (json === undefined) return undefined;
  let p: Partial<PrototypeInfo> | null = null;
  try {
    p = JSON.parse(json) as Partial<PrototypeInfo>;
  } catch {
    // reported below
  }
  const counts = p?.examples;
  if (typeof p?.scale !== 'number' || !(p.scale > 0) || typeof counts !== 'object' || counts === null || Object.values(counts).some((n) => !Number.isInteger(n) || n < 0))
    throw new CheckpointError(`${file}: metadata "prototypes" is ${JSON.stringify(json.slice(0, 80))}; expected {"scale": positive number, "examples": {class: count}}`);
  return { scale: p.scale, examples: { ...counts }, looAccuracy: typeof p.looAccuracy === 'number' ? p.looAccuracy : null };
}
