/** Base class of every error thrown by torch-resnet-tl. `code` is stable across versions. */
export class TorchResNetError extends Error {
  readonly code: string;
  constructor(message: string, code: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** An option or argument is invalid: the message names it, what was expected and what was received. */
export class InvalidOptionError extends TorchResNetError {
  readonly option: string;
  constructor(option: string, message: string) {
    super(message, 'ERR_INVALID_OPTION');
    this.option = option;
  }
}

/** A checkpoint file is unreadable, malformed, unsafe or does not match the model. */
export class CheckpointError extends TorchResNetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'ERR_CHECKPOINT', options);
  }
}

/** A device is unknown or not available (e.g. `cuda:0` on a machine without CUDA). */
export class DeviceError extends TorchResNetError {
  constructor(message: string) {
    super(message, 'ERR_DEVICE');
  }
}

/** The native addon (or libtorch under it) could not be loaded. */
export class NativeLoadError extends TorchResNetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'ERR_NATIVE_LOAD', options);
  }
}

/** Downloading pretrained weights failed, or the file is not available offline. */
export class WeightsError extends TorchResNetError {
  readonly url?: string;
  readonly path?: string;
  constructor(message: string, details: { url?: string; path?: string; cause?: unknown } = {}) {
    super(message, 'ERR_WEIGHTS', { cause: details.cause });
    this.url = details.url;
    this.path = details.path;
  }
}

/** A dataset file is missing, corrupt, truncated or over the pixel limit; or the folder layout is wrong. */
export class DatasetError extends TorchResNetError {
  constructor(message: string) {
    super(message, 'ERR_DATASET');
  }
}

/** The object was disposed and can no longer be used. */
export class DisposedError extends TorchResNetError {
  constructor(what: string, message = `${what} has been disposed`) {
    super(message, 'ERR_DISPOSED');
  }
}

/** The object is in use by another operation (e.g. a DataLoader iterated twice at the same time). */
export class BusyError extends TorchResNetError {
  /** When a bounded queue refused the work: seconds after which a retry is likely to be accepted. */
  readonly retryAfterSeconds?: number;
  constructor(message: string, retryAfterSeconds?: number) {
    super(message, 'ERR_BUSY');
    if (retryAfterSeconds !== undefined) this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** Work whose deadline passed before it was computed (it was dropped, not run). */
export class TimeoutError extends TorchResNetError {
  constructor(message: string) {
    super(message, 'ERR_TIMEOUT');
  }
}

/**
 * Memory ran out on the device (CUDA's allocator) or on the host. The process survives and the model stays usable:
 * retry with a smaller batch, or free memory (`cpuCache.empty()`, dispose unused models).
 */
export class OutOfMemoryError extends TorchResNetError {
  constructor(message: string) {
    super(message, 'ERR_OUT_OF_MEMORY');
  }
}

/** Data-parallel training failed: rendezvous, a rank that left or timed out, mismatched ranks. */
export class DistributedError extends TorchResNetError {
  constructor(message: string) {
    super(message, 'ERR_DISTRIBUTED');
  }
}

/** Any other failure inside libtorch. */
export class NativeError extends TorchResNetError {
  constructor(message: string) {
    super(message, 'ERR_NATIVE');
  }
}

/** The option a native option error names ("option lr must be a number" → "lr"), else "". */
function optionIn(message: string): string {
  return /\boption ([\w.]+)/.exec(message)?.[1] ?? '';
}

/** Turns an error from the addon (a plain Error with `code`) into the matching class. */
export function fromNative(err: unknown): Error {
  // Duck-typed: errors made by the addon may come from another realm (e.g. under a test sandbox).
  if (err instanceof TorchResNetError || typeof err !== 'object' || err === null || !('message' in err)) return err as Error;
  const code = (err as { code?: string }).code;
  switch (code) {
    case 'ERR_CHECKPOINT':
      return new CheckpointError((err as Error).message);
    case 'ERR_DATASET':
      return new DatasetError((err as Error).message);
    case 'ERR_DEVICE':
      return new DeviceError((err as Error).message);
    case 'ERR_INVALID_OPTION':
      return new InvalidOptionError((err as { option?: string }).option ?? optionIn((err as Error).message), (err as Error).message);
    case 'ERR_DISPOSED':
      return new DisposedError('', (err as Error).message);
    case 'ERR_BUSY':
      return new BusyError((err as Error).message);
    case 'ERR_NATIVE':
      return new NativeError((err as Error).message);
    case 'ERR_OUT_OF_MEMORY':
      return new OutOfMemoryError((err as Error).message);
    case 'ERR_DISTRIBUTED':
      return new DistributedError((err as Error).message);
    default:
      return err as Error;
  }
}
