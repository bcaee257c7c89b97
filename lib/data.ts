import { EventEmitter } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { resolve } from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { BusyError, DatasetError, DisposedError, InvalidOptionError } from './errors';
import { getNative, NativeBatch, NativeDecodeOptions, NativeLoader, NativeSamples, TensorData } from './native';
import { decodeOptions } from './decode-options';
import { Transform } from './transform';
import * as v from './validate';

/** A sample that could not be used: the file and why. */
export interface SkippedSample {
  path: string;
  reason: string;
}


export interface DatasetOptions {
  /** Per-sample pipeline. Default: `Transform.imagenetEval()`. */
  transform?: Transform;
  /** `'throw'` (default): a corrupt image fails the batch naming the file; `'skip'`: drop it and report it. */
  onError?: 'throw' | 'skip';
  /** Decompression-bomb guard: images with more pixels are errors. Default 178,956,970 (PIL's limit). */
  maxPixels?: number;
  /**
   * JPEG DCT-domain downscaling: decode at the smallest libjpeg scale (1/8…1) whose shorter side stays at least
   * this many pixels. Default 0 (off: exact decoding, pixel-identical to PIL).
   */
  fastDecodeMinSide?: number;
  /**
   * `false` (default): decode what PIL (and so torchvision's ImageFolder) decodes — JPEGs with libjpeg's "corrupt
   * data" warnings and PNGs with bad image-data checksums are kept; truncated and undecodable files are refused.
   * `true`: any decoder warning refuses the file.
   */
  strict?: boolean;
}

const DATASET_KEYS = ['transform', 'onError', 'maxPixels', 'fastDecodeMinSide', 'strict', 'extensions'] as const;

/** Common base of the datasets: samples (file or buffer + label), class names, a transform. */
export class ImageDataset {
  readonly classes: string[];
  readonly classToIndex: Record<string, number>;
  /** Samples that were left out (unsupported extension at scan time, or undecodable with onError 'skip'). */
  readonly skipped: SkippedSample[];
  transform: Transform;
  readonly onError: 'throw' | 'skip';
  /** @internal */
  readonly decode: NativeDecodeOptions;
  /** @internal */
  readonly native: NativeSamples;

  protected constructor(samples: NativeSamples, classes: string[], skipped: SkippedSample[], opts: DatasetOptions) {
    this.native = samples;
    this.classes = classes;
    this.classToIndex = Object.fromEntries(classes.map((c, i) => [c, i]));
    this.skipped = skipped;
    if (opts.transform !== undefined && !(opts.transform instanceof Transform)) throw v.invalid('transform', 'Transform', opts.transform);
    this.transform = opts.transform ?? Transform.imagenetEval();
    this.onError = opts.onError === undefined ? 'throw' : v.oneOf('onError', opts.onError, ['throw', 'skip'] as const);
    this.decode = decodeOptions(opts);
  }

  get length(): number {
    return this.native.paths.length;
  }

  /** `{ path, label }` per sample (path is `<buffer N>` for in-memory images). */
  get samples(): { path: string; label: number }[] {
    const labels = this.native.labels ?? [];
    return this.native.paths.map((path, i) => ({ path, label: labels[i] ?? -1 }));
  }

  /** Labels of every sample, in order. */
  get targets(): number[] {
    return Array.from(this.native.labels ?? []);
  }

  /** The same samples with another transform (e.g. a validation pipeline over the same files). */
  withTransform(transform: Transform): this {
    const copy = Object.create(Object.getPrototypeOf(this)) as this;
    Object.assign(copy, this, { transform });
    return copy;
  }
}

function datasetOptions(opts: unknown): DatasetOptions & { extensions?: string[] } {
  if (opts === undefined) return {};
  const o = v.plainObject('options', opts);
  v.knownKeys('options', o, DATASET_KEYS);
  return o as DatasetOptions & { extensions?: string[] };
}

/**
 * Refuses training data with fewer than two classes (a classifier of one class learns nothing and reports 100 %):
 * a DatasetError naming `where`, e.g. "<root>: one class folder (ants); training a classifier needs at least two".
 */
export function needTwoClasses(where: string, classes: string[], noun: 'class' | 'class folder'): void {
  if (classes.length >= 2) return;
  const plural = noun === 'class' ? 'classes' : 'class folders';
  throw new DatasetError(`${where}: ${classes.length ? `one ${noun} (${classes[0]})` : `no ${plural}`}; training a classifier needs at least two${noun === 'class' ? ' classes' : ''}`);
}

/** torchvision's ImageFolder: `root/<class>/**\/<image>`, classes in sorted folder order. */
export class ImageFolder extends ImageDataset {
  readonly root: string;

  private constructor(root: string, samples: NativeSamples, classes: string[], skipped: SkippedSample[], opts: DatasetOptions) {
    super(samples, classes, skipped, opts);
    this.root = root;
  }

  /**
   * Scans `root` (off the JS thread). Files whose extension is not one the decoder reads (default .jpg .jpeg .png,
   * case-insensitive; torchvision also lists .ppm .bmp .pgm .tif .tiff .webp) are listed in `skipped`.
   */
  static async open(root: string, options?: DatasetOptions & { extensions?: string[] }): Promise<ImageFolder> {
    v.nonEmptyString('root', root);
    const opts = datasetOptions(options);
    if (opts.onError !== undefined) v.oneOf('onError', opts.onError, ['throw', 'skip'] as const);
    if (opts.extensions !== undefined && (!Array.isArray(opts.extensions) || opts.extensions.some((e) => typeof e !== 'string' || !e.startsWith('.'))))
      throw v.invalid('extensions', "array of extensions such as '.jpg'", opts.extensions);
    const abs = resolve(root);
    const scan = await getNative().scanImageFolder(abs, opts.extensions);
    return new ImageFolder(abs, { paths: scan.paths, labels: scan.labels }, scan.classes, scan.skipped, opts);
  }
}

/** Samples from an explicit list, a CSV file, or in-memory encoded images. */
export class ImageList extends ImageDataset {
  /**
   * From `{ path, label }` items. Labels are class names (then `classes` is derived, sorted, unless given) or class
   * indices: numeric labels keep their values, so labels {0, 5} mean at least 6 classes (`classes` default
   * `'0'`…`'5'`; given `classes` must have more entries than the largest label).
   */
  static from(items: { path: string; label: number | string }[], options: DatasetOptions & { classes?: string[] } = {}): ImageList {
    if (!Array.isArray(items) || items.length === 0) throw v.invalid('items', 'non-empty array of { path, label }', items);
    const { classes: given, ...rest } = options;
    const named = items.some((it) => typeof it.label === 'string');
    const maxIndex = named ? -1 : Math.max(...items.map((it, i) => v.nonNegativeInt(`items[${i}].label`, it?.label)));
    const classes = given ?? (named ? [...new Set(items.map((it) => String(it.label)))].sort() : Array.from({ length: maxIndex + 1 }, (_, i) => String(i)));
    if (!named && maxIndex >= classes.length)
      throw new InvalidOptionError('classes', `Expected more than ${maxIndex} class names (the largest numeric label) but received ${classes.length}`);
    const index = new Map(classes.map((c, i) => [c, i]));
    const labels = new Int32Array(items.length);
    const paths = items.map((it, i) => {
      if (typeof it?.path !== 'string' || it.path.length === 0) throw v.invalid(`items[${i}].path`, 'non-empty string', it?.path);
      if (named) {
        const l = index.get(String(it.label));
        if (l === undefined) throw new InvalidOptionError(`items[${i}].label`, `Unknown class ${JSON.stringify(it.label)} for items[${i}].label; classes: ${classes.join(', ')}`);
        labels[i] = l;
      } else {
        labels[i] = v.nonNegativeInt(`items[${i}].label`, it.label);
      }
      return resolve(it.path);
    });
    return new ImageList({ paths, labels }, classes, [], datasetOptions(rest));
  }

  /** @internal File paths and encoded Buffers mixed, with class indices into `classes`. */
  static _fromInputs(items: { input: string | Buffer; label: number }[], classes: string[], options: DatasetOptions = {}): ImageList {
    const buffers = items.map((it) => (Buffer.isBuffer(it.input) ? it.input : null));
    const paths = items.map((it, i) => (typeof it.input === 'string' ? resolve(it.input) : `<buffer ${i}>`));
    return new ImageList({ paths, labels: Int32Array.from(items, (it) => it.label), buffers }, classes, [], datasetOptions(options));
  }

  /** From a CSV file with a header holding `path` and `label` columns; relative paths are relative to the CSV. */
  static fromCsv(file: string, options: DatasetOptions & { classes?: string[] } = {}): ImageList {
    v.nonEmptyString('file', file);
    if (!existsSync(file)) throw new DatasetError(`${file}: CSV file does not exist`);
    const rows = parseCsv(readFileSync(file, 'utf8'), { columns: true, skip_empty_lines: true, trim: true }) as Record<string, string>[];
    if (rows.length === 0 || !('path' in rows[0]) || !('label' in rows[0])) throw new DatasetError(`${file}: CSV needs a header with 'path' and 'label' columns`);
    const dir = resolve(file, '..');
    return ImageList.from(
      rows.map((r) => ({ path: resolve(dir, r.path), label: /^\d+$/.test(r.label) && !options.classes ? Number(r.label) : r.label })),
      options,
    );
  }

  /** From encoded images in memory (JPEG/PNG Buffers); the Buffers are copied when a loader starts. */
  static fromBuffers(images: { data: Buffer; label?: number }[], options: DatasetOptions & { classes?: string[] } = {}): ImageList {
    if (!Array.isArray(images) || images.length === 0) throw v.invalid('images', 'non-empty array of { data: Buffer }', images);
    const buffers = images.map((im, i) => {
      if (!Buffer.isBuffer(im?.data)) throw v.invalid(`images[${i}].data`, 'Buffer', im?.data);
      return im.data;
    });
    const labels = Int32Array.from(images.map((im) => im.label ?? -1));
    const { classes, ...rest } = options;
    return new ImageList({ paths: images.map((_, i) => `<buffer ${i}>`), labels, buffers }, classes ?? [], [], datasetOptions(rest));
  }
}

/** A batch produced by a DataLoader. Tensors stay native; `images()` / `labels()` copy them out. */
export class Batch {
  /** @internal */
  readonly native: NativeBatch;
  readonly size: number;
  /** Dataset indices of the samples, in batch order. */
  readonly indices: number[];
  /** Samples dropped from this batch (onError 'skip'). */
  readonly skipped: SkippedSample[];
  /** True when labels are soft (MixUp/CutMix): `[B, numClasses]` floats. */
  readonly softLabels: boolean;

  /** @internal */
  constructor(n: NativeBatch) {
    this.native = n;
    const info = n.info();
    this.size = info.size;
    this.indices = info.indices;
    this.skipped = info.skipped;
    this.softLabels = info.softLabels;
  }

  /** Images `[B, 3, H, W]` float32. */
  images(): TensorData {
    if (this.disposed) throw new DisposedError('this batch');
    return this.native.images();
  }

  /**
   * Frees the batch's native tensors now instead of at garbage collection, so the caching CPU allocator hands the
   * same memory to the next batch (measured: page faults on fresh batch memory were the loader's largest cost). The
   * Trainer and `model.predict` do this after each step; call it when consuming batches yourself. The batch is empty
   * afterwards.
   */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.native.release();
  }

  private disposed = false;

  /** Labels: class indices (Int32Array) or soft labels `[B, C]` (Float32Array). */
  labels(): { data: Int32Array | Float32Array; shape: number[] } {
    if (this.disposed) throw new DisposedError('this batch');
    const l = this.native.labels(); // int32 class indices or float32 soft labels, converted natively
    return { data: l.data as Int32Array | Float32Array, shape: l.shape };
  }
}

export interface DataLoaderOptions {
  /** Default 32. */
  batchSize?: number;
  /** Reshuffle every epoch. Default false. */
  shuffle?: boolean;
  /** Seed of shuffling and random transforms; the same seed gives the same batches for any `workers`. Default: random. */
  seed?: number;
  /** Drop the last incomplete batch. Default false. */
  dropLast?: boolean;
  /** Native decode/augment threads. Default: all cores. */
  workers?: number;
  /** Batches prepared ahead per worker. Default 2. */
  prefetch?: number;
  /**
   * Batches in page-locked host memory, so that copies to a CUDA model are asynchronous and overlap compute (as
   * torch's `pin_memory`). Ignored without a CUDA device. Default false.
   */
  pinMemory?: boolean;
  /**
   * Where the pixel-wise random ops at the end of the transform (flips, colour jitter, random grayscale, random
   * erasing, toTensor, normalize — the ops after the last crop/resize to a fixed size) and MixUp/CutMix run: `false`
   * per sample on the loader threads; `true` on the whole uint8 batch on the consuming model's device (the GPU for a
   * CUDA model), with the random parameters drawn on the loader threads exactly as the per-sample path draws them;
   * `'auto'` (default): true when a Trainer consumes the loader with a CUDA model.
   */
  deviceAugment?: boolean | 'auto';
  /** Keep decoded images in memory for later epochs: `true` (1 GiB), a byte budget, or false (default). */
  cache?: boolean | number;
  /** MixUp with Beta(alpha, alpha); soft labels. Default off. */
  mixup?: { alpha: number; p?: number };
  /** CutMix with Beta(alpha, alpha); soft labels. With both, each batch picks one at random. Default off. */
  cutmix?: { alpha: number; p?: number };
}

/**
 * The DataLoader's defaults, defined here only (the native loader receives every value). `workers`: all cores
 * (`os.cpus().length`); `seed`: random per loader.
 */
export const LOADER_DEFAULTS = {
  batchSize: 32,
  shuffle: false,
  dropLast: false,
  prefetch: 2,
  pinMemory: false,
  deviceAugment: 'auto' as const,
  /** `cache: true` */
  cacheBytes: 2 ** 30,
  /** probability of a batch being mixed when `mixup` / `cutmix` is set without `p` */
  mixP: 1,
};

const LOADER_KEYS = ['batchSize', 'shuffle', 'seed', 'dropLast', 'workers', 'prefetch', 'pinMemory', 'deviceAugment', 'cache', 'mixup', 'cutmix'] as const;

/**
 * Batches from a dataset, prepared by native threads. `for await (const batch of loader)` runs one epoch; each new
 * iteration is the next epoch (new shuffle). Emits `'skip'` ({ path, reason }) for samples dropped with onError 'skip'.
 */
export class DataLoader extends EventEmitter {
  readonly dataset: ImageDataset;
  readonly batchSize: number;
  /** Shuffling and augmentation seed (common to every rank of a data-parallel run). */
  seed: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  /** True when MixUp or CutMix is on. */
  readonly mixing: boolean;
  private readonly loader: NativeLoader;
  private epoch = 0;
  private running = false;
  /** `deviceAugment` as given ('auto' until a consumer's device resolves it). */
  readonly deviceAugment: boolean | 'auto';
  private deferring = false;

  constructor(dataset: ImageDataset, options: DataLoaderOptions = {}) {
    super();
    if (!(dataset instanceof ImageDataset)) throw v.invalid('dataset', 'ImageFolder or ImageList', dataset);
    const o = v.plainObject('options', options);
    v.knownKeys('options', o, LOADER_KEYS);
    this.dataset = dataset;
    this.batchSize = options.batchSize === undefined ? LOADER_DEFAULTS.batchSize : v.positiveInt('batchSize', options.batchSize);
    this.seed = options.seed === undefined ? Math.floor(Math.random() * 2 ** 32) : v.nonNegativeInt('seed', options.seed);
    const workers = options.workers === undefined ? cpus().length : v.positiveInt('workers', options.workers);
    const prefetch = options.prefetch === undefined ? LOADER_DEFAULTS.prefetch : v.positiveInt('prefetch', options.prefetch);
    const pinMemory = options.pinMemory === undefined ? LOADER_DEFAULTS.pinMemory : v.bool('pinMemory', options.pinMemory);
    this.deviceAugment = options.deviceAugment === undefined || options.deviceAugment === 'auto' ? LOADER_DEFAULTS.deviceAugment : v.bool('deviceAugment', options.deviceAugment);
    const cache = options.cache === undefined || options.cache === false ? 0 : options.cache === true ? LOADER_DEFAULTS.cacheBytes : v.positiveInt('cache', options.cache);
    const mix = (name: 'mixup' | 'cutmix') => {
      const m = options[name];
      if (m === undefined) return { alpha: 0, p: LOADER_DEFAULTS.mixP };
      v.plainObject(name, m);
      return { alpha: v.positiveNumber(`${name}.alpha`, m.alpha), p: m.p === undefined ? LOADER_DEFAULTS.mixP : v.numberInRange(`${name}.p`, m.p, 0, 1) };
    };
    const mixup = mix('mixup');
    const cutmix = mix('cutmix');
    this.shuffle = options.shuffle === undefined ? LOADER_DEFAULTS.shuffle : v.bool('shuffle', options.shuffle);
    this.dropLast = options.dropLast === undefined ? LOADER_DEFAULTS.dropLast : v.bool('dropLast', options.dropLast);
    this.mixing = mixup.alpha > 0 || cutmix.alpha > 0;
    if ((mixup.alpha > 0 || cutmix.alpha > 0) && dataset.classes.length < 2)
      throw new InvalidOptionError('mixup', 'MixUp/CutMix need a dataset with class names (numClasses)');
    this.loader = new (getNative().NativeLoader)(dataset.native, JSON.stringify(dataset.transform.ops), dataset.decode, {
      batchSize: this.batchSize,
      shuffle: this.shuffle,
      seed: this.seed,
      dropLast: this.dropLast,
      workers,
      prefetch,
      onError: dataset.onError,
      pinMemory,
      deviceAugment: this.deviceAugment === true,
      rank: 0,
      worldSize: 1,
      cache,
      mixupAlpha: mixup.alpha,
      cutmixAlpha: cutmix.alpha,
      mixupP: mixup.p,
      cutmixP: cutmix.p,
      numClasses: dataset.classes.length,
    });
  }

  /** @internal Resolves `deviceAugment: 'auto'` for the device of the model that consumes the batches. */
  _useDevice(device: string): void {
    if (this.deviceAugment !== 'auto' || this.running) return;
    const on = device.startsWith('cuda');
    if (on !== this.deferring) this.loader.setDeviceAugment(on);
    this.deferring = on;
  }

  /**
   * @internal Data-parallel: from the next epoch on this loader yields rank `rank`'s shard of every epoch
   * (DistributedSampler's semantics: the common order seeded by `seed`, padded to equal shards unless dropLast).
   */
  _shard(rank: number, worldSize: number, seed: number): void {
    if (this.running) throw new BusyError('a DataLoader cannot be sharded while it is being iterated');
    this.loader.setShard(rank, worldSize, seed);
    this.seed = seed;
  }

  /** Sets the epoch the next iteration runs (shuffle and augmentation depend on it); used by resume. */
  setEpoch(epoch: number): void {
    this.epoch = v.nonNegativeInt('epoch', epoch);
  }

  /** Batches per epoch. */
  get length(): number {
    return this.loader.length();
  }

  /** Bytes held by the decoded-image cache. */
  get cacheBytes(): number {
    return this.loader.cacheBytes();
  }

  /** One epoch of batches. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Batch> {
    if (this.running) throw new BusyError('this DataLoader is already being iterated; finish or break out of the other loop first');
    this.running = true;
    try {
      await this.loader.start(this.epoch++);
      for (;;) {
        const nb: NativeBatch | null = await this.loader.next();
        if (!nb) return;
        const batch = new Batch(nb);
        for (const s of batch.skipped) {
          if (!this.dataset.skipped.some((k) => k.path === s.path)) this.dataset.skipped.push(s);
          this.emit('skip', s);
        }
        yield batch;
      }
    } finally {
      await this.loader.stop(); // joins the loader threads on a worker
      this.running = false;
    }
  }
}

