// Defects found by hold-out testing, each pinned: checkpoint metadata errors are CheckpointErrors naming key and
// file (CLI exit 3), fewer than two classes is refused before any work, one fit per model at a time, exact counts
// of undecodable files when a run stops, --resume never creates folders, and Grad-CAM overlays keep dark photos
// readable.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { BusyError, CheckpointError, DataLoader, DatasetError, ImageFolder, Model, Trainer, Transform, writeRunReport } from '../../lib';
import { encodeJpeg } from '../../lib/image';
import { makeSyntheticDataset } from '../../lib/synthetic';
import { ROOT, sharedPath } from '../helpers';

const CLI = join(ROOT, 'dist', 'cjs', 'cli', 'index.js');
const tmp = mkdtempSync(join(tmpdir(), 'tl-rel-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const cli = (args: string[]) => {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: tmp });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

/** A copy of a .safetensors file with its `__metadata__` changed by `edit`. */
function withMetadata(src: string, dst: string, edit: (meta: Record<string, string | null>) => void): string {
  const buf = readFileSync(src);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  edit(header.__metadata__);
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(dst, Buffer.concat([len, json, buf.subarray(8 + n)]));
  return dst;
}

describe('checkpoint metadata', () => {
  let good: string;
  beforeAll(async () => {
    const m = await Model.create({ arch: 'squeezenet1_1', classes: ['a', 'b'], weights: null });
    good = join(tmp, 'good.safetensors');
    await m.save(good);
    m.dispose();
  });

  const cases: [string, (m: Record<string, string | null>) => void, RegExp][] = [
    ['classes not JSON', (m) => (m.classes = '["a", "b"'), /metadata "classes" is not valid JSON/],
    ['classes null', (m) => (m.classes = 'null'), /metadata "classes" must be a JSON array of strings/],
    ['classes of the wrong count', (m) => (m.classes = '["a","b","c"]'), /metadata "classes" has 3 names but the model has 2 classes/],
    ['arch not an arch', (m) => (m.arch = '[1,2'), /metadata "arch" is "\[1,2"; expected one of resnet18/],
    ['num_classes -1', (m) => (m.num_classes = '-1'), /metadata "num_classes" is "-1"; expected a positive integer/],
    ['num_classes abc', (m) => (m.num_classes = 'abc'), /metadata "num_classes" is "abc"/],
    ['num_classes 3 (head has 2)', (m) => ((m.num_classes = '3'), delete m.classes), /metadata num_classes 3 does not match the file's head/],
    ['head x', (m) => (m.head = 'x'), /metadata "head" is "x"; expected one of torchvision, linear/],
  ];
  test.each(cases)('%s: CheckpointError naming the key and the file; CLI exit 3', async (name, edit, message) => {
    const file = withMetadata(good, join(tmp, `${name.replace(/\W+/g, '-')}.safetensors`), edit);
    const err = await Model.load(file).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CheckpointError);
    expect((err as CheckpointError).code).toBe('ERR_CHECKPOINT');
    expect((err as Error).message).toContain(file);
    expect((err as Error).message).toMatch(message);
    const r = cli(['predict', '--model', file, sharedPath('data', 'hymenoptera', 'val', 'ants', '8398478_50ef10c47a.jpg')]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });
});

describe('training data and concurrency', () => {
  const data = join(tmp, 'synthetic');
  beforeAll(async () => {
    await makeSyntheticDataset(data, { classes: 2, trainPerClass: 24, valPerClass: 4, size: 32 });
  }, 60_000);

  test('a dataset with one class is a DatasetError naming the folder, before any work (library and CLI)', async () => {
    const one = join(tmp, 'one-class');
    mkdirSync(join(one, 'train', 'only'), { recursive: true });
    mkdirSync(join(one, 'val', 'only'), { recursive: true });
    const cls = readdirSync(join(data, 'train'))[0];
    for (const f of readdirSync(join(data, 'train', cls)).slice(0, 8)) copyFileSync(join(data, 'train', cls, f), join(one, 'train', 'only', f));
    for (const f of readdirSync(join(data, 'val', cls)).slice(0, 2)) copyFileSync(join(data, 'val', cls, f), join(one, 'val', 'only', f));
    const ds = await ImageFolder.open(join(one, 'train'), { transform: Transform.compose(Transform.resize(32), Transform.toTensor()) });
    const model = await Model.create({ arch: 'squeezenet1_1', numClasses: 2, weights: null });
    const trainer = new Trainer(model, { epochs: 1 });
    await expect(trainer.fit(new DataLoader(ds, { batchSize: 4 }))).rejects.toThrow(DatasetError);
    await expect(trainer.fit(new DataLoader(ds, { batchSize: 4 }))).rejects.toThrow(`${join(one, 'train')}: one class (only)`);
    model.dispose();
    const out = join(tmp, 'one-class-run');
    const r = cli(['train', '--data', one, '--arch', 'squeezenet1_1', '--weights', 'none', '--epochs', '1', '--image-size', '32', '--out', out]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`${join(one, 'train')}: one class folder (only); training a classifier needs at least two`);
    expect(existsSync(out)).toBe(false); // refused before any work
  }, 60_000);

  test('a second concurrent fit on one model is a BusyError; mutating calls are refused during a fit, reads are queued', async () => {
    const ds = await ImageFolder.open(join(data, 'train'), { transform: Transform.compose(Transform.resize(32), Transform.toTensor(), Transform.normalize()) });
    const model = await Model.create({ arch: 'squeezenet1_1', numClasses: 2, weights: null });
    const a = new Trainer(model, { epochs: 2, seed: 0 });
    const b = new Trainer(model, { epochs: 1, seed: 0 });
    const first = a.fit(new DataLoader(ds, { batchSize: 8, seed: 0 }));
    const second = await b.fit(new DataLoader(ds, { batchSize: 8, seed: 0 })).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(second).toBeInstanceOf(BusyError);
    expect((second as BusyError).code).toBe('ERR_BUSY');
    await expect(model.loadWeights(join(tmp, 'x.pth'))).rejects.toThrow(BusyError);
    await expect(model.setHead('linear')).rejects.toThrow(BusyError);
    expect(() => model.sgdStep(new Float32Array(3 * 32 * 32), [1, 3, 32, 32], [0], 0.1)).toThrow(BusyError);
    // reads run between the fit's steps
    const logits = await model.forward(new Float32Array(3 * 32 * 32), [1, 3, 32, 32]);
    expect(logits.shape).toEqual([1, 2]);
    const fit = await first;
    expect(fit.history).toHaveLength(2);
    // after the fit the model is free again
    const again = await b.fit(new DataLoader(ds, { batchSize: 8, seed: 0 }));
    expect(again.history).toHaveLength(1);
    model.dispose();
  }, 120_000);

  test('train --resume on a missing folder fails (exit 3) without creating it; Trainer resumeFrom likewise', async () => {
    const missing = join(tmp, 'no-such-run');
    const r = cli(['train', '--data', data, '--arch', 'squeezenet1_1', '--weights', 'none', '--epochs', '1', '--image-size', '32', '--resume', missing]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`${missing}: no such run directory to resume`);
    expect(existsSync(missing)).toBe(false);
    const ds = await ImageFolder.open(join(data, 'train'), { transform: Transform.compose(Transform.resize(32), Transform.toTensor()) });
    const model = await Model.create({ arch: 'squeezenet1_1', numClasses: 2, weights: null });
    const ckpt = join(tmp, 'ckpt-not-made');
    await expect(new Trainer(model, { epochs: 1, checkpointDir: ckpt, resumeFrom: missing }).fit(new DataLoader(ds, { batchSize: 8 }))).rejects.toThrow(CheckpointError);
    expect(existsSync(missing)).toBe(false);
    expect(existsSync(ckpt)).toBe(false);
    model.dispose();
  }, 60_000);

  test('undecodable files: the count is exact when the run stops (20 of 20, not the count when the limit tripped)', () => {
    const root = join(tmp, 'all-corrupt');
    for (const cls of ['a', 'b']) {
      mkdirSync(join(root, 'train', cls), { recursive: true });
      for (let i = 0; i < 10; i++) writeFileSync(join(root, 'train', cls, `bad-${i}.jpg`), Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xdb, 0x00, 0x01]), Buffer.alloc(64, i)]));
      writeFileSync(join(root, 'train', cls, 'notes.txt'), 'not an image');
    }
    const r = cli(['train', '--data', root, '--arch', 'squeezenet1_1', '--weights', 'none', '--epochs', '1', '--image-size', '32', '--batch-size', '4', '--out', join(tmp, 'corrupt-run')]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/20 of 20 image files could not be decoded \(and 2 files have an unsupported type\), more than the allowed 5\.0 %/);
  }, 60_000);
});

describe('Grad-CAM overlays in the report', () => {
  test('on a dark photo the photo stays readable under the map, and the map still shows (headless Chromium)', async () => {
    // a dark photo: stripes of luminance 8 and 40 (a night shot / a brain scan)
    const S = 112;
    const px = new Uint8Array(3 * S * S);
    for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) for (let c = 0; c < 3; c++) px[c * S * S + y * S + x] = Math.floor(x / 14) % 2 ? 40 : 8;
    const thumbnail = (await encodeJpeg({ data: px, shape: [3, S, S] }, 95)).toString('base64');
    // the map: hot on the left half, cold on the right
    const cam = { size: 28, data: Array.from({ length: 28 * 28 }, (_, k) => (k % 28 < 14 ? 255 : 0)) };
    const dir = join(tmp, 'dark-report');
    mkdirSync(dir);
    const report = await writeRunReport(dir, {
      title: 'dark',
      createdAt: new Date().toISOString(),
      arch: 'resnet18',
      strategy: 'full',
      weights: null,
      classes: ['a', 'b'],
      trainSamples: 1,
      valSamples: 1,
      options: {},
      environment: { libtorch: 'x', threads: 1, device: 'cpu', precision: 'fp32', bf16: false },
      history: [],
      seconds: 0,
      misclassified: [{ path: '/x/dark.jpg', label: 'a', predicted: 'b', thumbnail, probability: 0.9, trueProbability: 0.1, cam }],
    });
    const puppeteer = await import('puppeteer-core');
    const browser = await puppeteer.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu'] });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      await page.goto(`file://${report}`, { waitUntil: 'load' });
      await page.waitForFunction('window.reportReady === true', { timeout: 20000 });
      // what the reader sees: a screenshot of the figure's image area
      const box = await page.evaluate(() => {
        const r = document.querySelector('.thumbs .cam img')!.getBoundingClientRect();
        return { x: r.left + 2, y: r.top + 2, width: r.width - 4, height: r.height - 4 };
      });
      const shot = PNG.sync.read(Buffer.from(await page.screenshot({ type: 'png', clip: box })));
      const lum = (i: number) => 0.299 * shot.data[i] + 0.587 * shot.data[i + 1] + 0.114 * shot.data[i + 2];
      // contrast between the photo's bright and dark stripes, per half (hot map / cold map)
      const stripes = (x0: number, x1: number) => {
        const sums = [0, 0];
        const counts = [0, 0];
        for (let y = 4; y < shot.height - 4; y++)
          for (let x = x0; x < x1; x++) {
            const sx = Math.floor((x * S) / shot.width);
            if (sx % 14 < 3 || sx % 14 > 10) continue; // away from the stripe edges
            const k = Math.floor(sx / 14) % 2;
            sums[k] += lum(4 * (y * shot.width + x));
            counts[k]++;
          }
        return sums[1] / counts[1] - sums[0] / counts[0];
      };
      const w = shot.width;
      const hot = stripes(0, Math.floor(w / 2) - 8);
      const cold = stripes(Math.ceil(w / 2) + 8, w);
      // red minus blue: the map is visible on the hot half and not on the cold one
      const redness = (x0: number, x1: number) => {
        let s = 0;
        let n = 0;
        for (let y = 0; y < shot.height; y++)
          for (let x = x0; x < x1; x++) {
            const i = 4 * (y * w + x);
            s += shot.data[i] - shot.data[i + 2];
            n++;
          }
        return s / n;
      };
      console.log(`dark photo under Grad-CAM: stripe contrast ${hot.toFixed(0)} (hot half) / ${cold.toFixed(0)} (cold half) of 32 in the file; red-blue ${redness(0, w / 2 - 8).toFixed(0)} vs ${redness(w / 2 + 8, w).toFixed(0)}`);
      expect(hot).toBeGreaterThan(60);
      expect(cold).toBeGreaterThan(60);
      expect(redness(0, w / 2 - 8) - redness(w / 2 + 8, w)).toBeGreaterThan(40);
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 60_000);
});
