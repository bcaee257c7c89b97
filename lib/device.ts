import { computeNice, CpuCacheStats, CudaDeviceInfo, getNative, NativeVersion } from './native';
import { bool, nonNegativeInt, positiveInt } from './validate';
import { DeviceError } from './errors';

/** Devices this process can use: `'cpu'` and one `'cuda:N'` per visible GPU. */
export function devices(): string[] {
  return getNative().devices();
}

export const cuda = {
  /** True when libtorch was built with CUDA and a GPU is visible. */
  isAvailable(): boolean {
    return getNative().cudaAvailable();
  },
  /** Number of visible CUDA devices (0 without CUDA). */
  deviceCount(): number {
    return getNative().cudaDeviceCount();
  },
  /** Visible GPUs with name, memory and compute capability (empty without CUDA). */
  devices(): CudaDeviceInfo[] {
    return getNative().cudaDevices();
  },
  /**
   * cuDNN autotuning (torch.backends.cudnn.benchmark): the first batch of each input shape times the convolution
   * algorithms and keeps the fastest. Worth it for fixed-size training batches. Default false.
   */
  setCudnnBenchmark(on: boolean): void {
    getNative().setCudnnBenchmark(bool('on', on));
  },
  cudnnBenchmark(): boolean {
    return getNative().cudnnBenchmark();
  },
  /**
   * TensorFloat-32 for fp32 convolutions and matrix products on Ampere and later GPUs: faster, with ~1e-3 relative
   * error. `false` gives IEEE fp32 (what the parity checks use). Default: libtorch's (on for cuDNN convolutions).
   */
  setAllowTF32(on: boolean): void {
    getNative().setAllowTF32(bool('on', on));
  },
  allowTF32(): boolean {
    return getNative().allowTF32();
  },
};

/** Sets the intra-op thread count used by every native call (default: all cores). */
export function setNumThreads(n: number): void {
  getNative().setNumThreads(positiveInt('threads', n));
}

/**
 * Scheduling priority of native compute (intra-op threads, loader threads, the thread running each call) as a
 * Linux nice value 0–19; the JS thread keeps its own. Default 10 (`COMPUTE_NICE_DEFAULT`): compute yields to the
 * event loop, so timers and requests are served within milliseconds even when other processes saturate the cores
 * (measured: test/native/responsive.test.ts), at the price of a smaller CPU share against other busy processes.
 * 0 competes on equal terms (dedicated training machines). Applies to threads from their next call on; a thread
 * already lowered is not raised again (that needs CAP_SYS_NICE). Also settable as TORCH_RESNET_TL_COMPUTE_NICE.
 */
export function setComputePriority(nice: number): void {
  getNative().setComputeNice(computeNice('nice', nice));
}

/** The nice value of native compute threads (see setComputePriority). */
export function getComputePriority(): number {
  return getNative().getComputeNice();
}

/** The intra-op thread count (default: all cores). */
export function getNumThreads(): number {
  return getNative().getNumThreads();
}

/** libtorch version, whether it is a CUDA build, CPU features (BF16, AVX-512) and threads. */
export function version(): NativeVersion {
  return getNative().version();
}

/** Normalises and checks a device string; throws DeviceError listing the devices that exist. */
export function resolveDevice(device: unknown): string {
  if (device === undefined) return 'cpu';
  const list = devices();
  if (typeof device !== 'string' || !/^(cpu|cuda(:\d+)?)$/.test(device))
    throw new DeviceError(`Expected 'cpu', 'cuda' or 'cuda:N' for device but received ${JSON.stringify(device)}; available devices: ${list.join(', ')}`);
  const normalised = device === 'cuda' ? 'cuda:0' : device;
  if (!list.includes(normalised))
    throw new DeviceError(`Device '${device}' is not available; available devices: ${list.join(', ')}`);
  return normalised;
}

/** Seeds libtorch's default generator (random initialisation of new heads, dropout). */
export function manualSeed(seed: number): void {
  getNative().manualSeed(nonNegativeInt('seed', seed));
}

/**
 * The caching CPU allocator. Every libtorch CPU tensor of 256 KiB or more comes from it; freed blocks are kept (up
 * to `limitBytes`) and reused by the next allocation of the same size class instead of going back to the OS, because
 * fresh memory costs a page fault per 4 KiB on first touch (measured: about 3x on a ResNet-18 fp32 training step).
 * Default limit: a quarter of physical memory, or `$TORCH_RESNET_TL_CPU_CACHE_BYTES`.
 */
export const cpuCache = {
  /** Sets the most bytes kept cached (0: keep nothing); the cache is trimmed at once. */
  setLimit(bytes: number): void {
    getNative().setCpuCacheLimit(nonNegativeInt('bytes', bytes));
  },
  /** Returns every cached block to the system. */
  empty(): void {
    getNative().emptyCpuCache();
  },
  stats(): CpuCacheStats {
    return getNative().cpuCacheStats();
  },
};
