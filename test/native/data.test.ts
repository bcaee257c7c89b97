// Image pipeline: folder scan, decoding and transform parity with PIL/torchvision, loader determinism,
// MixUp/CutMix, corrupt files.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataLoader, DatasetError, ImageFolder, ImageList, InvalidOptionError, Transform, Batch } from '../../lib';
import { diffStats, fixture, sharedPath } from '../helpers';

interface Case { name: string; kind: string; dtype: string; shape: number[]; file: string; size?: number[]; angle?: number }
/** Photos in the transforms fixture (scripts/fixtures/make_transforms.py: three ants, three bees). */
const PHOTOS = 6;
const cases = (): Case[] => JSON.parse(readFileSync(fixture('transforms', 'cases.json'), 'utf8'));
const ref = (c: Case) => {
  const b = readFileSync(fixture('transforms', `${c.name}.bin`));
  return c.dtype === 'uint8' ? new Uint8Array(b) : new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};
const diff = diffStats;

describe('ImageFolder', () => {
  test('hymenoptera: 2 classes, 244 train + the GIF skipped, 153 val', async () => {
    const train = await ImageFolder.open(sharedPath('data', 'hymenoptera', 'train'));
    expect(train.classes).toEqual(['ants', 'bees']);
    expect(train.classToIndex).toEqual({ ants: 0, bees: 1 });
    expect(train.length).toBe(244);
    expect(train.skipped.map((s) => s.path.split('/').pop())).toEqual(['imageNotFound.gif']);
    expect(train.samples.filter((s) => s.label === 0).length).toBe(123);
    const val = await ImageFolder.open(sharedPath('data', 'hymenoptera', 'val'));
    expect(val.length).toBe(153);
    expect(val.skipped).toEqual([]);
  });

  test('missing root, empty class folder, bad options: clear errors', async () => {
    await expect(ImageFolder.open('/no/such/dir')).rejects.toThrow(/does not exist/);
    const root = mkdtempSync(join(tmpdir(), 'tl-empty-'));
    await expect(ImageFolder.open(root)).rejects.toThrow(/no class folders/);
    mkdirSync(join(root, 'cats'));
    writeFileSync(join(root, 'cats', 'notes.txt'), 'x');
    const err = await ImageFolder.open(root).catch((e) => e);
    expect(err).toBeInstanceOf(DatasetError);
    expect(err.message).toMatch(/'cats' holds no images/);
    await expect(ImageFolder.open(root, { onError: 'ignore' as never })).rejects.toThrow(/Expected one of 'throw', 'skip' for onError/);
  });

  test('only formats the decoder reads are scanned: a .bmp or .webp is listed as skipped, not a later decode error', async () => {
    const root = mkdtempSync(join(tmpdir(), 'tl-ext-'));
    mkdirSync(join(root, 'a'));
    copyFileSync(sharedPath('data', 'hymenoptera', 'val', 'ants', '10308379_1b6c72e180.jpg'), join(root, 'a', 'x.JPG'));
    writeFileSync(join(root, 'a', 'y.bmp'), Buffer.from('BM....'));
    writeFileSync(join(root, 'a', 'z.webp'), Buffer.from('RIFF....WEBP'));
    const ds = await ImageFolder.open(root);
    expect(ds.length).toBe(1);
    expect(ds.skipped.map((s) => s.path.split('/').pop()).sort()).toEqual(['y.bmp', 'z.webp']);
    expect(ds.skipped[0].reason).toMatch(/extension/);
  });

  test('ImageList from items and CSV', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tl-list-'));
    const a = sharedPath('data', 'hymenoptera', 'val', 'ants', '10308379_1b6c72e180.jpg');
    writeFileSync(join(dir, 'list.csv'), `path,label\n${a},ant\n${a},bee\n`);
    const list = ImageList.fromCsv(join(dir, 'list.csv'));
    expect(list.classes).toEqual(['ant', 'bee']);
    expect(list.targets).toEqual([0, 1]);
    const l2 = ImageList.from([{ path: a, label: 3 }]);
    expect(l2.targets).toEqual([3]);
    // numeric labels are class indices: {0, 5} mean six classes, not two
    const l3 = ImageList.from([{ path: a, label: 0 }, { path: a, label: 5 }]);
    expect(l3.targets).toEqual([0, 5]);
    expect(l3.classes).toEqual(['0', '1', '2', '3', '4', '5']);
    expect(ImageList.from([{ path: a, label: 1 }], { classes: ['ants', 'bees'] }).targets).toEqual([1]);
    expect(() => ImageList.from([{ path: a, label: 2 }], { classes: ['ants', 'bees'] })).toThrow(/more than 2 class names .* received 2/);
    expect(() => ImageList.from([{ path: a, label: -1 }])).toThrow(/items\[0\]\.label/);
    expect(() => ImageList.from([{ path: a, label: 'x' }], { classes: ['a'] })).toThrow(/Unknown class "x"/);
  });

  test('Transform.compose takes an array like transforms.Compose, or the transforms as arguments', () => {
    const list = Transform.compose([Transform.resize(32), Transform.centerCrop(32)]);
    const args = Transform.compose(Transform.resize(32), Transform.centerCrop(32));
    expect(list.ops).toEqual(args.ops);
    expect(list.ops).toHaveLength(2);
    expect(() => Transform.compose([Transform.resize(32), 'x' as never])).toThrow(/compose\[1\]/);
  });
});

describe('decoding and transforms match PIL + torchvision', () => {
  test('JPEG decode equals PIL within IDCT rounding (max |Δ| <= 2)', async () => {
    const decodes = cases().filter((c) => c.kind === 'decode');
    expect(decodes).toHaveLength(PHOTOS);
    for (const c of decodes) {
      const out = await Transform.compose().apply(c.file);
      expect(out.shape).toEqual(c.shape);
      expect(diff(out.data, ref(c)).max).toBeLessThanOrEqual(2);
    }
  });

  test('PNG decode (grey, palette, 16-bit, alpha, 1-bit) equals PIL exactly', async () => {
    const pngs = cases().filter((c) => c.kind === 'png');
    expect(pngs.length).toBeGreaterThanOrEqual(7);
    for (const c of pngs) {
      const out = await Transform.compose().apply(readFileSync(c.file));
      expect({ name: c.name, shape: out.shape }).toEqual({ name: c.name, shape: c.shape });
      expect({ name: c.name, max: diff(out.data, ref(c)).max }).toEqual({ name: c.name, max: 0 });
    }
  });

  test('resize bilinear/bicubic + antialias, down and up: mean |Δ| <= 0.5, max <= 2', async () => {
    const resizes = cases().filter((c) => c.kind === 'resize');
    expect(resizes).toHaveLength(4 * PHOTOS); // two sizes, bicubic, upscaling
    for (const c of resizes) {
      const size = c.size!.length === 1 ? c.size![0] : (c.size as [number, number]);
      const interpolation = (c as { interpolation?: 'bilinear' | 'bicubic' }).interpolation ?? 'bilinear';
      const out = await Transform.resize(size, { interpolation }).apply(c.file);
      expect(out.shape).toEqual(c.shape);
      const d = diff(out.data, ref(c));
      console.log(`resize ${interpolation} ${JSON.stringify(size)} ${c.file.split('/').pop()}: mean |Δ| ${d.mean.toFixed(4)}, max ${d.max}`);
      expect(d.mean).toBeLessThanOrEqual(0.5);
      expect(d.max).toBeLessThanOrEqual(2);
    }
  });

  test('crops and flips are exact; fixed-angle rotation mean |Δ| <= 1; normalize within 1e-6', async () => {
    let ran = 0;
    for (const c of cases()) {
      let t: Transform | undefined;
      if (c.kind === 'centerCrop') t = Transform.centerCrop(c.size as [number, number]);
      if (c.kind === 'hflip') t = Transform.randomHorizontalFlip(1);
      if (c.kind === 'vflip') t = Transform.randomVerticalFlip(1);
      if (c.kind === 'rotate') t = Transform.randomRotation([c.angle!, c.angle!]);
      if (c.kind === 'normalize') t = Transform.compose(Transform.centerCrop(224), Transform.toTensor(), Transform.normalize());
      if (!t) continue;
      ran++;
      const out = await t.apply(c.file);
      expect(out.shape).toEqual(c.shape);
      const d = diff(out.data, ref(c));
      if (c.kind === 'rotate') {
        console.log(`rotate ${c.angle}° ${c.file.split('/').pop()}: mean |Δ| ${d.mean.toFixed(4)}, max ${d.max}`);
        expect(d.mean).toBeLessThanOrEqual(1);
      }
      else if (c.kind === 'normalize') expect(d.max).toBeLessThanOrEqual(1e-6);
      else expect({ name: c.name, max: d.max }).toEqual({ name: c.name, max: 0 });
    }
    expect(ran).toBe(5 * PHOTOS); // center crop, two flips, rotation, normalize per photo
  });

  test('invalid transform parameters are rejected in TS, naming the parameter', () => {
    expect(() => Transform.resize(-3)).toThrow('Expected positive integer for size but received -3');
    expect(() => Transform.randomHorizontalFlip(2)).toThrow(/for p but received 2/);
    expect(() => Transform.randomResizedCrop(224, { scale: [0.5, 0.1] })).toThrow(/scale/);
    expect(() => Transform.normalize([0.5, 0.5], [1, 1, 1])).toThrow(/mean/);
    expect(() => Transform.colorJitter({ hue: 0.7 })).toThrow(InvalidOptionError);
    expect(() => Transform.compose(Transform.toTensor(), 'x' as never)).toThrow(/compose\[1\]/);
  });

  test('pixel limit: an error naming the file, not an out-of-memory', async () => {
    const file = sharedPath('data', 'hymenoptera', 'val', 'ants', '10308379_1b6c72e180.jpg');
    const err = await Transform.compose().apply(file, { maxPixels: 1000 }).catch((e) => e);
    expect(err).toBeInstanceOf(DatasetError);
    expect(err.message).toContain(file);
    expect(err.message).toMatch(/exceeds the limit of 1000/);
  });
});

async function collect(loader: DataLoader, dispose = false): Promise<{ images: Float32Array[]; labels: (Int32Array | Float32Array)[]; batches: Batch[] }> {
  const images: Float32Array[] = [];
  const labels: (Int32Array | Float32Array)[] = [];
  const batches: Batch[] = [];
  for await (const b of loader) {
    images.push(b.images().data);
    labels.push(b.labels().data);
    batches.push(b);
    if (dispose) b.dispose();
  }
  return { images, labels, batches };
}

describe('DataLoader', () => {
  test('same seed gives identical batches with 1 or 2 workers; each epoch reshuffles', async () => {
    const ds = await ImageFolder.open(sharedPath('data', 'hymenoptera', 'train'), {
      transform: Transform.compose(Transform.resize([64, 64]), Transform.randomRotation(45), Transform.randomHorizontalFlip(), Transform.randomVerticalFlip(), Transform.colorJitter({ brightness: 0.3, hue: 0.1 }), Transform.toTensor(), Transform.normalize()),
    });
    const a = new DataLoader(ds, { batchSize: 32, shuffle: true, seed: 7, workers: 1 });
    const b = new DataLoader(ds, { batchSize: 32, shuffle: true, seed: 7, workers: 2, prefetch: 1 });
    expect(a.length).toBe(8);
    const ea = await collect(a);
    const eb = await collect(b);
    expect(ea.batches.map((x) => x.indices)).toEqual(eb.batches.map((x) => x.indices));
    for (let i = 0; i < ea.images.length; i++) {
      expect(Buffer.from(ea.images[i].buffer).equals(Buffer.from(eb.images[i].buffer))).toBe(true);
      expect(Array.from(ea.labels[i])).toEqual(Array.from(eb.labels[i]));
    }
    const second = await collect(a);
    expect(second.batches[0].indices).not.toEqual(ea.batches[0].indices);
    const total = ea.batches.reduce((n, x) => n + x.size, 0);
    expect(total).toBe(244);
    expect(new DataLoader(ds, { batchSize: 32, dropLast: true }).length).toBe(7);
  });

  test('disposed batches are refilled by later batches with identical contents; a disposed batch refuses reads', async () => {
    const ds = await ImageFolder.open(sharedPath('data', 'hymenoptera', 'train'), {
      transform: Transform.compose(Transform.resize([48, 48]), Transform.randomRotation(20), Transform.toTensor(), Transform.normalize()),
    });
    const kept = await collect(new DataLoader(ds, { batchSize: 16, shuffle: true, seed: 3, workers: 2 }));
    const reused = await collect(new DataLoader(ds, { batchSize: 16, shuffle: true, seed: 3, workers: 2 }), true);
    expect(reused.images.length).toBe(kept.images.length);
    for (let i = 0; i < kept.images.length; i++) expect(Buffer.from(reused.images[i].buffer).equals(Buffer.from(kept.images[i].buffer))).toBe(true);
    expect(() => reused.batches[0].images()).toThrow(/disposed/);
    expect(() => reused.batches[0].labels()).toThrow(/disposed/);
    expect(reused.batches[0].indices).toEqual(kept.batches[0].indices); // metadata stays readable
  });

  test('decoded cache fills and later epochs give the same deterministic batches', async () => {
    const ds = await ImageFolder.open(sharedPath('data', 'hymenoptera', 'val'), { transform: Transform.documentEval() });
    const loader = new DataLoader(ds, { batchSize: 50, cache: 1 << 30, seed: 1 });
    const first = await collect(loader);
    expect(loader.cacheBytes).toBeGreaterThan(0);
    const second = await collect(loader);
    for (let i = 0; i < first.images.length; i++) expect(Buffer.from(first.images[i].buffer).equals(Buffer.from(second.images[i].buffer))).toBe(true);
  });

  test('MixUp: soft label rows sum to 1 and pixels are the stated blend', async () => {
    const ds = await ImageFolder.open(sharedPath('data', 'hymenoptera', 'val'), { transform: Transform.compose(Transform.resize([32, 32]), Transform.toTensor()) });
    const plain = await collect(new DataLoader(ds, { batchSize: 16, shuffle: true, seed: 3 }));
    const mixed = await collect(new DataLoader(ds, { batchSize: 16, shuffle: true, seed: 3, mixup: { alpha: 0.4 } }));
    expect(mixed.batches[0].softLabels).toBe(true);
    for (let b = 0; b < plain.batches.length; b++) {
      const hard = plain.labels[b] as Int32Array;
      const soft = mixed.labels[b] as Float32Array;
      const n = hard.length;
      for (let i = 0; i < n; i++) expect(Math.abs(soft[2 * i] + soft[2 * i + 1] - 1)).toBeLessThan(1e-6);
      const i = Array.from(hard).findIndex((l, k) => l !== hard[(k - 1 + n) % n]);
      if (i < 0) continue;
      const lam = soft[2 * i + hard[i]];
      const x = plain.images[b];
      const y = mixed.images[b];
      const per = x.length / n;
      let worst = 0;
      for (let k = 0; k < n; k++) {
        const prev = (k - 1 + n) % n;
        for (let p = 0; p < per; p++) worst = Math.max(worst, Math.abs(y[k * per + p] - (lam * x[k * per + p] + (1 - lam) * x[prev * per + p])));
      }
      expect(worst).toBeLessThan(1e-5);
    }
  });

  test('CutMix: pixels come from the image or its neighbour, in the stated proportion', async () => {
    const ds = await ImageFolder.open(sharedPath('data', 'hymenoptera', 'val'), { transform: Transform.compose(Transform.resize([32, 32]), Transform.toTensor()) });
    const plain = await collect(new DataLoader(ds, { batchSize: 16, shuffle: true, seed: 5 }));
    const mixed = await collect(new DataLoader(ds, { batchSize: 16, shuffle: true, seed: 5, cutmix: { alpha: 1 } }));
    const hard = plain.labels[0] as Int32Array;
    const soft = mixed.labels[0] as Float32Array;
    const n = hard.length;
    const per = 3 * 32 * 32;
    const i = Array.from(hard).findIndex((l, k) => l !== hard[(k - 1 + n) % n]);
    const lam = soft[2 * i + hard[i]];
    let pasted = 0;
    for (let p = 0; p < per; p++) {
      const own = plain.images[0][i * per + p];
      const other = plain.images[0][((i - 1 + n) % n) * per + p];
      const got = mixed.images[0][i * per + p];
      expect(got === own || got === other).toBe(true);
      if (got === other && got !== own) pasted++;
    }
    expect(pasted / per).toBeLessThanOrEqual(1 - lam + 1e-6);
    for (let k = 0; k < n; k++) expect(Math.abs(soft[2 * k] + soft[2 * k + 1] - 1)).toBeLessThan(1e-6);
  });

  test('mixup.p and cutmix.p each mean what they say when both are on (a batch picks one method, then its p)', async () => {
    const ds = await ImageFolder.open(sharedPath('data', 'hymenoptera', 'val'), { transform: Transform.compose(Transform.resize([16, 16]), Transform.toTensor()) });
    const plain = await collect(new DataLoader(ds, { batchSize: 4, shuffle: true, seed: 8 }));
    const untouched = async (mixup: number, cutmix: number) => {
      const mixed = await collect(new DataLoader(ds, { batchSize: 4, shuffle: true, seed: 8, mixup: { alpha: 0.4, p: mixup }, cutmix: { alpha: 1, p: cutmix } }));
      let same = 0;
      for (let b = 0; b < plain.images.length; b++) if (Buffer.from(plain.images[b].buffer).equals(Buffer.from(mixed.images[b].buffer))) same++;
      return same / plain.images.length;
    };
    const batches = plain.images.length;
    expect(batches).toBeGreaterThanOrEqual(38);
    // each method is drawn for about half of the batches: the one with p = 0 leaves its half untouched
    const [mixupOnly, cutmixOnly, both, neither] = [await untouched(1, 0), await untouched(0, 1), await untouched(1, 1), await untouched(0, 0)];
    console.log(`untouched batches: mixup p=1 cutmix p=0 ${mixupOnly.toFixed(2)}, mixup p=0 cutmix p=1 ${cutmixOnly.toFixed(2)}, both p=1 ${both.toFixed(2)}, both p=0 ${neither.toFixed(2)}`);
    for (const share of [mixupOnly, cutmixOnly]) {
      expect(share).toBeGreaterThan(0.25);
      expect(share).toBeLessThan(0.75);
    }
    expect(both).toBeLessThan(0.1);
    expect(neither).toBe(1);
  });

  test('corrupt and truncated files: typed error naming the file, or skipped and counted', async () => {
    const root = mkdtempSync(join(tmpdir(), 'tl-corrupt-'));
    const src = sharedPath('data', 'hymenoptera', 'val', 'ants');
    mkdirSync(join(root, 'a'));
    mkdirSync(join(root, 'b'));
    const good = readFileSync(join(src, '10308379_1b6c72e180.jpg'));
    for (let i = 0; i < 4; i++) copyFileSync(join(src, '10308379_1b6c72e180.jpg'), join(root, 'a', `ok${i}.jpg`));
    writeFileSync(join(root, 'b', 'truncated.jpg'), good.subarray(0, good.length >> 1));
    writeFileSync(join(root, 'b', 'garbage.jpg'), Buffer.from('definitely not an image'));
    const flipped = Buffer.from(good);
    for (let i = 20; i < 400; i += 7) flipped[i] ^= 0x5a;
    writeFileSync(join(root, 'b', 'flipped.jpg'), flipped);
    const png = readFileSync(fixture('transforms', 'rgba.png'));
    writeFileSync(join(root, 'b', 'truncated.png'), png.subarray(0, png.length - 40));
    const t = Transform.compose(Transform.resize([32, 32]), Transform.toTensor());

    const strict = await ImageFolder.open(root, { transform: t });
    const err = await collect(new DataLoader(strict, { batchSize: 4 })).catch((e) => e);
    expect(err).toBeInstanceOf(DatasetError);
    expect(err.code).toBe('ERR_DATASET');
    expect(err.message).toMatch(/b\/(flipped|garbage|truncated)\.(jpg|png)/);

    const lenient = await ImageFolder.open(root, { transform: t, onError: 'skip' });
    const loader = new DataLoader(lenient, { batchSize: 4, workers: 2 });
    const events: string[] = [];
    loader.on('skip', (s) => events.push(s.path));
    const out = await collect(loader);
    const used = out.batches.reduce((n, b) => n + b.size, 0);
    const skipped = lenient.skipped.map((s) => s.path.split('/').pop()).sort();
    expect(skipped).toEqual(expect.arrayContaining(['garbage.jpg', 'truncated.jpg', 'truncated.png']));
    expect(used + skipped.length).toBe(8);
    expect(events.length).toBe(skipped.length);
  });
});
