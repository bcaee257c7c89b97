// randomCrop, randomGrayscale and randomErasing against torchvision: each draw equals torchvision's operation with
// some admissible parameters (the exact canvas RandomCrop crops from, to_grayscale / rgb_to_grayscale, an erased
// rectangle inside RandomErasing's scale and ratio ranges), and the draws spread over the whole admissible range.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform } from '../../lib';
import { PYTHON, sharedPath } from '../helpers';

const dir = mkdtempSync(join(tmpdir(), 'tl-random-ops-'));
afterAll(() => rmSync(dir, { recursive: true, force: true })); // checkpoints of ResNets add up over runs
const SEEDS = 40;
let meta: Record<string, number[]>;
let png: string;
const bytes = (name: string) => readFileSync(join(dir, `${name}.bin`));

beforeAll(() => {
  const photo = join(sharedPath('data', 'hymenoptera', 'train', 'bees'), '1092977343_cb42b38d62.jpg');
  execFileSync(PYTHON, ['scripts/fixtures/random_ops.py', photo, dir]);
  meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8'));
  png = join(dir, 'small.png');
});

/** Offsets (top, left) at which `crop` [3, h, w] sits in `canvas` [3, H, W] pixel for pixel. */
function offsets(canvas: Uint8Array, [, H, W]: number[], crop: Uint8Array, [, h, w]: number[]): [number, number][] {
  const found: [number, number][] = [];
  for (let i = 0; i + h <= H; i++)
    for (let j = 0; j + w <= W; j++) {
      let same = true;
      for (let c = 0; c < 3 && same; c++)
        for (let y = 0; y < h && same; y++)
          for (let x = 0; x < w; x++)
            if (canvas[(c * H + i + y) * W + j + x] !== crop[(c * h + y) * w + x]) {
              same = false;
              break;
            }
      if (same) found.push([i, j]);
    }
  return found;
}

describe('randomCrop equals a crop of torchvision’s padded canvas', () => {
  test.each([
    ['padding 4, fill 7', Transform.randomCrop([48, 64], { padding: 4, fill: 7 }), 'pad4', [48, 64]],
    ['padIfNeeded, fill 3 (both sides padded, as torchvision does)', Transform.randomCrop([70, 90], { padIfNeeded: true, fill: 3 }), 'padneeded', [70, 90]],
  ] as [string, Transform, string, number[]][])('%s', async (_, t, canvasName, [h, w]) => {
    const canvas = new Uint8Array(bytes(canvasName));
    const shape = meta[canvasName];
    const tops = new Set<number>();
    const lefts = new Set<number>();
    let ran = 0;
    for (let seed = 0; seed < SEEDS; seed++) {
      const out = await t.apply(png, { seed });
      expect(out.shape).toEqual([3, h, w]);
      const at = offsets(canvas, shape, out.data as Uint8Array, out.shape);
      expect(at.length).toBeGreaterThan(0);
      tops.add(at[0][0]);
      lefts.add(at[0][1]);
      ran++;
    }
    expect(ran).toBe(SEEDS);
    // uniform offsets over [0, H - h] x [0, W - w]: the extremes are reachable and the draws spread
    expect(Math.max(...tops)).toBeLessThanOrEqual(shape[1] - h);
    expect(Math.max(...lefts)).toBeLessThanOrEqual(shape[2] - w);
    expect(tops.size).toBeGreaterThan(Math.min(5, shape[1] - h));
    expect(lefts.size).toBeGreaterThan(Math.min(5, shape[2] - w));
  });
});

describe('randomGrayscale equals torchvision’s grayscale', () => {
  test('on uint8 images (before toTensor): F.rgb_to_grayscale exactly (PIL’s rounding conversion within 1)', async () => {
    const ref = new Uint8Array(bytes('gray_u8'));
    const pil = new Uint8Array(bytes('gray_pil'));
    const out = await Transform.randomGrayscale(1).apply(png);
    expect(out.shape).toEqual(meta.gray_u8);
    let off = 0;
    let offPil = 0;
    for (let i = 0; i < ref.length; i++) {
      off = Math.max(off, Math.abs(ref[i] - out.data[i]));
      offPil = Math.max(offPil, Math.abs(pil[i] - out.data[i]));
    }
    expect(off).toBe(0);
    expect(offPil).toBeLessThanOrEqual(1);
  });
  test('after toTensor: F.rgb_to_grayscale on floats (≤ 1e-6)', async () => {
    const b = bytes('gray_tensor');
    const ref = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    const out = await Transform.compose([Transform.toTensor(), Transform.randomGrayscale(1)]).apply(png);
    let off = 0;
    for (let i = 0; i < ref.length; i++) off = Math.max(off, Math.abs(ref[i] - out.data[i]));
    expect(off).toBeLessThanOrEqual(1e-6);
  });
  test('p: the share of grey outputs follows the probability', async () => {
    const t = Transform.randomGrayscale(0.5);
    let grey = 0;
    for (let seed = 0; seed < 200; seed++) {
      const d = (await t.apply(png, { seed })).data;
      const n = d.length / 3;
      if (d.subarray(0, n).every((x, i) => x === d[n + i] && x === d[2 * n + i])) grey++;
    }
    expect(grey).toBeGreaterThan(70); // Binomial(200, 0.5): 70..130 holds with probability > 0.9999
    expect(grey).toBeLessThan(130);
  });
});

describe('randomErasing equals torchvision’s RandomErasing draws', () => {
  test('one rectangle set to `value`, inside scale and ratio; the rest untouched; p respected', async () => {
    const base = Transform.compose([Transform.toTensor(), Transform.normalize()]);
    const ref = (await base.apply(png)).data as Float32Array;
    const scale: [number, number] = [0.05, 0.2];
    const ratio: [number, number] = [0.5, 2];
    const t = Transform.compose([base, Transform.randomErasing({ p: 0.7, scale, ratio, value: 0.25 })]);
    const [H, W] = [60, 80];
    let erased = 0;
    const areas: number[] = [];
    for (let seed = 0; seed < 100; seed++) {
      const d = (await t.apply(png, { seed })).data as Float32Array;
      let [y0, y1, x0, x1] = [H, -1, W, -1];
      for (let c = 0; c < 3; c++)
        for (let y = 0; y < H; y++)
          for (let x = 0; x < W; x++)
            if (d[(c * H + y) * W + x] !== ref[(c * H + y) * W + x]) [y0, y1, x0, x1] = [Math.min(y0, y), Math.max(y1, y), Math.min(x0, x), Math.max(x1, x)];
      if (y1 < 0) continue;
      erased++;
      const [h, w] = [y1 - y0 + 1, x1 - x0 + 1];
      // every pixel of the rectangle, every channel, is the value (a pixel equal to it by chance may shrink the box by one)
      let notValue = 0;
      for (let c = 0; c < 3; c++) for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) if (d[(c * H + y) * W + x] !== 0.25) notValue++;
      expect(notValue).toBe(0);
      areas.push((h * w) / (H * W));
      expect((h * w) / (H * W)).toBeLessThanOrEqual(scale[1] * 1.1);
      expect((h * w) / (H * W)).toBeGreaterThanOrEqual(scale[0] * 0.7);
      expect(h / w).toBeGreaterThanOrEqual(ratio[0] * 0.8);
      expect(h / w).toBeLessThanOrEqual(ratio[1] * 1.25);
    }
    expect(erased).toBeGreaterThan(55); // Binomial(100, 0.7): 56..84 with probability > 0.999
    expect(erased).toBeLessThan(85);
    expect(Math.max(...areas) - Math.min(...areas)).toBeGreaterThan(0.05); // the area is drawn, not fixed
  });
});
