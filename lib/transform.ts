import { decodeOptions } from './decode-options';
import { getNative, TensorData } from './native';
import * as v from './validate';

export type Interpolation = 'bilinear' | 'bicubic' | 'nearest';
const INTERPOLATIONS = ['bilinear', 'bicubic', 'nearest'] as const;

/** One operation of a transform pipeline: a plain, JSON-serialisable spec run natively per sample. */
export type TransformOp =
  | { op: 'resize'; size: number[]; interpolation: Interpolation; antialias: boolean }
  | { op: 'centerCrop'; size: number[] }
  | { op: 'randomCrop'; size: number[]; padding: number[]; padIfNeeded: boolean; fill: number }
  | { op: 'randomResizedCrop'; size: number[]; scale: number[]; ratio: number[]; interpolation: Interpolation; antialias: boolean }
  | { op: 'randomRotation'; degrees: number[]; interpolation: Interpolation; fill: number }
  | { op: 'randomHorizontalFlip'; p: number }
  | { op: 'randomVerticalFlip'; p: number }
  | { op: 'colorJitter'; brightness: number[]; contrast: number[]; saturation: number[]; hue: number[] }
  | { op: 'randomGrayscale'; p: number }
  | { op: 'randomErasing'; p: number; scale: number[]; ratio: number[]; value: number }
  | { op: 'toTensor' }
  | { op: 'normalize'; mean: number[]; std: number[] };

/** Every op name, in the native op table's order (test/unit/options.test.ts checks the two agree). */
export const TRANSFORM_OPS = ['resize', 'centerCrop', 'randomCrop', 'randomResizedCrop', 'randomRotation', 'randomHorizontalFlip', 'randomVerticalFlip', 'colorJitter', 'randomGrayscale', 'randomErasing', 'toTensor', 'normalize'] as const;
// compile-time: the list and the TransformOp union name the same ops
const opsCovered: Record<TransformOp['op'], true> = Object.fromEntries(TRANSFORM_OPS.map((o) => [o, true])) as Record<(typeof TRANSFORM_OPS)[number], true>;
void opsCovered;

export const IMAGENET_MEAN = [0.485, 0.456, 0.406];
export const IMAGENET_STD = [0.229, 0.224, 0.225];

function sizeArg(name: string, size: unknown): number[] {
  if (typeof size === 'number') return [v.positiveInt(name, size)];
  if (Array.isArray(size) && size.length === 2) return [v.positiveInt(`${name}[0]`, size[0]), v.positiveInt(`${name}[1]`, size[1])];
  throw v.invalid(name, 'positive integer or [height, width]', size);
}

function range(name: string, value: unknown, min: number): number[] {
  if (!Array.isArray(value) || value.length !== 2 || !value.every((x) => typeof x === 'number' && Number.isFinite(x)) || value[0] > value[1] || value[0] < min)
    throw v.invalid(name, `[min, max] with ${min} <= min <= max`, value);
  return value as number[];
}

function interp(name: string, value: unknown, fallback: Interpolation): Interpolation {
  return value === undefined ? fallback : v.oneOf(name, value, INTERPOLATIONS);
}

function probability(name: string, p: unknown, fallback = 0.5): number {
  return p === undefined ? fallback : v.numberInRange(name, p, 0, 1);
}

/** Jitter amount → factor range as torchvision's ColorJitter: b → [max(0, 1-b), 1+b]; or an explicit range; [] not jittered. */
function jitter(name: string, value: unknown, center: number, bound?: number): number[] {
  if (value === undefined || value === 0) return [];
  if (typeof value === 'number') {
    v.numberInRange(name, value, 0, bound ?? Number.MAX_VALUE);
    return [Math.max(center === 0 ? -value : 0, center - value), center + value];
  }
  return range(name, value, center === 0 ? -0.5 : 0);
}

/** Whether an op draws random numbers. */
const isRandom = (o: TransformOp): boolean => o.op.startsWith('random') || o.op === 'colorJitter';

/**
 * A per-sample image pipeline. Builders validate their parameters (naming the one at fault) and produce a plain
 * spec that the native loader runs on its own threads, with torchvision's semantics (tensor backend).
 */
export class Transform {
  readonly ops: readonly TransformOp[];

  private constructor(ops: TransformOp[]) {
    this.ops = Object.freeze([...ops]);
  }

  /** Runs transforms in order: `compose(a, b, c)` or, as torchvision's `transforms.Compose`, `compose([a, b, c])`. */
  static compose(...args: (Transform | Transform[])[]): Transform {
    const transforms = args.length === 1 && Array.isArray(args[0]) ? args[0] : (args as Transform[]);
    transforms.forEach((t, i) => {
      if (!(t instanceof Transform)) throw v.invalid(`compose[${i}]`, 'Transform', t);
    });
    return new Transform(transforms.flatMap((t) => [...t.ops]));
  }

  /** Resize: a number sets the shorter side (aspect kept), `[h, w]` the exact size. Default bilinear with antialias. */
  static resize(size: number | [number, number], opts: { interpolation?: Interpolation; antialias?: boolean } = {}): Transform {
    return new Transform([{ op: 'resize', size: sizeArg('size', size), interpolation: interp('interpolation', opts.interpolation, 'bilinear'), antialias: opts.antialias ?? true }]);
  }

  /** Center crop to `size` (zero padding when the image is smaller), as torchvision. */
  static centerCrop(size: number | [number, number]): Transform {
    return new Transform([{ op: 'centerCrop', size: sizeArg('size', size) }]);
  }

  /** Random crop; `padding` (number or [l, t, r, b]) is applied first with `fill`. */
  static randomCrop(size: number | [number, number], opts: { padding?: number | number[]; padIfNeeded?: boolean; fill?: number } = {}): Transform {
    let padding: number[] = [];
    if (typeof opts.padding === 'number') padding = Array(4).fill(v.nonNegativeInt('padding', opts.padding));
    else if (Array.isArray(opts.padding)) {
      if (opts.padding.length !== 4) throw v.invalid('padding', 'number or [left, top, right, bottom]', opts.padding);
      padding = opts.padding.map((p, i) => v.nonNegativeInt(`padding[${i}]`, p));
    }
    return new Transform([{ op: 'randomCrop', size: sizeArg('size', size), padding, padIfNeeded: opts.padIfNeeded ?? false, fill: opts.fill ?? 0 }]);
  }

  /** torchvision's RandomResizedCrop: scale default [0.08, 1], ratio [3/4, 4/3], bilinear with antialias. */
  static randomResizedCrop(size: number | [number, number], opts: { scale?: [number, number]; ratio?: [number, number]; interpolation?: Interpolation; antialias?: boolean } = {}): Transform {
    const scale = opts.scale === undefined ? [0.08, 1] : range('scale', opts.scale, 0);
    if (scale[1] > 1 || scale[1] <= 0) throw v.invalid('scale', '[min, max] within (0, 1]', opts.scale);
    const ratio = opts.ratio === undefined ? [3 / 4, 4 / 3] : range('ratio', opts.ratio, Number.MIN_VALUE);
    return new Transform([{ op: 'randomResizedCrop', size: sizeArg('size', size), scale, ratio, interpolation: interp('interpolation', opts.interpolation, 'bilinear'), antialias: opts.antialias ?? true }]);
  }

  /** Rotation by an angle drawn from [-degrees, degrees] (or [min, max]); nearest by default, `fill` outside. */
  static randomRotation(degrees: number | [number, number], opts: { interpolation?: 'nearest' | 'bilinear'; fill?: number } = {}): Transform {
    const deg = typeof degrees === 'number' ? [-v.numberInRange('degrees', degrees, 0, 360), degrees] : range('degrees', degrees, -360);
    const interpolation = interp('interpolation', opts.interpolation, 'nearest');
    if (interpolation === 'bicubic') throw v.invalid('interpolation', "'nearest' or 'bilinear'", interpolation);
    return new Transform([{ op: 'randomRotation', degrees: deg, interpolation, fill: opts.fill ?? 0 }]);
  }

  static randomHorizontalFlip(p = 0.5): Transform {
    return new Transform([{ op: 'randomHorizontalFlip', p: probability('p', p) }]);
  }

  static randomVerticalFlip(p = 0.5): Transform {
    return new Transform([{ op: 'randomVerticalFlip', p: probability('p', p) }]);
  }

  /** torchvision's ColorJitter: amounts (or [min, max] factor ranges); hue in [0, 0.5]. */
  static colorJitter(opts: { brightness?: number | [number, number]; contrast?: number | [number, number]; saturation?: number | [number, number]; hue?: number | [number, number] }): Transform {
    const o = v.plainObject('colorJitter', opts);
    v.knownKeys('colorJitter', o, ['brightness', 'contrast', 'saturation', 'hue']);
    return new Transform([
      {
        op: 'colorJitter',
        brightness: jitter('brightness', o.brightness, 1),
        contrast: jitter('contrast', o.contrast, 1),
        saturation: jitter('saturation', o.saturation, 1),
        hue: jitter('hue', o.hue, 0, 0.5),
      },
    ]);
  }

  static randomGrayscale(p = 0.1): Transform {
    return new Transform([{ op: 'randomGrayscale', p: probability('p', p) }]);
  }

  /** torchvision's RandomErasing (after toTensor/normalize): p 0.5, scale [0.02, 0.33], ratio [0.3, 3.3], value 0. */
  static randomErasing(opts: { p?: number; scale?: [number, number]; ratio?: [number, number]; value?: number } = {}): Transform {
    return new Transform([
      {
        op: 'randomErasing',
        p: probability('p', opts.p),
        scale: opts.scale === undefined ? [0.02, 0.33] : range('scale', opts.scale, 0),
        ratio: opts.ratio === undefined ? [0.3, 3.3] : range('ratio', opts.ratio, Number.MIN_VALUE),
        value: opts.value ?? 0,
      },
    ]);
  }

  /** @internal Shorter side a JPEG may be DCT-downscaled to when the pipeline starts with a resize (0: no safe floor). */
  get resizeFloor(): number {
    const first = this.ops[0];
    return first && first.op === 'resize' ? Math.max(...first.size) : 0;
  }

  /** uint8 → float in [0, 1]. */
  static toTensor(): Transform {
    return new Transform([{ op: 'toTensor' }]);
  }

  /** (x - mean) / std per channel. */
  static normalize(mean: number[] = IMAGENET_MEAN, std: number[] = IMAGENET_STD): Transform {
    if (!Array.isArray(mean) || mean.length !== 3 || !mean.every((x) => Number.isFinite(x))) throw v.invalid('mean', '3 numbers', mean);
    if (!Array.isArray(std) || std.length !== 3 || !std.every((x) => Number.isFinite(x) && x > 0)) throw v.invalid('std', '3 positive numbers', std);
    return new Transform([{ op: 'normalize', mean: [...mean], std: [...std] }]);
  }

  /** torchvision's ImageNet training preset: RandomResizedCrop(size), horizontal flip, toTensor, normalize. */
  static imagenetTrain(size = 224): Transform {
    return Transform.compose(Transform.randomResizedCrop(size), Transform.randomHorizontalFlip(), Transform.toTensor(), Transform.normalize());
  }

  /** torchvision's ImageNet evaluation preset: Resize(resizeTo), CenterCrop(size), toTensor, normalize. */
  static imagenetEval(size = 224, resizeTo = 256): Transform {
    return Transform.compose(Transform.resize(resizeTo), Transform.centerCrop(size), Transform.toTensor(), Transform.normalize());
  }

  /** The training transforms of the project's source document: Resize 300², RandomRotation(45), CenterCrop(224), flips, normalize. */
  static documentTrain(): Transform {
    return Transform.compose(
      Transform.resize([300, 300]),
      Transform.randomRotation(45),
      Transform.centerCrop(224),
      Transform.randomHorizontalFlip(0.5),
      Transform.randomVerticalFlip(0.5),
      Transform.toTensor(),
      Transform.normalize(),
    );
  }

  /** The document's validation transforms: Resize 224×224, toTensor, normalize. */
  static documentEval(): Transform {
    return Transform.compose(Transform.resize([224, 224]), Transform.toTensor(), Transform.normalize());
  }

  /** True when no op draws random numbers (the same input always gives the same output). */
  get deterministic(): boolean {
    return !this.ops.some(isRandom);
  }

  /**
   * The same pipeline without its randomness, as torchvision's evaluation presets relate to their training ones:
   * `randomResizedCrop(s)` becomes `resize(round(s·256/224))` + `centerCrop(s)`, `randomCrop(s)` becomes
   * `centerCrop(s)`, the other random ops (rotation, flips, colour jitter, grayscale, erasing) are left out; resize,
   * centre crop, toTensor and normalize stay. A deterministic pipeline is returned as it is.
   */
  withoutRandomness(): Transform {
    if (this.deterministic) return this;
    return new Transform(
      this.ops.flatMap((o): TransformOp[] => {
        if (o.op === 'randomResizedCrop')
          return [
            { op: 'resize', size: [Math.round((Math.min(...o.size) * 256) / 224)], interpolation: o.interpolation, antialias: o.antialias },
            { op: 'centerCrop', size: [...o.size] },
          ];
        if (o.op === 'randomCrop') return [{ op: 'centerCrop', size: [...o.size] }];
        return isRandom(o) ? [] : [o];
      }),
    );
  }

  /** Output size [h, w] when the pipeline fixes it, else undefined. */
  toJSON(): TransformOp[] {
    return [...this.ops];
  }

  /**
   * Runs the pipeline on one image (a file path or an encoded Buffer). Before `toTensor` the result is uint8
   * `[3, H, W]`; after it, float32.
   */
  async apply(image: string | Buffer, opts: { seed?: number; maxPixels?: number; strict?: boolean; fastDecodeMinSide?: number } = {}): Promise<TensorData & { dtype: string; data: Float32Array | Uint8Array }> {
    const samples = typeof image === 'string' ? { paths: [image] } : Buffer.isBuffer(image) ? { paths: ['<buffer>'], buffers: [image] } : undefined;
    if (!samples) throw v.invalid('image', 'file path or Buffer', image);
    const seed = opts.seed === undefined ? 0 : v.nonNegativeInt('seed', opts.seed);
    const json = JSON.stringify(this.ops);
    return getNative().transformImage(samples, json, seed, decodeOptions(opts)) as never;
  }
}
