import { getNative, NativeVersion } from './native';
import { nonNegativeInt, positiveInt } from './validate';
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
};

/** Sets the intra-op thread count used by every native call (default: all cores). */
export function setNumThreads(n: number): void {
  getNative().setNumThreads(positiveInt('threads', n));
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
