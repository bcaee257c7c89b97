import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fromNative, NativeLoadError } from './errors';
import { nonNegativeInt, numberInRange } from './validate';
import { debianPackages, distribution, findLibtorch, LibtorchInfo, libtorchLibraries, pickBinary, PLATFORM, prebuiltTags, selectedKind } from './binary';

/** A tensor crossing the native boundary: flat data plus shape. */
export interface TensorData {
  data: Float32Array;
  shape: number[];
  dtype?: string;
}

export interface NativeLoadReport {
  missing: string[];
  unexpected: string[];
  mismatched: string[];
  skippedHead: string[];
  metadata: Record<string, string>;
}

export interface NativeModelInfo {
  arch: string;
  numClasses: number;
  device: string;
  channelsLast: boolean;
  fuse: boolean;
  featureDim: number;
  headPrefix: string;
  /** 'torchvision' | 'linear' */
  head: string;
  stages: string[];
}

export interface NativeModel {
  forward(data: Float32Array, shape: number[], opts: { precision: string; embed: boolean }): Promise<TensorData>;
  loadWeights(path: string, allowHeadMismatch: boolean): Promise<NativeLoadReport>;
  save(path: string, metadata: Record<string, string>): Promise<void>;
  to(device: string): Promise<string>;
  sgdStep(data: Float32Array, shape: number[], labels: ArrayLike<number>, lr: number, precision: string): Promise<number>;
  stateDict(): Promise<Record<string, TensorData>>;
  parameterCount(): number;
  info(): NativeModelInfo;
  predict(samples: NativeSamples, transform: string, decode: NativeDecodeOptions, opts: { topk: number; precision: string; batchSize: number; workers: number; prefetch: number; tta: boolean }): Promise<{ index: Int32Array; probability: Float32Array }[]>;
  setHead(head: string): Promise<void>;
  exportGraph(inputName: string): Promise<NativeGraph>;
  explain(data: Float32Array, shape: number[], classIndex: number[]): Promise<{ heatmap: TensorData; probabilities: TensorData; classIndex: number[] }>;
  dispose(): void;
}

/** A model's eval-mode forward pass in ONNX operators (cpp/export/graph.h). */
export interface NativeGraph {
  output: string;
  nodes: { op: string; name: string; inputs: string[]; outputs: string[]; ints: Record<string, number[]>; intAttrs: Record<string, number>; floatAttrs: Record<string, number> }[];
  initializers: (TensorData & { name: string })[];
}

/** Linear-probe settings (every field filled by lib/transfer.ts). */
export interface NativeProbeConfig {
  l2Grid: number[];
  folds: number;
  maxIter: number;
  seed: number;
  maxCvSamples: number;
}

/** Embeddings of a dataset held natively (cpp/transfer/feature_bank.h). */
export interface NativeFeatureBank {
  add(batch: NativeBatch, precision: string, bnSamples: number): Promise<number>;
  assess(opts: { numClasses: number; k: number; probe: NativeProbeConfig }): Promise<{ knn: number; linear: number; l2: number; logme: number; bnShift: number | null; bnLayers: number; count: number; classCounts: number[] }>;
  fitHead(opts: { numClasses: number; probe: NativeProbeConfig }): Promise<{ l2: number; cvAccuracy: number; trainAccuracy: number; trainLoss: number }>;
  fitPrototypes(opts: { numClasses: number; scale: number; base: { data: Float32Array; shape: number[] } | null }): Promise<{ scale: number; looAccuracy: number | null; looSamples: number; fitted: number[] }>;
  size(): number;
}

/** The caching CPU allocator's state. */
export interface CpuCacheStats {
  /** Bytes held in the free lists. */
  cachedBytes: number;
  /** Most bytes kept in the free lists. */
  limitBytes: number;
  /** Allocations served from the cache. */
  hits: number;
  /** Allocations that needed fresh memory. */
  misses: number;
}

/** One visible GPU. */
export interface CudaDeviceInfo {
  /** `'cuda:N'`, usable as a `device` option. */
  device: string;
  /** e.g. `'NVIDIA H200'`. */
  name: string;
  /** Bytes of device memory. */
  totalMemory: number;
  /** e.g. `'9.0'`. */
  computeCapability: string;
}

/** Data-parallel: a step's (or cached epoch's) gradient all-reduces: buckets, those started during backward, seconds waited. */
export interface NativeReduceStats {
  buckets: number;
  bucketsDuringBackward: number;
  allReduceWait: number;
}

export interface NativeVersion {
  libtorch: string;
  /** The libtorch this binary was built against: 'system' (Debian's), 'pypi' (PyPI's torch) or 'custom' (a folder). */
  variant: string;
  cuda: boolean;
  cudaAvailable: boolean;
  cpu: { bf16: boolean; avx512: boolean };
  threads: number;
  napi: number;
  /** The c10d backends of this build for data-parallel training ('gloo', 'nccl'); empty: none. */
  distributed: string[];
}

export interface NativeSamples {
  paths: string[];
  labels?: ArrayLike<number>;
  buffers?: (Buffer | null)[];
}

export interface NativeDecodeOptions {
  maxPixels: number;
  fastDecodeMinSide: number;
  strict: boolean;
}

export interface NativeBatch {
  images(): TensorData;
  labels(): { data: Float32Array | BigInt64Array; shape: number[]; dtype: string };
  info(): { size: number; indices: number[]; skipped: { path: string; reason: string }[]; softLabels: boolean };
  release(): void;
}

export interface NativeLoader {
  start(epoch: number): Promise<void>;
  next(): Promise<NativeBatch | null>;
  stop(): Promise<void>;
  length(): number;
  cacheBytes(): number;
  setDeviceAugment(on: boolean): void;
  setShard(rank: number, worldSize: number, seed: number): void;
}

export interface NativeLoaderConfig {
  batchSize: number;
  shuffle: boolean;
  seed: number;
  dropLast: boolean;
  workers: number;
  prefetch: number;
  onError: 'throw' | 'skip';
  pinMemory: boolean;
  deviceAugment: boolean;
  /** data-parallel shard: this rank of worldSize (1: every sample) */
  rank: number;
  worldSize: number;
  /** decoded-image cache bound in bytes (0: off) */
  cache: number;
  mixupAlpha: number;
  cutmixAlpha: number;
  mixupP: number;
  cutmixP: number;
  numClasses: number;
}

export interface NativeTrainerConfig {
  optimizer: string;
  lr: number;
  backboneLr: number;
  weightDecay: number;
  noDecayNormBias: boolean;
  momentum: number;
  nesterov: boolean;
  dampening: number;
  beta1: number;
  beta2: number;
  eps: number;
  alpha: number;
  trainFrom: number;
  freezeBatchNormStats: 'none' | 'frozen' | 'all';
  labelSmoothing: number;
  clipGradNorm: number;
  accumulate: number;
  precision: string;
  lossScale: { enabled: boolean; initScale: number; growthFactor: number; backoffFactor: number; growthInterval: number };
}

export interface NativeTrainer {
  step(batch: NativeBatch, headLr: number, backboneLr: number, target?: NativeBatch, lambda?: number): Promise<{ loss: number; correct: number; count: number; stepped: boolean; skipped: boolean; lossScale: number; adaptLoss: number; domainAccuracy: number } & NativeReduceStats>;
  setAdaptation(cfg: { method: string; weight: number; hidden: number; kernels: number }): Promise<void>;
  eval(batch: NativeBatch, tta: boolean): Promise<{ lossSum: number; logits: TensorData; labels: Int32Array }>;
  /** Builds the session (freezing, optimizer) under the model's lock; resolves with the trainable parameter count. */
  init(): Promise<number>;
  /** Resolves with the trainable parameter count. */
  setTrainFrom(stage: number): Promise<number>;
  joinProcessGroup(o: { rank: number; worldSize: number; masterAddr: string; masterPort: number; timeoutMs: number; bucketBytes: number; backend: string; overlap: boolean }): Promise<void>;
  allreduceSum(values: number[]): Promise<number[]>;
  broadcastModel(root: number): Promise<number>;
  averageBatchNormStats(): Promise<number>;
  saveOptimizer(path: string): Promise<void>;
  loadOptimizer(path: string): Promise<void>;
  cacheBatch(batch: NativeBatch, view: number): Promise<number>;
  trainCachedEpoch(o: { epoch: number; datasetSize: number; batchSize: number; shuffle: boolean; dropLast: boolean; seed: number; views: number; lrs: [number, number][] }): Promise<{ loss: number; correct: number; count: number } & NativeReduceStats>;
  clearCache(): Promise<number>;
  cacheEvalBatch(batch: NativeBatch): Promise<number>;
  evalCached(): Promise<{ lossSum: number; logits: TensorData; labels: Int32Array; indices: number[] }>;
}

export interface NativeAddon {
  NativeTrainer: new (model: NativeModel, config: NativeTrainerConfig) => NativeTrainer;
  NativeFeatureBank: new (model: NativeModel) => NativeFeatureBank;
  getRngState(): Buffer;
  setRngState(state: Buffer): void;
  manualSeed(seed: number): void;
  NativeLoader: new (samples: NativeSamples, transform: string, decode: NativeDecodeOptions, config: NativeLoaderConfig) => NativeLoader;
  scanImageFolder(root: string, extensions?: string[]): Promise<{ classes: string[]; paths: string[]; labels: Int32Array; skipped: { path: string; reason: string }[] }>;
  transformImage(samples: NativeSamples, transform: string, seed: number, decode: NativeDecodeOptions): Promise<TensorData & { dtype: string }>;
  encodeJpeg(data: Uint8Array, shape: number[], quality: number): Promise<Buffer>;
  setCpuCacheLimit(bytes: number): void;
  emptyCpuCache(): void;
  cpuCacheStats(): CpuCacheStats;
  /** Ends the process with `code` without joining libuv's thread pool (optional: a binary built before it lacks it). */
  exitNow?(code: number): never;
  createModel(opts: { arch: string; numClasses: number; dropout: number; device: string; channelsLast: boolean; fuse: boolean; head: string }): Promise<NativeModel>;
  readCheckpoint(path: string): Promise<{ keys: string[]; tensors: Record<string, TensorData>; metadata: Record<string, string> }>;
  readCheckpointMetadata(path: string): Promise<Record<string, string>>;
  version(): NativeVersion;
  devices(): string[];
  cudaAvailable(): boolean;
  cudaDeviceCount(): number;
  cudaDevices(): CudaDeviceInfo[];
  setCudnnBenchmark(on: boolean): void;
  cudnnBenchmark(): boolean;
  setAllowTF32(on: boolean): void;
  allowTF32(): boolean;
  setNumThreads(n: number): void;
  setComputeNice(nice: number): void;
  getComputeNice(): number;
  getNumThreads(): number;
  architectures(): string[];
  /** The native transform op table's names (cpp/data/transforms.h). */
  transformOps(): string[];
  allreduceBenchmark(o: { rank: number; worldSize: number; masterAddr: string; masterPort: number; timeoutMs: number; bucketBytes: number; backend: string; numel: number; iterations: number }): Promise<number[]>;
}

let addon: NativeAddon | undefined;

/** This package's version (package.json). */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

/** The package folder (holding package.json), from lib/ under ts-jest or dist/cjs/ when built. */
export function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'torch-resnet-tl') return dir;
    const up = dirname(dir);
    if (up === dir) return join(__dirname, '..', '..');
    dir = up;
  }
}

/** What getNative() loaded: the libtorch found and the binary that fits it. */
export interface LoadedBinary {
  libtorch: LibtorchInfo;
  path: string;
  source: 'local build' | 'prebuilt';
}
let loaded: LoadedBinary | undefined;

/** The libtorch and binary in use (after the first native call), for `doctor` and error messages. */
export function loadedBinary(): LoadedBinary | undefined {
  return loaded;
}

/**
 * Ends the process now with `code`. `process.exit` joins libuv's thread pool first, so it waits for the native call
 * in flight (a training step can take seconds); once the addon is loaded this exits without that wait.
 */
export function exitProcessNow(code: number): never {
  if (addon?.exitNow) addon.exitNow(code);
  process.exit(code);
}

/** The fixes for this machine, as commands: the set-up command first, then what it would run. */
function fixes(kind: ReturnType<typeof selectedKind>): string {
  const d = distribution();
  const pk = debianPackages(kind);
  const apt = ['debian', 'ubuntu'].includes(d.id) ? `sudo apt-get install ${pk.runtime.join(' ')}` : 'install libtorch, libjpeg-turbo and libpng with your package manager';
  return (
    'Possible fixes:\n' +
    `  - \`npx torch-resnet-tl setup\` installs what is missing for this libtorch (${d.name || 'unknown system'}: ${apt}),\n` +
    '    builds from source when no prebuilt binary fits, and checks itself; `npx torch-resnet-tl doctor` shows what it finds\n' +
    '  - your own PyTorch instead: TORCH_RESNET_TL_LIBTORCH=python (the python3 on PATH, or TORCH_RESNET_TL_PYTHON=/path/to/python)\n' +
    '  - a libtorch folder (PyTorch\'s zip, CPU or CUDA): TORCH_RESNET_TL_LIBTORCH=/path/to/libtorch, then `npx torch-resnet-tl setup`\n' +
    '  - in a source checkout: `bash scripts/setup.sh`\n'
  );
}

/** Loads the addon once: the binary made for the libtorch found (a local build, else the package's prebuilt). */
export function getNative(): NativeAddon {
  if (addon) return addon;
  const root = packageRoot();
  const kind = selectedKind();
  const { found, why } = findLibtorch(root);
  if (!found)
    throw new NativeLoadError(`Could not load the torch-resnet-tl native addon: no libtorch found for TORCH_RESNET_TL_LIBTORCH=${process.env.TORCH_RESNET_TL_LIBTORCH || 'system'}: ${why}\n${fixes(kind)}`);
  const bin = pickBinary(root, found);
  if (!bin) {
    const tags = prebuiltTags(root);
    throw new NativeLoadError(
      `Could not load the torch-resnet-tl native addon: no binary for libtorch ${found.version} (${found.kind}, ${found.libDir}); ` +
        `this package has prebuilt binaries for ${tags.length ? tags.join(', ') : 'no libtorch on this platform'} (${PLATFORM}).\n` +
        `Build one for it: \`npx torch-resnet-tl setup\` (from source, against ${found.libDir}).\n${fixes(kind)}`,
    );
  }
  try {
    if (found.kind !== 'system') {
      // the binary names libtorch by soname: load this environment's libraries first (no LD_LIBRARY_PATH needed)
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      const preload = require(join(dirname(bin.path), 'tl_preload.node')) as { open(path: string): void };
      for (const lib of libtorchLibraries(found)) preload.open(lib);
    }
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    addon = require(bin.path) as NativeAddon;
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new NativeLoadError(`Could not load the torch-resnet-tl native addon ${bin.path} (${bin.source} for libtorch ${found.version}, ${found.libDir}): ${msg}\n${fixes(kind)}`, { cause: err });
  }
  loaded = { libtorch: found, path: bin.path, source: bin.source };
  addon = mapErrors(addon);
  // as PyTorch: OMP_NUM_THREADS, when set (the launcher sets a share of the cores per rank), is the intra-op threads
  const omp = Number(process.env.OMP_NUM_THREADS);
  if (Number.isInteger(omp) && omp > 0) addon.setNumThreads(omp);
  const nice = process.env.TORCH_RESNET_TL_COMPUTE_NICE;
  addon.setComputeNice(nice === undefined || nice === '' ? COMPUTE_NICE_DEFAULT : computeNice('TORCH_RESNET_TL_COMPUTE_NICE', Number(nice)));
  return addon;
}

/** Nice value of native compute threads unless setComputePriority / TORCH_RESNET_TL_COMPUTE_NICE say otherwise. */
export const COMPUTE_NICE_DEFAULT = 10;

/** A compute nice value (integer 0..19), else an InvalidOptionError naming `name`. */
export function computeNice(name: string, nice: unknown): number {
  return numberInRange(name, nonNegativeInt(name, nice), 0, 19);
}

/**
 * The one place where errors crossing the addon become typed (fromNative): every function and constructor of the
 * addon, and every method of every object it returns (models, loaders, batches, trainers, feature banks), whether
 * the error is thrown synchronously or rejects a promise. Returned native objects are handed out behind a proxy that
 * does the mapping; a proxy passed back as an argument is replaced by its object (the addon recognises its own
 * objects by identity).
 */
export function mapErrors(raw: NativeAddon): NativeAddon {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(raw as unknown as Record<string, unknown>)) {
    if (typeof value !== 'function') out[name] = value;
    else if (/^Native[A-Z]/.test(name)) out[name] = mappedClass(value as new (...a: unknown[]) => object);
    else out[name] = mappedFunction(value as (...a: unknown[]) => unknown, raw);
  }
  return out as unknown as NativeAddon;
}

/** Native object → its proxy, and back. */
const proxyOf = new WeakMap<object, object>();
const targetOf = new WeakMap<object, object>();

/** An instance of one of the addon's classes (NativeModel, NativeBatch, …), not plain data. */
function isNativeObject(v: unknown): v is object {
  if (v === null || typeof v !== 'object' || targetOf.has(v)) return false;
  const ctor = (Object.getPrototypeOf(v) as { constructor?: { name?: string } } | null)?.constructor;
  return typeof ctor?.name === 'string' && /^Native[A-Z]/.test(ctor.name);
}

const unwrapArg = (a: unknown): unknown => (a !== null && typeof a === 'object' && targetOf.get(a)) || a;
const wrapResult = (v: unknown): unknown => (isNativeObject(v) ? mappedObject(v) : v);

/** `fn` with `self` as `this`: proxies in its arguments unwrapped, errors mapped, native objects it returns wrapped. */
function mappedFunction(fn: (...a: unknown[]) => unknown, self: unknown): (...a: unknown[]) => unknown {
  return (...args: unknown[]) => {
    let r: unknown;
    try {
      r = fn.apply(self, args.map(unwrapArg));
    } catch (e) {
      throw fromNative(e);
    }
    // duck-typed: the addon's promises may come from another realm (e.g. under a test sandbox)
    const thenable = r !== null && typeof r === 'object' && typeof (r as Promise<unknown>).then === 'function';
    return thenable ? (r as Promise<unknown>).then(wrapResult, (e: unknown) => Promise.reject(fromNative(e))) : wrapResult(r);
  };
}

function mappedClass(ctor: new (...a: unknown[]) => object): unknown {
  return new Proxy(ctor, {
    construct(target, args) {
      try {
        return mappedObject(Reflect.construct(target, args.map(unwrapArg)) as object);
      } catch (e) {
        throw fromNative(e);
      }
    },
  });
}

/** The proxy of a native object (one per object): each method mapped, the same function on every read. */
function mappedObject<T extends object>(obj: T): T {
  const known = proxyOf.get(obj);
  if (known) return known as T;
  const methods = new Map<PropertyKey, unknown>();
  const proxy = new Proxy(obj, {
    get(target, key) {
      const v = Reflect.get(target, key, target);
      if (typeof v !== 'function' || key === 'constructor') return v;
      if (!methods.has(key)) methods.set(key, mappedFunction(v as (...a: unknown[]) => unknown, target));
      return methods.get(key);
    },
  });
  proxyOf.set(obj, proxy);
  targetOf.set(proxy, obj);
  return proxy;
}
