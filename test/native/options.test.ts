import { ResNet, Model, InvalidOptionError, DeviceError, devices, cuda, setNumThreads, getNumThreads, version, TorchResNetError, ARCHS, BusyError, DisposedError, encodeJpeg } from '../../lib';
import { Transform, TRANSFORM_OPS } from '../../lib/transform';
import { getNative } from '../../lib/native';

describe('option validation (before any native work)', () => {
  test('numClasses must be a positive integer', async () => {
    await expect(ResNet.create({ arch: 'resnet18', numClasses: -1 })).rejects.toThrow(
      'Expected positive integer for numClasses but received -1',
    );
    await expect(ResNet.create({ arch: 'resnet18', numClasses: 2.5 })).rejects.toBeInstanceOf(InvalidOptionError);
  });

  test('unknown arch names the option and the choices', async () => {
    const err = await Model.create({ arch: 'resnet19' as never }).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect(err.code).toBe('ERR_INVALID_OPTION');
    expect(err.message).toMatch(/for arch but received "resnet19"/);
    expect(err.message).toMatch(/'resnet18'/);
  });

  test('the arch list is the native registry\'s', () => {
    expect([...ARCHS]).toEqual(getNative().architectures());
  });

  test('the transform op list is the native op table\'s', () => {
    expect([...TRANSFORM_OPS]).toEqual(getNative().transformOps());
    expect(TRANSFORM_OPS).toHaveLength(12);
  });

  test('typos in option names are rejected', async () => {
    await expect(Model.create({ arch: 'resnet18', numclasses: 3 } as never)).rejects.toThrow(/Unknown option options.numclasses/);
  });

  test('ResNet.create refuses squeezenet', async () => {
    await expect(ResNet.create({ arch: 'squeezenet1_1' as never })).rejects.toBeInstanceOf(InvalidOptionError);
  });

  test('dropout range, classes length', async () => {
    await expect(ResNet.create({ arch: 'resnet18', dropout: 1 })).rejects.toThrow(/dropout/);
    await expect(ResNet.create({ arch: 'resnet18', numClasses: 3, classes: ['a', 'b'] })).rejects.toThrow(/3 class names/);
  });

  test('weights must be a known name or an existing file', async () => {
    await expect(ResNet.create({ arch: 'resnet18', weights: '/nope/missing.pth' })).rejects.toThrow(/no such file/);
  });

  test('a missing CUDA device fails saying which devices exist', async () => {
    if (cuda.isAvailable()) return expect(devices().some((d) => d.startsWith('cuda'))).toBe(true);
    const err = await ResNet.create({ arch: 'resnet18', device: 'cuda:0' }).catch((e) => e);
    expect(err).toBeInstanceOf(DeviceError);
    expect(err).toBeInstanceOf(TorchResNetError);
    expect(err.code).toBe('ERR_DEVICE');
    expect(err.message).toContain('available devices: cpu');
  });

  test('threads default to all cores and can be set', () => {
    const os = require('node:os');
    expect(getNumThreads()).toBe(os.cpus().length);
    setNumThreads(1);
    expect(getNumThreads()).toBe(1);
    setNumThreads(os.cpus().length);
    expect(() => setNumThreads(0)).toThrow(InvalidOptionError);
  });

  test('version reports libtorch, build and CPU features', () => {
    const v = version();
    expect(v.libtorch).toMatch(/^\d+\.\d+/);
    expect(typeof v.cuda).toBe('boolean');
    expect(typeof v.cpu.bf16).toBe('boolean');
    expect(devices()[0]).toBe('cpu');
  });
});

describe('native errors map to their classes everywhere', () => {
  test('synchronous calls, constructors and promises; option errors name the option; ERR_DISPOSED and ERR_BUSY', async () => {
    const n = getNative();
    // a synchronous function
    const sync = (() => {
      try {
        n.setRngState(Buffer.from('not a generator state'));
      } catch (e) {
        return e;
      }
    })();
    expect(sync).toBeInstanceOf(TorchResNetError);
    // a constructor given an incomplete config: the option is named
    const model = await Model.create({ arch: 'squeezenet1_1', numClasses: 2 });
    const ctor = (() => {
      try {
        new n.NativeTrainer(model._handle(), {} as never);
      } catch (e) {
        return e;
      }
    })();
    expect(ctor).toBeInstanceOf(InvalidOptionError);
    expect((ctor as InvalidOptionError).option).toBe('optimizer');
    // a promise
    const rejected = await n.readCheckpoint('/no/such/file.pth').catch((e: unknown) => e);
    expect((rejected as TorchResNetError).code).toBe('ERR_CHECKPOINT');
    expect(rejected).toBeInstanceOf(TorchResNetError);
    // a disposed model's handle, used again: the addon's ERR_DISPOSED becomes a DisposedError
    const h = model._handle();
    model.dispose();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const { fromNative } = await import('../../lib/errors');
    let raw: unknown;
    try {
      h.info();
    } catch (e) {
      raw = e;
    }
    expect((raw as TorchResNetError).code).toBe('ERR_DISPOSED');
    expect(fromNative(raw)).toBeInstanceOf(DisposedError);
    expect(fromNative(Object.assign(new Error('busy'), { code: 'ERR_BUSY' }))).toBeInstanceOf(BusyError);
  });
});

describe('native transform specs are strict', () => {
  test('every builder writes every field the native parser needs; a missing or unknown field is an error naming it', async () => {
    const img = await encodeJpeg({ data: new Uint8Array(3 * 16 * 16).fill(120), shape: [3, 16, 16] });
    const all = Transform.compose([
      Transform.resize(12),
      Transform.randomCrop(12, { padding: 1 }),
      Transform.randomResizedCrop(10),
      Transform.randomRotation(10),
      Transform.centerCrop(8),
      Transform.randomHorizontalFlip(),
      Transform.randomVerticalFlip(),
      Transform.colorJitter({ brightness: 0.2 }),
      Transform.randomGrayscale(),
      Transform.toTensor(),
      Transform.normalize(),
      Transform.randomErasing(),
    ]);
    expect(new Set(all.ops.map((o) => o.op)).size).toBe(TRANSFORM_OPS.length);
    expect((await all.apply(img)).shape).toEqual([3, 8, 8]);
    const run = async (spec: unknown[]) => getNative().transformImage({ paths: ['<buffer>'], buffers: [img] }, JSON.stringify(spec), 0, { maxPixels: 1e8, fastDecodeMinSide: 0, strict: false });
    const erasing = all.ops.find((o) => o.op === 'randomErasing')!;
    const { scale, ...noScale } = erasing as { scale: number[] };
    void scale;
    await expect(run([{ op: 'toTensor' }, noScale])).rejects.toThrow(/transform\[1\]: missing field scale/);
    await expect(run([{ op: 'randomHorizontalFlip' }])).rejects.toThrow(/transform\[0\]: missing field p/);
    await expect(run([{ op: 'centerCrop', size: [4], fill: 0 }])).rejects.toThrow(/transform\[0\]: unknown field fill for op centerCrop/);
    const err = await run([{ op: 'colorJitter', brightness: [1], contrast: [], saturation: [], hue: [] }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TorchResNetError);
    expect((err as Error).message).toMatch(/brightness must be \[min, max\] or \[\]/);
  });
});
