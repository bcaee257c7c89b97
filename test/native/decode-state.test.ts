// A broken file must not change how later files decode (issue: a failed TurboJPEG handle poisoned its thread).
// Decoding is a pure function of the bytes: checked through the DataLoader (1 and 2 workers), Transform.apply on a
// single libuv thread (child process with UV_THREADPOOL_SIZE=1) and model.predict.
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { DataLoader, DatasetError, ImageFolder, ImageList, Model, Transform } from '../../lib';
import { ROOT, sharedPath } from '../helpers';

/** Offset of the first JPEG segment with this marker (walks the header segments up to SOS). */
function segment(b: Buffer, marker: number): number {
  let i = 2;
  while (i + 4 <= b.length && b[i] === 0xff) {
    if (b[i + 1] === marker) return i;
    if (b[i + 1] === 0xda) break;
    i += 2 + b.readUInt16BE(i + 2);
  }
  throw new Error(`marker 0x${marker.toString(16)} not found`);
}

/** Broken variants of one good JPEG, each refused by libjpeg (and PIL). */
function brokenJpegs(good: Buffer): Record<string, Buffer> {
  const header = Buffer.from(good);
  header[segment(header, 0xdb) + 3] = 0x01; // DQT length 1: "Bogus marker length"
  const huffman = Buffer.from(good);
  huffman.fill(0xff, segment(huffman, 0xc4) + 5, segment(huffman, 0xc4) + 21); // 16 code counts of 255
  const marker = Buffer.from(good);
  marker[segment(marker, 0xdb) + 1] = 0x01; // an undefined marker code where DQT stood
  const truncated = good.subarray(0, Math.floor(good.length * 0.55));
  return { header, huffman, marker, truncated };
}

const ants = () => sharedPath('data', 'hymenoptera', 'train', 'ants');
const bees = () => sharedPath('data', 'hymenoptera', 'train', 'bees');
const jpgs = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.jpg')).sort();

describe('decoder state after broken files', () => {
  let root: string;
  let good: Buffer;
  let broken: Record<string, Buffer>;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'tl-poison-'));
    good = readFileSync(join(ants(), jpgs(ants())[0]));
    broken = brokenJpegs(good);
  });

  test('every broken variant is refused with a typed error naming the file', async () => {
    const t = Transform.compose(Transform.resize(64), Transform.centerCrop(64));
    let n = 0;
    for (const [kind, bytes] of Object.entries(broken)) {
      const p = join(root, `${kind}.jpg`);
      writeFileSync(p, bytes);
      const err = await t.apply(p).catch((e) => e);
      expect(err).toBeInstanceOf(DatasetError);
      expect(err.message).toContain(p);
      n++;
    }
    expect(n).toBe(4);
    expect((await t.apply(good)).shape).toEqual([3, 64, 64]);
  });

  test.each([1, 2])('ants + one corrupt-header JPEG + bees, onError skip, %i worker(s): every good photo delivered, exactly 1 skip', async (workers) => {
    const dir = join(root, `folder-${workers}`);
    mkdirSync(join(dir, 'a'), { recursive: true });
    mkdirSync(join(dir, 'b'), { recursive: true });
    for (const f of jpgs(ants())) copyFileSync(join(ants(), f), join(dir, 'a', f));
    for (const f of jpgs(bees())) copyFileSync(join(bees(), f), join(dir, 'b', f));
    writeFileSync(join(dir, 'a', '0000-bad-header.jpg'), broken.header); // sorts first: decoded before the good ones
    const goodCount = jpgs(ants()).length + jpgs(bees()).length;
    const ds = await ImageFolder.open(dir, { transform: Transform.imagenetEval(), onError: 'skip' });
    expect(ds.length).toBe(goodCount + 1);
    const loader = new DataLoader(ds, { batchSize: 32, workers });
    const events: string[] = [];
    loader.on('skip', (s) => events.push(s.path));
    let delivered = 0;
    for await (const b of loader) {
      delivered += b.size;
      b.dispose();
    }
    expect(delivered).toBe(goodCount);
    expect(events).toEqual([join(dir, 'a', '0000-bad-header.jpg')]);
    expect(ds.skipped.map((s) => s.path)).toEqual(events);
    expect(ds.skipped[0].reason).toMatch(/corrupt JPEG header/);
  });

  test('one worker, all broken kinds first: the good files decode to the same batch as without them', async () => {
    const goods = jpgs(bees()).slice(0, 6).map((f) => join(bees(), f));
    const paths = Object.keys(broken).map((k) => join(root, `${k}.jpg`));
    for (const [k, bytes] of Object.entries(broken)) writeFileSync(join(root, `${k}.jpg`), bytes);
    const t = Transform.compose(Transform.resize(96), Transform.centerCrop(96), Transform.toTensor());
    const items = (ps: string[]) => ps.map((path) => ({ path, label: 0 }));
    const batches = async (ps: string[]) => {
      const ds = ImageList.from(items(ps), { transform: t, onError: 'skip' });
      const out: Float32Array[] = [];
      for await (const b of new DataLoader(ds, { batchSize: ps.length, workers: 1 })) {
        out.push(Float32Array.from((await b.images()).data));
        b.dispose();
      }
      return { out, skipped: ds.skipped.length };
    };
    const clean = await batches(goods);
    const mixed = await batches([...paths, ...goods]);
    expect(mixed.skipped).toBe(4);
    expect(clean.out.length).toBe(1);
    expect(Buffer.from(mixed.out[0].buffer).equals(Buffer.from(clean.out[0].buffer))).toBe(true);
  });

  test('Transform.apply on one libuv thread: a good file decodes bit-identically after each broken one (fresh process reference)', () => {
    const goods = jpgs(bees()).slice(0, 3).map((f) => join(bees(), f));
    const paths = Object.entries(broken).map(([k, bytes]) => {
      const p = join(root, `apply-${k}.jpg`);
      writeFileSync(p, bytes);
      return p;
    });
    const script = `
      const { Transform } = require(${JSON.stringify(join(ROOT, 'dist', 'cjs', 'index.js'))});
      const crypto = require('node:crypto');
      const [goods, broken] = JSON.parse(process.argv[1]);
      const t = Transform.compose(Transform.resize(80), Transform.centerCrop(80));
      const hash = async (p) => crypto.createHash('sha256').update((await t.apply(p)).data).digest('hex');
      (async () => {
        const ref = [];
        for (const g of goods) ref.push(await hash(g));      // decoded first, in a fresh process
        const after = [];
        for (const b of broken) {
          const err = await t.apply(b).then(() => null, (e) => e.code);
          const hs = [];
          for (const g of goods) hs.push(await hash(g));
          after.push({ broken: b, err, hs });
        }
        console.log(JSON.stringify({ ref, after }));
      })();`;
    const out = execFileSync(process.execPath, ['-e', script, JSON.stringify([goods, paths])], {
      encoding: 'utf8',
      env: { ...process.env, UV_THREADPOOL_SIZE: '1' },
    });
    const { ref, after } = JSON.parse(out) as { ref: string[]; after: { broken: string; err: string; hs: string[] }[] };
    expect(ref.length).toBe(3);
    expect(after.length).toBe(4);
    for (const a of after) {
      expect(a.err).toBe('ERR_DATASET');
      expect(a.hs).toEqual(ref);
    }
  });

  test('model.predict: a broken file fails its call naming it; the next call answers as before', async () => {
    const model = await Model.create({ arch: 'squeezenet1_1', weights: null, numClasses: 5, precision: 'fp32' });
    try {
      const goods = jpgs(bees()).slice(0, 4).map((f) => join(bees(), f));
      const before = await model.predict(goods, { topk: 5, batchSize: 2 });
      for (const k of Object.keys(broken)) {
        const p = join(root, `${k}.jpg`);
        writeFileSync(p, broken[k]);
        const err = await model.predict([goods[0], p, ...goods], { topk: 5, batchSize: 2 }).catch((e) => e);
        expect(err).toBeInstanceOf(DatasetError);
        expect(err.message).toContain(p);
        expect(await model.predict(goods, { topk: 5, batchSize: 2 })).toEqual(before);
      }
    } finally {
      model.dispose();
    }
  });
});
