// Decoding as lenient as PIL (torchvision's ImageFolder): on >= 1000 mutated JPEG/PNG files
// (scripts/fixtures/make_pil_corpus.py) the accept/reject decision agrees with PIL's, accepted images equal PIL's
// pixels, and `strict: true` keeps refusing files with decoder warnings.
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { DataLoader, ImageList, Transform } from '../../lib';
import { diffStats, fixture, PYTHON } from '../helpers';

const PNG_CORRUPT_LEAK_LOOPS = 300;

interface Case { name: string; file: string; source: string; mutation: string; pil: boolean; error?: string; shape?: number[]; deterministic?: boolean }
const dir = () => fixture('pilcorpus');
const cases = (): Case[] => JSON.parse(readFileSync(fixture('pilcorpus', 'cases.json'), 'utf8'));

async function decide(c: Case, strict: boolean): Promise<{ ok: boolean; data?: Uint8Array; shape?: number[]; error?: string }> {
  try {
    const out = await Transform.compose().apply(readFileSync(`${dir()}/${c.file}`), { strict });
    return { ok: true, data: out.data as Uint8Array, shape: out.shape };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}

describe('decoding agrees with PIL on a mutated corpus', () => {
  test('accept/reject agreement >= 99 % over >= 1000 files; accepted pixels equal PIL (JPEG max |Δ| <= 2, PNG exact)', async () => {
    const all = cases();
    expect(all.length).toBeGreaterThanOrEqual(1000);
    let agree = 0;
    let compared = 0;
    const disagreements: string[] = [];
    const pixelErrors: string[] = [];
    for (const c of all) {
      const r = await decide(c, false);
      if (r.ok !== c.pil) {
        disagreements.push(`${c.name}: PIL ${c.pil ? 'decodes' : `refuses (${c.error})`}, we ${r.ok ? 'decode' : `refuse (${r.error})`}`);
        continue;
      }
      agree++;
      if (!r.ok || !c.deterministic) continue;
      compared++;
      const ref = new Uint8Array(readFileSync(`${dir()}/${c.name}.bin`));
      const tol = c.file.endsWith('.png') ? 0 : 2;
      if (JSON.stringify(r.shape) !== JSON.stringify(c.shape)) pixelErrors.push(`${c.name}: shape ${r.shape} vs PIL ${c.shape}`);
      else if (diffStats(r.data!, ref).max > tol) pixelErrors.push(`${c.name}: max |Δ| ${diffStats(r.data!, ref).max}`);
    }
    const pilAccepts = all.filter((c) => c.pil).length;
    console.log(`PIL corpus: ${all.length} files (PIL decodes ${pilAccepts}); agreement ${agree}/${all.length} = ${(100 * agree / all.length).toFixed(2)} %; ` +
      `pixels compared on ${compared} accepted files, ${pixelErrors.length} differ\n${disagreements.slice(0, 20).join('\n')}`);
    expect(agree / all.length).toBeGreaterThanOrEqual(0.99);
    expect(compared).toBeGreaterThanOrEqual(300);
    expect(pixelErrors).toEqual([]);
  });

  test('strict: true refuses files with decoder warnings that PIL (and the default) decode, and never accepts more', async () => {
    let strictOnly = 0;
    let originals = 0;
    for (const c of cases()) {
      const r = await decide(c, true);
      if (c.mutation === 'original') {
        expect({ name: c.name, ok: r.ok }).toEqual({ name: c.name, ok: true });
        originals++;
      }
      if (r.ok) expect({ name: c.name, pil: c.pil }).toEqual({ name: c.name, pil: true });
      else if (c.pil) strictOnly++;
    }
    console.log(`strict decoding refuses ${strictOnly} files that PIL decodes`);
    expect(originals).toBeGreaterThanOrEqual(9);
    expect(strictOnly).toBeGreaterThanOrEqual(50);
  });

  test('a dataset of files with libjpeg warnings trains by default and fails under strict', async () => {
    const warned = cases().filter((c) => c.pil && c.file.endsWith('.jpg') && c.mutation === 'body').slice(0, 6);
    const strictRefused: Case[] = [];
    for (const c of warned) if (!(await decide(c, true)).ok) strictRefused.push(c);
    expect(strictRefused.length).toBeGreaterThanOrEqual(2);
    const items = strictRefused.map((c) => ({ path: `${dir()}/${c.file}`, label: 0 }));
    const lenient = ImageList.from(items, { transform: Transform.compose(Transform.resize([32, 32]), Transform.toTensor()) });
    const batches: number[] = [];
    for await (const b of new DataLoader(lenient, { batchSize: 8, workers: 1 })) {
      batches.push(b.size);
      b.dispose();
    }
    expect(batches).toEqual([items.length]);
    const strict = ImageList.from(items, { transform: Transform.compose(Transform.resize([32, 32]), Transform.toTensor()), strict: true });
    const it = new DataLoader(strict, { batchSize: 8, workers: 1 })[Symbol.asyncIterator]();
    await expect(it.next()).rejects.toThrow(/corrupt JPEG data \(strict decoding\)/);
  });
});

describe('decoder error paths free what they allocated', () => {
  test(`a PNG that fails mid-image, decoded ${PNG_CORRUPT_LEAK_LOOPS} times, keeps RSS flat`, async () => {
    // a large truncated PNG: 2000 x 1500 RGB cut in the middle of its image data
    const png = execFileSync(PYTHON, ['-c', [
      'import io, sys, numpy as np', 'from PIL import Image',
      'a = np.random.RandomState(0).randint(0, 256, (1500, 2000, 3)).astype(np.uint8)',
      'b = io.BytesIO(); Image.fromarray(a).save(b, "PNG", compress_level=1); d = b.getvalue()',
      'sys.stdout.buffer.write(d[: len(d) // 2])'].join('\n')], { maxBuffer: 64 << 20 });
    const t = Transform.compose();
    const once = () => t.apply(png).then(() => { throw new Error('a truncated PNG decoded'); }, (e: Error) => expect(e.message).toMatch(/corrupt PNG/));
    for (let i = 0; i < 20; i++) await once();
    const before = process.memoryUsage().rss;
    for (let i = 0; i < PNG_CORRUPT_LEAK_LOOPS; i++) await once();
    const grown = (process.memoryUsage().rss - before) / 2 ** 20;
    console.log(`RSS after ${PNG_CORRUPT_LEAK_LOOPS} failed PNG decodes: ${grown.toFixed(1)} MiB more (each failure would leak 9 MB of rows if freed by longjmp)`);
    expect(grown).toBeLessThan(100);
  });
});
