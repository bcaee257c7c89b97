// A small deterministic image-classification dataset drawn procedurally (no network, no shared data): the demo's
// default. Each class is a shape (disc, square, triangle, ring, stripes, cross) in a random colour, size, position
// and rotation over a noisy background, written as JPEG files in ImageFolder layout (root/{train,val}/<class>/).
import { mkdirSync, renameSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeJpeg } from './image';
import * as v from './validate';

export const SYNTHETIC_CLASSES = ['disc', 'square', 'triangle', 'ring', 'stripes', 'cross'] as const;

export interface SyntheticOptions {
  /** Number of classes, 2–6 (taken in order from SYNTHETIC_CLASSES). Default 4. */
  classes?: number;
  /** Training images per class. Default 60. */
  trainPerClass?: number;
  /** Validation images per class. Default 20. */
  valPerClass?: number;
  /** Side of the square images in pixels. Default 64. */
  size?: number;
  /** Default 0. */
  seed?: number;
}

/** Seeded uniform numbers in [0, 1) (mulberry32). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Whether the point (u, v) in shape coordinates (unit size, centred) is inside the class's shape. */
function inside(kind: string, u: number, w: number): boolean {
  const r = Math.hypot(u, w);
  switch (kind) {
    case 'disc':
      return r < 1;
    case 'square':
      return Math.abs(u) < 0.8 && Math.abs(w) < 0.8;
    case 'triangle':
      return w < 0.7 && w > -1 && Math.abs(u) < (0.7 - w) * 0.6;
    case 'ring':
      return r < 1 && r > 0.6;
    case 'stripes':
      return Math.abs(u) < 1 && Math.abs(w) < 1 && Math.floor((u + 1) * 3) % 2 === 0;
    case 'cross':
      return (Math.abs(u) < 0.25 && Math.abs(w) < 1) || (Math.abs(w) < 0.25 && Math.abs(u) < 1);
    default:
      return false;
  }
}

/** Draws one image (planar RGB, uint8). */
export function drawSynthetic(kind: string, size: number, rand: () => number): Uint8Array {
  const n = size * size;
  const img = new Uint8Array(3 * n);
  const bg = [0, 1, 2].map(() => 40 + rand() * 170);
  let fg = [0, 1, 2].map(() => rand() * 255);
  // keep the shape visible: push its colour away from the background
  const dist = Math.hypot(fg[0] - bg[0], fg[1] - bg[1], fg[2] - bg[2]);
  if (dist < 90) fg = bg.map((b) => (b > 127 ? b - 110 : b + 110));
  const scale = size * (0.26 + rand() * 0.14);
  const cx = size / 2 + (rand() - 0.5) * size * 0.25;
  const cy = size / 2 + (rand() - 0.5) * size * 0.25;
  const angle = rand() * Math.PI * 2;
  const cos = Math.cos(angle), sin = Math.sin(angle);
  const noise = 6 + rand() * 14;
  for (let y = 0; y < size; ++y) {
    for (let x = 0; x < size; ++x) {
      const dx = (x + 0.5 - cx) / scale, dy = (y + 0.5 - cy) / scale;
      const u = dx * cos + dy * sin, w = -dx * sin + dy * cos;
      const on = inside(kind, u, w);
      const grain = (rand() - 0.5) * noise;
      const shade = 1 + 0.15 * Math.sin((x + y) / size * Math.PI * 2);
      for (let c = 0; c < 3; ++c) {
        const base = on ? fg[c] : bg[c] * shade;
        img[c * n + y * size + x] = Math.max(0, Math.min(255, Math.round(base + grain)));
      }
    }
  }
  return img;
}

/**
 * Writes the synthetic dataset under `root` (ImageFolder layout, `train/` and `val/`) unless the same dataset is
 * already there (a stamp file records the options). Returns the class names.
 */
export async function makeSyntheticDataset(root: string, options: SyntheticOptions = {}): Promise<string[]> {
  const o = v.plainObject('options', options) as SyntheticOptions;
  v.knownKeys('options', o as Record<string, unknown>, ['classes', 'trainPerClass', 'valPerClass', 'size', 'seed']);
  const k = o.classes === undefined ? 4 : v.positiveInt('classes', o.classes);
  if (k < 2 || k > SYNTHETIC_CLASSES.length) throw v.invalid('classes', `integer in 2..${SYNTHETIC_CLASSES.length}`, k);
  const trainPer = o.trainPerClass === undefined ? 60 : v.positiveInt('trainPerClass', o.trainPerClass);
  const valPer = o.valPerClass === undefined ? 20 : v.positiveInt('valPerClass', o.valPerClass);
  const size = o.size === undefined ? 64 : v.positiveInt('size', o.size);
  if (size < 16) throw v.invalid('size', 'integer >= 16', size);
  const seed = o.seed === undefined ? 0 : v.nonNegativeInt('seed', o.seed);
  const classes = SYNTHETIC_CLASSES.slice(0, k) as string[];
  const stamp = JSON.stringify({ version: 2, classes, trainPer, valPer, size, seed });
  const stampPath = join(root, 'synthetic.json');
  if (existsSync(stampPath) && readFileSync(stampPath, 'utf8') === stamp) return classes;

  // Written into a temporary sibling and renamed, so an interrupted run never leaves a half dataset behind.
  const tmp = `${root}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const rand = mulberry32(seed * 7919 + 1);
  for (const [split, per] of [['train', trainPer], ['val', valPer]] as const) {
    for (const kind of classes) {
      const dir = join(tmp, split, kind);
      mkdirSync(dir, { recursive: true });
      for (let i = 0; i < per; ++i) {
        const jpeg = await encodeJpeg({ data: drawSynthetic(kind, size, rand), shape: [3, size, size] }, 92);
        writeFileSync(join(dir, `${kind}_${String(i).padStart(4, '0')}.jpg`), jpeg);
      }
    }
  }
  writeFileSync(join(tmp, 'synthetic.json'), stamp);
  rmSync(root, { recursive: true, force: true });
  mkdirSync(join(root, '..'), { recursive: true });
  renameSync(tmp, root);
  return classes;
}
