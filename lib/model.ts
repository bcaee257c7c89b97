import { IMAGENET_CLASSES } from './imagenet-classes';
import { LOADER_DEFAULTS } from './data';
import { decodeOptions } from './decode-options';
import { AsyncLocalStorage } from 'node:async_hooks';
import { existsSync } from 'node:fs';
import { extname, resolve as resolvePath } from 'node:path';
import { getNumThreads, resolveDevice, version } from './device';
import { Transform } from './transform';
import { BusyError, CheckpointError, DisposedError, InvalidOptionError } from './errors';
import { getNative, NativeModel, TensorData } from './native';
import * as v from './validate';
import { fetchWeights, HubOptions, WeightsName } from './weights';
import { exportOnnx, OnnxExportOptions } from './onnx';
import { parsePrototypeInfo, PrototypeInfo, PrototypeOptions, withPrototypes } from './prototypes';

/** Every architecture of the zoo (torchvision names). */
export const ARCHS = [
  'resnet18',
  'resnet34',
  'resnet50',
  'resnet101',
  'resnet152',
  'wide_resnet50_2',
  'wide_resnet101_2',
  'resnext50_32x4d',
  'resnext101_32x8d',
  'resnext101_64x4d',
  'squeezenet1_1',
] as const;
export type Arch = (typeof ARCHS)[number];
export type ResNetArch = Exclude<Arch, 'squeezenet1_1'>;

/** Numeric precision of a forward pass. `auto`: bf16 on CPUs with native BF16 and on CUDA, else fp32. */
/** `'fp16'` (autocast to half with dynamic loss scaling when training) needs a CUDA device. */
export type Precision = 'fp32' | 'bf16' | 'fp16' | 'auto';
export const PRECISIONS = ['fp32', 'bf16', 'fp16', 'auto'] as const;

export interface ModelOptions extends HubOptions {
  /** Architecture name as in torchvision. */
  arch: Arch;
  /** Outputs of the new head. Default: `classes.length` when given, else 1000. */
  numClasses?: number;
  /** Class names, stored with saved weights. Default: none. */
  classes?: string[];
  /**
   * Initial weights: `'IMAGENET1K_V1'`, `'IMAGENET1K_V2'`, `'DEFAULT'` (best published), a `.pth`/`.safetensors` path,
   * or `null` for random initialisation (torchvision's default). Default: `null`.
   */
  weights?: WeightsName | string | null;
  /** `'cpu'`, `'cuda'` or `'cuda:N'`. Default `'cpu'`. */
  device?: string;
  /** Dropout before the head. Default: 0 for ResNets, 0.5 for squeezenet1_1 (torchvision's). */
  dropout?: number;
  /** Keep convolution weights and inputs in channels_last layout (faster on CPU with oneDNN). Default true. */
  channelsLast?: boolean;
  /**
   * Fused inference: in eval mode without gradients (forward, embed, predict, evaluate, explain's backbone) each
   * BatchNorm is folded into its convolution and the weights are pre-cast to the compute dtype, once per weights
   * version (rebuilt after training, loading, `to()`). The model's own parameters stay the truth for training, saving
   * and export. fp32 results match the unfused model to rounding (≤ 1e-4 relative). Default true.
   */
  fuse?: boolean;
  /**
   * Default precision of `forward`, `embed` and `predict`: `'auto'` (default) uses bf16 autocast on CPUs with native
   * BF16 and on CUDA (about 3–5× faster here), else fp32; `'fp32'` gives torchvision-identical numbers.
   */
  precision?: Precision;
  /**
   * The classifier head: `'torchvision'` (default) keeps the arch's own, `'linear'` is one Linear layer on the pooled
   * features. For ResNets both are `fc`; for squeezenet1_1, `'linear'` replaces torchvision's 1×1 conv → ReLU →
   * average pool (whose ReLU can die and collapse training to one class) and is what a linear probe fits.
   */
  head?: HeadKind;
}

/** See `ModelOptions.head`. */
export type HeadKind = 'torchvision' | 'linear';
export const HEAD_KINDS = ['torchvision', 'linear'] as const;

/** What `model.explain` returns for one image. */
export interface Explanation {
  /** Grad-CAM heatmap in [0, 1], `height × width` (the transformed input's size), row-major. */
  heatmap: Float32Array;
  width: number;
  height: number;
  /** The explained class (the predicted one unless `classIndex` was given), its name and probability. */
  classIndex: number;
  label: string;
  probability: number;
  /** Every class's probability. */
  probabilities: Float32Array;
}

export interface ExplainOptions {
  /** Class to explain. Default: the predicted class. */
  classIndex?: number;
  /** Default `Transform.imagenetEval()`. */
  transform?: Transform;
}

export type ResNetOptions = Omit<ModelOptions, 'arch'> & { arch: ResNetArch };

/** What loading initial weights found. */
export interface LoadReport {
  /** File the weights came from, or null for random initialisation. */
  source: string | null;
  /** Head parameters left at their fresh initialisation because numClasses differs from the file (transfer case). */
  headReinitialized: string[];
  /** Human-readable summary, e.g. "kept new head fc.weight, fc.bias (file has 1000 classes)". */
  message: string;
}

export interface Prediction {
  /** Class name (or the index as a string when the model has no class names). */
  label: string;
  index: number;
  probability: number;
}

export interface PredictOptions {
  /** Number of classes returned per image, most probable first. Default min(5, numClasses). */
  topk?: number;
  /** Default `Transform.imagenetEval()` (Resize 256, CenterCrop 224, normalize). */
  transform?: Transform;
  /** Default: the model's `precision` (`'auto'`). */
  precision?: Precision;
  /** Images per forward pass. Default 16. */
  batchSize?: number;
  /** Decompression-bomb guard in pixels. Default PIL's limit. */
  maxPixels?: number;
  /**
   * JPEG DCT-domain downscaling (see `DatasetOptions.fastDecodeMinSide`). Default: the transform's first resize
   * (256 for the eval preset), so decoding never goes below what the resize keeps. Measured on imagenet-samples
   * with squeezenet1_1: top-1 0.617 → 0.616, predict 18.7 s → 12.1 s for 1000 photos. 0 turns it off.
   */
  fastDecodeMinSide?: number;
  /** Refuse images with decoder warnings (see `DatasetOptions.strict`). Default false (PIL's leniency). */
  strict?: boolean;
  /** Horizontal-flip test-time augmentation (logits averaged). Default false. */
  tta?: boolean;
}

export interface ForwardOptions {
  /** Default: the model's `precision` (`'auto'`). */
  precision?: Precision;
}

const MODEL_KEYS = ['arch', 'numClasses', 'classes', 'weights', 'device', 'dropout', 'channelsLast', 'fuse', 'precision', 'head', 'offline', 'hubBaseUrl', 'cacheDir', 'onProgress'] as const;
const META_FORMAT = 'torch-resnet-tl/1';

/** The Trainer whose fit the current async call chain belongs to (its own calls may change the model it trains). */
const fitContext = new AsyncLocalStorage<object>();

/** Class names from a file's `classes` metadata: a JSON array of `count` strings, else a CheckpointError naming key and file. */
function metadataClasses(file: string, raw: string, count: number): string[] {
  let classes: unknown;
  try {
    classes = JSON.parse(raw);
  } catch (e) {
    throw new CheckpointError(`${file}: metadata "classes" is not valid JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(classes) || classes.some((c) => typeof c !== 'string'))
    throw new CheckpointError(`${file}: metadata "classes" must be a JSON array of strings but is ${raw.slice(0, 80)}`);
  if (classes.length !== count) throw new CheckpointError(`${file}: metadata "classes" has ${classes.length} names but the model has ${count} classes`);
  return classes as string[];
}

/** The model a file saved by `save()` describes; every metadata problem is a CheckpointError naming the key and the file. */
function checkpointMetadata(file: string, meta: Record<string, string>): { arch: Arch; numClasses: number; classes?: string[]; head: HeadKind } {
  if (meta.format !== META_FORMAT || meta.arch === undefined)
    throw new CheckpointError(`${file}: not saved by torch-resnet-tl (no arch metadata); use Model.create({ arch, weights: path }) instead`);
  if (!ARCHS.includes(meta.arch as Arch)) throw new CheckpointError(`${file}: metadata "arch" is ${JSON.stringify(meta.arch.slice(0, 80))}; expected one of ${ARCHS.join(', ')}`);
  const numClasses = Number(meta.num_classes);
  if (!/^[0-9]+$/.test(meta.num_classes ?? '') || !Number.isSafeInteger(numClasses) || numClasses < 1)
    throw new CheckpointError(`${file}: metadata "num_classes" is ${JSON.stringify(meta.num_classes ?? null)}; expected a positive integer`);
  // files written before heads were recorded have torchvision's head
  const head = meta.head ?? 'torchvision';
  if (!(HEAD_KINDS as readonly string[]).includes(head)) throw new CheckpointError(`${file}: metadata "head" is ${JSON.stringify(head.slice(0, 80))}; expected one of ${HEAD_KINDS.join(', ')}`);
  const classes = meta.classes === undefined ? undefined : metadataClasses(file, meta.classes, numClasses);
  return { arch: meta.arch as Arch, numClasses, classes, head: head as HeadKind };
}

function validateModelOptions(opts: unknown): Required<Pick<ModelOptions, 'arch' | 'numClasses' | 'device' | 'channelsLast'>> & ModelOptions {
  const o = v.plainObject('options', opts) as ModelOptions & Record<string, unknown>;
  v.knownKeys('options', o, MODEL_KEYS);
  const arch = v.oneOf('arch', o.arch, ARCHS);
  let classes: string[] | undefined;
  if (o.classes !== undefined) {
    if (!Array.isArray(o.classes) || o.classes.length === 0 || o.classes.some((c) => typeof c !== 'string'))
      throw v.invalid('classes', 'non-empty array of strings', o.classes);
    classes = [...o.classes];
  }
  const numClasses = o.numClasses === undefined ? (classes?.length ?? 1000) : v.positiveInt('numClasses', o.numClasses);
  if (classes && classes.length !== numClasses)
    throw new InvalidOptionError('classes', `Expected ${numClasses} class names (numClasses) but received ${classes.length}`);
  if (o.dropout !== undefined) v.numberInRange('dropout', o.dropout, 0, 1, false);
  if (o.channelsLast !== undefined) v.bool('channelsLast', o.channelsLast);
  if (o.fuse !== undefined) v.bool('fuse', o.fuse);
  if (o.weights !== undefined && o.weights !== null) v.nonEmptyString('weights', o.weights);
  if (o.offline !== undefined) v.bool('offline', o.offline);
  if (o.precision !== undefined) v.oneOf('precision', o.precision, PRECISIONS);
  if (o.head !== undefined) v.oneOf('head', o.head, HEAD_KINDS);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw v.invalid('onProgress', 'function', o.onProgress);
  const device = resolveDevice(o.device);
  return { ...o, arch, numClasses, classes, device, channelsLast: o.channelsLast ?? true };
}

/** Resolves the `weights` option to a local file (downloading named weights when needed). */
async function resolveWeightsPath(arch: Arch, weights: string, hub: HubOptions): Promise<string> {
  if (weights === 'IMAGENET1K_V1' || weights === 'IMAGENET1K_V2' || weights === 'DEFAULT') return fetchWeights(arch, weights, hub);
  const path = resolvePath(weights);
  if (!existsSync(path))
    throw new InvalidOptionError('weights', `Expected 'IMAGENET1K_V1', 'IMAGENET1K_V2', 'DEFAULT', null or an existing file for weights but received ${JSON.stringify(weights)} (no such file)`);
  return path;
}

/** `predict`'s defaults (defined here only): top-5 (at most the class count), batches of 16, no TTA. */
export const PREDICT_DEFAULTS = { topk: 5, batchSize: 16, tta: false };

/**
 * An image classifier (any arch of the zoo) living in native memory. Methods that touch tensors run off the
 * JS thread and return Promises; calls on one model run one at a time, in call order.
 */
export class Model {
  protected handle: NativeModel | null;
  private queue: Promise<unknown> = Promise.resolve();
  readonly arch: Arch;
  readonly numClasses: number;
  /** Class names (from options or a saved file), or undefined. */
  classes: string[] | undefined;
  /** What loading the initial weights found. */
  readonly loadReport: LoadReport;
  private device_: string;
  /** Precision used when a call gives none (`'auto'` unless set at creation). */
  defaultPrecision: Precision = 'auto';
  /**
   * Set when the head is a prototype head (`withPrototypes`): the scale and the examples per class. Saved with the
   * weights; cleared when a Trainer trains the model (its head is no longer the prototypes).
   */
  prototypes: PrototypeInfo | undefined;

  private fitting?: object;

  protected constructor(handle: NativeModel, arch: Arch, numClasses: number, classes: string[] | undefined, report: LoadReport) {
    this.handle = handle;
    this.arch = arch;
    this.numClasses = numClasses;
    this.classes = classes;
    this.loadReport = report;
    this.device_ = handle.info().device;
  }

  /** Creates a model of any arch (`{ arch: 'squeezenet1_1' }` included), optionally with pretrained weights. */
  static async create(options: ModelOptions): Promise<Model> {
    return this.build(options);
  }

  protected static async build(options: ModelOptions): Promise<Model> {
    const o = validateModelOptions(options);
    const n = getNative();
    const handle = await n.createModel({ arch: o.arch, numClasses: o.numClasses, dropout: o.dropout ?? (o.arch === 'squeezenet1_1' ? 0.5 : 0), device: o.device, channelsLast: o.channelsLast, fuse: o.fuse ?? true, head: o.head ?? 'torchvision' });
    let report: LoadReport = { source: null, headReinitialized: [], message: 'random initialisation' };
    let classes = o.classes;
    if (o.weights !== undefined && o.weights !== null) {
      try {
        const path = await resolveWeightsPath(o.arch, o.weights, o);
        const r = await handle.loadWeights(path, true);
        report = {
          source: path,
          headReinitialized: r.skippedHead,
          message: r.skippedHead.length
            ? `loaded ${path}; kept the new ${o.numClasses}-class head (${r.skippedHead.join('; ')})`
            : `loaded ${path}`,
        };
        if (!classes && r.metadata.classes && !r.skippedHead.length) classes = metadataClasses(path, r.metadata.classes, o.numClasses);
        // a 1000-class head loaded from ImageNet weights (torchvision's files carry no class names): ImageNet's names
        else if (!classes && !r.metadata.classes && !r.skippedHead.length && o.numClasses === IMAGENET_CLASSES.length) classes = [...IMAGENET_CLASSES];
      } catch (e) {
        handle.dispose();
        throw e;
      }
    }
    const Ctor = this as unknown as new (h: NativeModel, a: Arch, n: number, c: string[] | undefined, r: LoadReport) => Model;
    const model = new Ctor(handle, o.arch, o.numClasses, classes, report);
    model.defaultPrecision = o.precision ?? 'auto';
    return model;
  }

  /** @internal Creates the class the arch belongs to (ResNet for the ResNets, Model for squeezenet1_1), as `load` does. */
  static _createForArch(options: ModelOptions): Promise<Model> {
    return (options.arch !== 'squeezenet1_1' ? ResNetCtor() : Model).build(options);
  }

  /** Restores a model saved by `save()` (arch, class names and weights), strictly. */
  static async load(path: string, options: { device?: string; channelsLast?: boolean; fuse?: boolean; precision?: Precision } = {}): Promise<Model> {
    v.nonEmptyString('path', path);
    const abs = resolvePath(path);
    if (!existsSync(abs)) throw new CheckpointError(`${abs}: no such file`);
    const raw = await getNative().readCheckpointMetadata(abs);
    const meta = checkpointMetadata(abs, raw);
    const prototypes = parsePrototypeInfo(abs, raw.prototypes);
    const Target = meta.arch !== 'squeezenet1_1' ? ResNetCtor() : Model;
    const model = await Target.build({ ...meta, weights: abs, device: options.device, channelsLast: options.channelsLast, fuse: options.fuse, precision: options.precision });
    if (model.loadReport.headReinitialized.length) {
      model.dispose();
      throw new CheckpointError(`${abs}: metadata num_classes ${meta.numClasses} does not match the file's head (${model.loadReport.headReinitialized.join('; ')})`);
    }
    model.prototypes = prototypes;
    return model;
  }

  /** Current device (`'cpu'`, `'cuda:0'`). */
  get device(): string {
    return this.device_;
  }

  protected native(): NativeModel {
    if (!this.handle) throw new DisposedError('Model');
    return this.handle;
  }

  /** Runs `fn` after every earlier call on this model has settled. */
  protected enqueue<T>(fn: (h: NativeModel) => Promise<T>): Promise<T> {
    const h = this.native();
    const run = this.queue.then(
      () => fn(h),
      () => fn(h),
    );
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** @internal Resolves 'auto' for this model's device. */
  precision(p: unknown): 'fp32' | 'bf16' | 'fp16' {
    const precision = p === undefined ? this.defaultPrecision : v.oneOf('precision', p, PRECISIONS);
    if (precision === 'fp16' && !this.device_.startsWith('cuda'))
      throw new InvalidOptionError('precision', `precision 'fp16' needs a CUDA device (the model is on ${this.device_}); use 'bf16' on the CPU`);
    if (precision !== 'auto') return precision;
    return this.device_.startsWith('cuda') || version().cpu.bf16 ? 'bf16' : 'fp32';
  }

  /** Raw logits `[N, numClasses]` for a float batch `[N, 3, H, W]` (eval mode, no gradients). */
  forward(input: Float32Array, shape: number[], options: ForwardOptions = {}): Promise<TensorData> {
    const t = v.tensorInput(input, shape, 4);
    const precision = this.precision(options.precision);
    return this.enqueue((h) => h.forward(t.data, t.shape, { precision, embed: false }));
  }

  /** Pooled features before the head `[N, featureDim]` (eval mode, no gradients). */
  embed(input: Float32Array, shape: number[], options: ForwardOptions = {}): Promise<TensorData> {
    const t = v.tensorInput(input, shape, 4);
    const precision = this.precision(options.precision);
    return this.enqueue((h) => h.forward(t.data, t.shape, { precision, embed: true }));
  }

  /** Size of the pooled feature vector that `embed` returns. */
  get featureDim(): number {
    return this.native().info().featureDim;
  }

  /** Whether inference runs fused (`ModelOptions.fuse`). */
  get fused(): boolean {
    return this.native().info().fuse;
  }

  /**
   * Saves weights with metadata (arch, numClasses, class names), atomically. `.safetensors` by extension,
   * otherwise PyTorch's zip format, which `torch.load` + `load_state_dict(strict=True)` accept.
   */
  save(path: string): Promise<void> {
    v.nonEmptyString('path', path);
    const ext = extname(path).toLowerCase();
    // .safetensors is written as safetensors, .pth/.pt in PyTorch's zip format; other extensions are refused
    // rather than written in a format their name does not promise
    if (!['.pth', '.pt', '.safetensors'].includes(ext)) throw v.invalid('path', 'a .pth, .pt or .safetensors file name', path);
    const meta: Record<string, string> = { format: META_FORMAT, arch: this.arch, num_classes: String(this.numClasses), head: this.head };
    if (this.classes) meta.classes = JSON.stringify(this.classes);
    if (this.prototypes) meta.prototypes = JSON.stringify(this.prototypes);
    const abs = resolvePath(path);
    return this.enqueue((h) => h.save(abs, meta));
  }

  /** Moves the model to another device; throws DeviceError listing the available ones. */
  async to(device: string): Promise<this> {
    this.assertNotTraining('to');
    const d = resolveDevice(device);
    this.device_ = await this.enqueue((h) => h.to(d));
    return this;
  }

  /** Number of parameters (weights and biases, not buffers). */
  parameterCount(): number {
    return this.native().parameterCount();
  }

  /** A copy of every parameter and buffer, by torchvision name. */
  stateDict(): Promise<Record<string, TensorData>> {
    return this.enqueue((h) => h.stateDict());
  }

  /**
   * One plain SGD step (train mode, cross-entropy, `p -= lr * grad`): the reference step used by parity checks.
   * Returns the loss. `options.precision`: autocast of the forward pass, default `'fp32'` (not the model's default).
   * Training proper goes through `Trainer`.
   */
  sgdStep(input: Float32Array, shape: number[], labels: ArrayLike<number>, lr: number, options: ForwardOptions = {}): Promise<number> {
    this.assertNotTraining('sgdStep');
    const t = v.tensorInput(input, shape, 4);
    v.positiveNumber('lr', lr);
    const precision = options.precision === undefined ? 'fp32' : this.precision(options.precision);
    if (labels.length !== shape[0]) throw v.invalid('labels', `${shape[0]} labels`, labels);
    for (let i = 0; i < labels.length; i++)
      if (!Number.isInteger(labels[i]) || labels[i] < 0 || labels[i] >= this.numClasses)
        throw v.invalid(`labels[${i}]`, `integer in [0, ${this.numClasses - 1}]`, labels[i]);
    return this.enqueue((h) => h.sgdStep(t.data, t.shape, labels, lr, precision));
  }

  /**
   * Classifies images (file paths or encoded Buffers): decoded and transformed on native threads (default
   * transform: `Transform.imagenetEval()`), batched, softmax, top-k. One image gives one list; an array gives a
   * list per image. `label` is the class name when the model has them, else the index as a string.
   */
  predict(input: string | Buffer, options?: PredictOptions): Promise<Prediction[]>;
  predict(inputs: (string | Buffer)[], options?: PredictOptions): Promise<Prediction[][]>;
  async predict(input: string | Buffer | (string | Buffer)[], options: PredictOptions = {}): Promise<Prediction[] | Prediction[][]> {
    const single = !Array.isArray(input);
    const items = single ? [input] : input;
    if (items.length === 0) return [];
    const o = v.plainObject('options', options);
    v.knownKeys('options', o, ['topk', 'transform', 'precision', 'batchSize', 'maxPixels', 'fastDecodeMinSide', 'strict', 'tta']);
    const topk = options.topk === undefined ? Math.min(PREDICT_DEFAULTS.topk, this.numClasses) : v.positiveInt('topk', options.topk);
    const transform = options.transform ?? Transform.imagenetEval();
    if (!(transform instanceof Transform)) throw v.invalid('transform', 'Transform', transform);
    const precision = this.precision(options.precision);
    const batchSize = options.batchSize === undefined ? PREDICT_DEFAULTS.batchSize : v.positiveInt('batchSize', options.batchSize);
    const paths: string[] = [];
    const buffers: (Buffer | null)[] = [];
    items.forEach((it, i) => {
      if (typeof it === 'string') {
        paths.push(resolvePath(it));
        buffers.push(null);
      } else if (Buffer.isBuffer(it)) {
        paths.push(`<buffer ${i}>`);
        buffers.push(it);
      } else throw v.invalid(single ? 'input' : `inputs[${i}]`, 'file path or Buffer', it);
    });
    const decode = decodeOptions(options, transform.resizeFloor);
    const tta = options.tta === undefined ? PREDICT_DEFAULTS.tta : v.bool('tta', options.tta);
    const json = JSON.stringify(transform.ops);
    const raw = await this.enqueue((h) => h.predict({ paths, buffers }, json, decode, { topk, precision, batchSize, workers: getNumThreads(), prefetch: LOADER_DEFAULTS.prefetch, tta }));
    const out = raw.map((r) =>
      Array.from(r.index, (index, j) => ({ index, label: this.classes?.[index] ?? String(index), probability: r.probability[j] })),
    );
    return single ? out[0] : out;
  }

  /** Loads weights from a `.pth`/`.safetensors` file, strictly (every key and shape must match). */
  async loadWeights(path: string): Promise<void> {
    this.assertNotTraining('loadWeights');
    const abs = resolvePath(v.nonEmptyString('path', path));
    if (!existsSync(abs)) throw new CheckpointError(`${abs}: no such file`);
    await this.enqueue((h) => h.loadWeights(abs, false));
  }

  /** The head's kind (see `ModelOptions.head`). */
  get head(): HeadKind {
    return this.native().info().head as HeadKind;
  }

  /**
   * Replaces the head with a freshly initialised one of another kind; the backbone keeps its weights. A Trainer
   * made before this trains the old head: make a new one.
   */
  async setHead(head: HeadKind): Promise<void> {
    this.assertNotTraining('setHead');
    const kind = v.oneOf('head', head, HEAD_KINDS);
    await this.enqueue((h) => h.setHead(kind));
  }

  /**
   * Few-shot classes without training: a new model with this backbone whose head classifies by cosine similarity to
   * class prototypes, each the normalised mean of the L2-normalised embeddings of its example images. Scores are
   * s·cos(embedding, prototype) as one bias-free Linear layer (rows: prototype·s/r, r the examples' mean embedding
   * norm), so the prediction is exactly the nearest prototype and `predict`, `save`/`load`, `exportOnnx` and the
   * Trainer work unchanged. On a prototype model, classes the call does not name keep their prototypes: adding or
   * replacing a class is one call. This model is not changed.
   *
   *     const fewShot = await model.withPrototypes({ ants: ['a1.jpg', 'a2.jpg'], bees: ['b1.jpg', 'b2.jpg'] });
   *     const more = await fewShot.withPrototypes({ wasps: ['w1.jpg', 'w2.jpg'] });
   */
  withPrototypes(examples: Record<string, (string | Buffer)[]>, options: PrototypeOptions = {}): Promise<Model> {
    return withPrototypes(this, examples, options);
  }

  /**
   * Grad-CAM (Selvaraju et al. 2017) on the last convolutional feature map (`layer4` for ResNets, `features` for
   * squeezenet1_1): where the image supports the class. fp32, eval mode, off the JS thread.
   */
  async explain(image: string | Buffer, options: ExplainOptions = {}): Promise<Explanation> {
    const o = v.plainObject('options', options);
    v.knownKeys('options', o, ['classIndex', 'transform']);
    const transform = options.transform ?? Transform.imagenetEval();
    if (!(transform instanceof Transform)) throw v.invalid('transform', 'Transform', transform);
    if (options.classIndex !== undefined) {
      v.nonNegativeInt('classIndex', options.classIndex);
      if (options.classIndex >= this.numClasses) throw v.invalid('classIndex', `integer in [0, ${this.numClasses - 1}]`, options.classIndex);
    }
    const input = await transform.apply(image);
    if (input.dtype !== 'float32') throw v.invalid('transform', 'a transform ending in normalize (float output)', transform.ops.map((op) => op.op).join(' → '));
    const r = await this.enqueue((h) => h.explain(input.data as Float32Array, [1, ...input.shape], [options.classIndex ?? -1]));
    const [, height, width] = r.heatmap.shape;
    const classIndex = r.classIndex[0];
    const probabilities = r.probabilities.data as Float32Array;
    return { heatmap: r.heatmap.data as Float32Array, width, height, classIndex, label: this.classes?.[classIndex] ?? String(classIndex), probability: probabilities[classIndex], probabilities };
  }

  /**
   * Writes the model (its current head, eval mode, fp32) as an ONNX file that onnxruntime (Node, web, mobile) and
   * PyTorch's `onnx` package read: input `input` `[batch, 3, height, width]` (normalised RGB, as in training), output
   * `logits` `[batch, numClasses]`; initializers keep PyTorch's parameter names; arch, head, class names and the
   * normalisation are in the metadata. Atomic write.
   */
  exportOnnx(path: string, options: OnnxExportOptions = {}): Promise<{ path: string; bytes: number; nodes: number; opset: number }> {
    return exportOnnx(this, path, options);
  }

  /** Stage names usable as freezing boundaries (`trainFrom`), earliest first; the last one is the head. */
  get stages(): string[] {
    return this.native().info().stages;
  }

  /**
   * @internal Claims the model for `owner`'s fit and runs it: a second concurrent fit is a BusyError, and so are
   * calls from outside that fit that would change what it trains (loadWeights, setHead, to, sgdStep).
   */
  async _fit<T>(owner: object, fn: () => Promise<T>): Promise<T> {
    if (this.fitting) throw new BusyError(`this ${this.arch} model is being trained by another Trainer.fit; await it (or abort its signal) before starting another`);
    this.fitting = owner;
    this.prototypes = undefined;
    try {
      return await fitContext.run(owner, fn);
    } finally {
      this.fitting = undefined;
    }
  }

  /** Refuses `what` while a fit this call does not belong to trains the model. */
  protected assertNotTraining(what: string): void {
    if (this.fitting && fitContext.getStore() !== this.fitting)
      throw new BusyError(`${what} would change the model while Trainer.fit trains it; await the fit (or abort its signal) first`);
  }

  /** @internal Native handle for the Trainer. */
  _handle(): NativeModel {
    return this.native();
  }

  /** @internal Runs native work in this model's queue. */
  _run<T>(fn: (h: NativeModel) => Promise<T>): Promise<T> {
    return this.enqueue(fn);
  }

  /** Frees native memory now (otherwise the garbage collector does it). Further calls throw DisposedError. */
  dispose(): void {
    const h = this.handle;
    this.handle = null;
    if (h) void this.queue.then(() => h.dispose());
  }
}

let resnetCtor: typeof Model | undefined;
function ResNetCtor(): typeof Model {
  return resnetCtor ?? Model;
}

/** A ResNet / ResNeXt / Wide ResNet with torchvision's layout; see `Model` for every method. */
export class ResNet extends Model {
  /** Creates a ResNet, optionally with ImageNet weights, its head replaced by `numClasses` outputs. */
  static async create(options: ResNetOptions): Promise<ResNet> {
    if (options && (options as ModelOptions).arch === 'squeezenet1_1')
      throw v.invalid('arch', 'a ResNet arch (use Model.create for squeezenet1_1)', 'squeezenet1_1');
    return (await this.build(options as ModelOptions)) as ResNet;
  }
}
resnetCtor = ResNet;
