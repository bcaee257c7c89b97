// The one error-mapping mechanism (lib/native.ts mapErrors), on a stand-in addon: functions, constructors, methods of
// returned objects, synchronous throws and rejections; objects passed back reach the addon as themselves.
import { CheckpointError, DatasetError, DisposedError, InvalidOptionError, TorchResNetError } from '../../lib';
import { mapErrors, NativeAddon } from '../../lib/native';
import { noAddon } from './no-addon';

noAddon();

const coded = (code: string, message = 'native failure') => Object.assign(new Error(message), { code });

class NativeThing {
  disposed = false;
  fail(): never {
    throw coded('ERR_DATASET');
  }
  async failLater(): Promise<never> {
    throw coded('ERR_CHECKPOINT');
  }
  child(): NativeThing {
    return new NativeThing();
  }
  async childLater(): Promise<NativeThing> {
    return new NativeThing();
  }
  plain(): { data: Float32Array; shape: number[] } {
    return { data: new Float32Array(2), shape: [2] };
  }
  dispose(): void {
    this.disposed = true;
  }
  info(): string {
    if (this.disposed) throw coded('ERR_DISPOSED', 'disposed');
    return 'ok';
  }
}
const seen: unknown[] = [];
const raw = {
  NativeThing: class extends NativeThing {
    constructor(opt?: unknown) {
      super();
      if (opt === 'bad') throw coded('ERR_INVALID_OPTION', 'option lr must be a number');
    }
  },
  make: () => new NativeThing(),
  take: (t: unknown) => {
    seen.push(t);
    if (!(t instanceof NativeThing)) throw coded('ERR_INVALID_OPTION', 'option model must be a NativeThing');
    return true;
  },
  version: 3,
} as unknown as NativeAddon;
const n = mapErrors(raw) as unknown as { NativeThing: new (o?: unknown) => NativeThing; make(): NativeThing; take(t: unknown): boolean; version: number };

test('functions and constructors: synchronous errors become typed ones naming the option', () => {
  expect(() => new n.NativeThing('bad')).toThrow(InvalidOptionError);
  try {
    new n.NativeThing('bad');
  } catch (e) {
    expect((e as InvalidOptionError).option).toBe('lr');
  }
  expect(n.version).toBe(3);
});

test('every method of every returned object maps its errors, sync and async, however the object was obtained', async () => {
  const made = [n.make(), new n.NativeThing(), n.make().child(), await n.make().childLater()];
  for (const t of made) {
    expect(() => t.fail()).toThrow(DatasetError);
    await expect(t.failLater()).rejects.toBeInstanceOf(CheckpointError);
    t.dispose();
    expect(() => t.info()).toThrow(DisposedError);
  }
  // plain data is not wrapped
  const p = n.make().plain();
  expect(p.data).toBeInstanceOf(Float32Array);
  expect(Object.getPrototypeOf(p)).toBe(Object.prototype);
});

test('a wrapped object passed back to the addon arrives as the addon made it; one wrapper per object and method', () => {
  const t = n.make();
  expect(n.take(t)).toBe(true);
  expect(seen.pop()).toBeInstanceOf(NativeThing);
  expect(t.fail).toBe(t.fail);
  expect(t).toBeInstanceOf(NativeThing);
  let e: unknown;
  try {
    n.take({});
  } catch (err) {
    e = err;
  }
  expect(e).toBeInstanceOf(TorchResNetError);
});
