// The command line end to end (built package, real data): train → eval → predict → export, info, experiment,
// bad arguments, and the HTML report opened in headless Chromium.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { Model, writeRunReport } from '../../lib';
import { python, PYTHON, ROOT, sharedPath } from '../helpers';

const CLI = join(ROOT, 'dist', 'cjs', 'cli', 'index.js');
const tmp = mkdtempSync(join(tmpdir(), 'tl-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function cli(args: string[], opts: { input?: string } = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: tmp, maxBuffer: 64 << 20, input: opts.input });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
function json(args: string[]): any {
  const r = cli(['--json', ...args]);
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const data = sharedPath('data', 'hymenoptera');
const weights = sharedPath('weights', 'squeezenet1_1-imagenet.pth');
const run = join(tmp, 'run');
let trained: any;

describe('CLI', () => {
  test('train: squeezenet1_1 feature extraction on hymenoptera writes best weights, metrics.json and report.html', () => {
    trained = json(['train', '--data', data, '--arch', 'squeezenet1_1', '--weights', weights, '--strategy', 'feature-extract', '--epochs', '2', '--batch-size', '32', '--seed', '1', '--out', run]);
    console.log(`cli train: val accuracy ${trained.evaluation.accuracy.toFixed(3)}, ${trained.seconds.toFixed(1)} s`);
    expect(trained.history).toHaveLength(2);
    expect(trained.classes).toEqual(['ants', 'bees']);
    expect(trained.trainSamples).toBe(244);
    expect(trained.valSamples).toBe(153);
    expect(trained.evaluation.count).toBe(153);
    expect(trained.evaluation.accuracy).toBeGreaterThan(0.8);
    for (const f of ['best.pth', 'metrics.json', 'report.html']) expect(existsSync(join(run, f))).toBe(true);
    const metrics = JSON.parse(readFileSync(join(run, 'metrics.json'), 'utf8'));
    expect(metrics.evaluation.accuracy).toBe(trained.evaluation.accuracy);
    expect(metrics.misclassified.length).toBe(Math.min(24, trained.evaluation.errors.length));
  });

  test('eval: the saved best weights give the accuracy the run reported', () => {
    const r = json(['eval', '--model', join(run, 'best.pth'), '--data', data]);
    expect(r.count).toBe(153);
    expect(r.accuracy).toBeCloseTo(trained.evaluation.accuracy, 6);
    expect(r.perClass.map((c: any) => c.class)).toEqual(['ants', 'bees']);
    const human = cli(['eval', '--model', join(run, 'best.pth'), '--data', data]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/accuracy \d+\.\d%/);
  });

  test('predict: same answers as model.predict in-process', async () => {
    const imgs = [join(data, 'val', 'ants', '8398478_50ef10c47a.jpg'), join(data, 'val', 'bees', '1032546534_06907fe3b3.jpg')].filter(existsSync);
    expect(imgs.length).toBe(2);
    const r = json(['predict', '--model', join(run, 'best.pth'), '--topk', '2', ...imgs]);
    const model = await Model.load(join(run, 'best.pth'));
    const direct = (await model.predict(imgs, { topk: 2 })) as any[][];
    model.dispose();
    expect(r).toHaveLength(2);
    r.forEach((x: any, i: number) => {
      expect(x.image).toBe(imgs[i]);
      expect(x.predictions.map((p: any) => p.label)).toEqual(direct[i].map((p) => p.label));
      x.predictions.forEach((p: any, k: number) => expect(p.probability).toBeCloseTo(direct[i][k].probability, 5));
    });
  });

  test('export: .pth and .safetensors; PyTorch loads the .pth strictly into torchvision', () => {
    const pth = join(tmp, 'exported.pth');
    const st = join(tmp, 'exported.safetensors');
    expect(json(['export', '--model', join(run, 'best.pth'), '--to', st]).numClasses).toBe(2);
    expect(json(['export', '--model', st, '--to', pth]).classes).toEqual(['ants', 'bees']);
    const out = python(
      `import sys, torch, torchvision\nm = torchvision.models.squeezenet1_1(num_classes=2)\nsd = torch.load(sys.argv[1], map_location='cpu')\nprint(m.load_state_dict(sd, strict=True))`,
      [pth],
    );
    expect(out).toContain('All keys matched successfully');
    expect(PYTHON).toBeTruthy();
  });

  test('export --to model.onnx: onnxruntime gives the logits of the saved model', async () => {
    const file = join(tmp, 'model.onnx');
    expect(json(['export', '--model', join(run, 'best.pth'), '--to', file]).classes).toEqual(['ants', 'bees']);
    const x = Float32Array.from({ length: 2 * 3 * 96 * 96 }, (_, i) => Math.cos(i * 0.11));
    writeFileSync(join(tmp, 'onnx-in.f32'), x);
    const r = spawnSync(process.execPath, [join(ROOT, 'test', 'scripts', 'ort-run.js'), file, join(tmp, 'onnx-out'), `${join(tmp, 'onnx-in.f32')}:2x3x96x96`], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    const b = readFileSync(join(tmp, 'onnx-out-0.f32'));
    const theirs = new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    const model = await Model.load(join(run, 'best.pth'));
    const ours = await model.forward(x, [2, 3, 96, 96], { precision: 'fp32' });
    const scale = Math.max(...Array.from(theirs, Math.abs));
    theirs.forEach((t, i) => expect(Math.abs(t - ours.data[i]) / scale).toBeLessThanOrEqual(1e-4));
    expect(cli(['export', '--model', join(run, 'best.pth'), '--to', join(tmp, 'x.pth'), '--opset', '13']).code).toBe(2);
  });

  test('info: libtorch version, devices, threads, CPU features', () => {
    const r = json(['info']);
    expect(r.libtorch).toMatch(/^\d+\.\d+/);
    expect(r.devices).toContain('cpu');
    expect(r.threads).toBeGreaterThan(0);
    expect(typeof r.cpu.bf16).toBe('boolean');
    expect(r.distributed).toContain('gloo'); // set-up installs libgloo-dev: every build here has data-parallel training
    expect(cli(['info']).stdout).toContain('libtorch');
    expect(cli(['info']).stdout).toMatch(/data-parallel backends\s+gloo/);
  });

  test('experiment: prints the table and writes the summary report', () => {
    const out = join(tmp, 'exp');
    const r = cli(['experiment', '--data', data, '--archs', 'squeezenet1_1', '--strategies', 'scratch,feature-extract', '--epochs', '1', '--weights-dir', join(weights, '..'), '--out', out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/squeezenet1_1\s+scratch\s+\d+\.\d%/);
    expect(r.stdout).toMatch(/squeezenet1_1\s+feature-extract\s+\d+\.\d%/);
    const m = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    expect(m.rows.map((x: any) => x.strategy)).toEqual(['scratch', 'feature-extract']);
    expect(m.rows[1].weights).toBe(weights);
    for (const d of ['report.html', 'squeezenet1_1-scratch/report.html', 'squeezenet1_1-feature-extract/best.pth']) expect(existsSync(join(out, d))).toBe(true);
  });

  test('bad arguments: one-line error, the usage, meaningful exit codes', () => {
    const a = cli(['train', '--data', data, '--epochs', '0']);
    expect(a.code).toBe(2);
    expect(a.stderr).toMatch(/--epochs.*invalid/);
    expect(a.stderr).toContain('Usage: torch-resnet-tl train');
    const b = cli(['trian']);
    expect(b.code).toBe(2);
    expect(b.stderr).toContain('Did you mean train?');
    const c = cli(['eval', '--model', join(tmp, 'missing.pth'), '--data', data]);
    expect(c.code).toBe(3);
    expect(c.stderr).toContain('missing.pth');
    const d = cli(['train', '--data', join(tmp, 'nowhere'), '--weights', 'none']);
    expect(d.code).toBe(3);
    expect(d.stderr).toContain('nowhere');
    const cfg = join(tmp, 'bad.json');
    writeFileSync(cfg, JSON.stringify({ epochs: 1, learningRate: 0.1 }));
    const e = cli(['train', '--data', data, '--config', cfg]);
    expect(e.code).toBe(2);
    expect(e.stderr).toContain('learningRate');
    const f = cli(['--json', 'predict', '--model', join(tmp, 'missing.pth'), 'x.jpg']);
    expect(f.code).toBe(3);
    expect(JSON.parse(f.stdout).error.code).toBe('ERR_CHECKPOINT');
  });

  test('train flags reach the Trainer (--schedule, --weight-decay, --label-smoothing, --early-stopping); --resume continues a run; --help shows defaults', () => {
    const root = join(tmp, 'small');
    for (const split of ['train', 'val'])
      for (const cls of ['ants', 'bees']) {
        mkdirSync(join(root, split, cls), { recursive: true });
        for (const f of readdirSync(join(data, split, cls)).filter((f) => f.endsWith('.jpg')).slice(0, 8)) copyFileSync(join(data, split, cls, f), join(root, split, cls, f));
      }
    const base = ['train', '--data', root, '--arch', 'squeezenet1_1', '--weights', weights, '--batch-size', '8', '--image-size', '64', '--seed', '3'];
    const dir = join(tmp, 'flags');
    const r = json([...base, '--epochs', '2', '--lr', '0.002', '--schedule', 'step:stepSize=1,gamma=0.5', '--weight-decay', '0.0001', '--label-smoothing', '0.1', '--early-stopping', '5', '--out', dir]);
    expect(r.options).toMatchObject({ schedule: { type: 'step', stepSize: 1, gamma: 0.5 }, weightDecay: 0.0001, labelSmoothing: 0.1, earlyStopping: { patience: 5 } });
    expect(r.history.map((h: { lr: { head: number } }) => h.lr.head)).toEqual([0.002, 0.001]);
    // continue the same run to 3 epochs: the first two come from its checkpoint, unchanged
    const resumed = json([...base, '--epochs', '3', '--lr', '0.002', '--schedule', 'step:stepSize=1,gamma=0.5', '--resume', dir]);
    expect(resumed.history.map((h: { epoch: number }) => h.epoch)).toEqual([0, 1, 2]);
    expect(resumed.history.slice(0, 2).map((h: { loss: number }) => h.loss)).toEqual(r.history.map((h: { loss: number }) => h.loss));
    expect(resumed.history[2].lr.head).toBeCloseTo(0.0005, 12);
    expect(readdirSync(join(dir, 'generations'))).toEqual(['epoch-000002', 'epoch-000003']);
    // bad schedule specs are usage errors naming the problem
    const bad = cli([...base, '--schedule', 'step:gamma=0.5', '--out', join(tmp, 'bad-schedule')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/schedule\.stepSize/);
    expect(cli([...base, '--resume', join(tmp, 'nothing-here')]).code).toBe(3);
    const help = cli(['train', '--help']).stdout;
    for (const d of ['epochs (default 25)', 'head learning rate (default 0.001)', 'optimizer (default adam)', 'label smoothing in [0, 1) (default 0)', '--resume <dir>'])
      expect(help).toContain(d);
  });

  test('undecodable files: counted and named in the output and metrics.json; over --max-skipped the run fails with exit 3', () => {
    const root = join(tmp, 'skips');
    const bad = (i: number) => Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xdb, 0x00, 0x01]), Buffer.alloc(64, i)]); // bogus marker length
    const pick = (split: string, cls: string, n: number) => readdirSync(join(data, split, cls)).filter((f) => f.endsWith('.jpg')).slice(0, n);
    for (const split of ['train', 'val'])
      for (const cls of ['ants', 'bees']) {
        mkdirSync(join(root, split, cls), { recursive: true });
        for (const f of pick(split, cls, 20)) copyFileSync(join(data, split, cls, f), join(root, split, cls, f));
      }
    writeFileSync(join(root, 'train', 'ants', 'broken-0.jpg'), bad(0));
    const args = ['train', '--data', root, '--arch', 'squeezenet1_1', '--weights', weights, '--epochs', '1', '--batch-size', '16', '--image-size', '64'];
    const ok = json([...args, '--out', join(tmp, 'skips-ok')]);
    expect(ok.skipped.train).toMatchObject({ files: 41, undecodable: 1, unsupported: 0 });
    expect(ok.skipped.train.examples[0].path).toBe(join(root, 'train', 'ants', 'broken-0.jpg'));
    expect(ok.skipped.train.examples[0].reason).toMatch(/corrupt JPEG header/);
    expect(ok.skipped.val).toMatchObject({ files: 40, undecodable: 0 });
    const metrics = JSON.parse(readFileSync(join(tmp, 'skips-ok', 'metrics.json'), 'utf8'));
    expect(metrics.skipped.train.undecodable).toBe(1);
    expect(readFileSync(join(tmp, 'skips-ok', 'report.html'), 'utf8')).toContain('Skipped files');
    const human = cli([...args, '--quiet', '--out', join(tmp, 'skips-human')]);
    expect(human.code).toBe(0);
    // 3 broken of 43 = 7 %: over the default 5 %
    for (const i of [1, 2]) writeFileSync(join(root, 'train', 'ants', `broken-${i}.jpg`), bad(i));
    const failed = cli([...args, '--out', join(tmp, 'skips-fail')]);
    expect(failed.code).toBe(3);
    expect(failed.stderr).toMatch(/3 of 43 image files could not be decoded, more than the allowed 5\.0 %/);
    expect(failed.stderr).toContain('broken-0.jpg');
    // a larger allowance lets it through
    expect(cli([...args, '--max-skipped', '0.1', '--quiet', '--out', join(tmp, 'skips-allowed')]).code).toBe(0);
    expect(cli([...args, '--max-skipped', '2']).code).toBe(2);
  });
});

const autoRun = join(tmp, 'auto');
const collapseRun = join(tmp, 'collapse');
describe('transfer decisions in the CLI', () => {
  test('assess prints the figures and a recommendation', () => {
    const a = json(['assess', '--data', data, '--arch', 'squeezenet1_1', '--weights', weights]);
    expect(a.count).toBe(244);
    expect(a.linearProbeAccuracy).toBeGreaterThan(0.8);
    expect(a.recommendation.strategy).toBe('linear-probe');
    const human = cli(['assess', '--data', data, '--arch', 'squeezenet1_1', '--weights', weights]);
    expect(human.stdout).toMatch(/recommended: --strategy linear-probe --head linear/);
  });

  test("train --strategy auto: ≥ 0.92, the assessment and the choice in metrics.json and report.html", () => {
    const r = json(['train', '--data', data, '--arch', 'squeezenet1_1', '--weights', weights, '--strategy', 'auto', '--out', autoRun]);
    console.log(`cli auto: ${r.assessment.recommendation.strategy}, val accuracy ${r.evaluation.accuracy.toFixed(3)}, ${r.seconds.toFixed(1)} s`);
    expect(r.evaluation.accuracy).toBeGreaterThanOrEqual(0.92);
    const m = JSON.parse(readFileSync(join(autoRun, 'metrics.json'), 'utf8'));
    expect(m.strategy).toBe('auto');
    expect(m.assessment.recommendation.strategy).toBe('linear-probe');
    expect(m.history[0].phase).toBe('linear-probe');
    const html = readFileSync(join(autoRun, 'report.html'), 'utf8');
    expect(html).toContain('Assessment (strategy auto)');
    expect(html).toContain('Chosen: linear-probe');
  });

  test('train --target-data DIR --adapt mmd: digits MNIST → USPS from class folders without train/, target accuracy reported', () => {
    const digits = sharedPath('data', 'mnist_usps');
    const dir = join(tmp, 'da');
    const r = json(['train', '--data', join(digits, 'mnist'), '--target-data', join(digits, 'usps'), '--adapt', 'mmd', '--arch', 'resnet18', '--weights', 'none', '--image-size', '32', '--epochs', '1', '--out', dir]);
    expect(r.trainSamples).toBe(2000);
    expect(r.history[0].adaptation.loss).toBeGreaterThan(0);
    expect(r.targetEvaluation.count).toBe(1800);
    expect(r.targetEvaluation.accuracy).toBeGreaterThan(0.1); // above chance after one epoch
    expect(readFileSync(join(dir, 'report.html'), 'utf8')).toMatch(/target-domain accuracy/);
    expect(cli(['train', '--data', data, '--adapt', 'dann']).code).toBe(2); // --adapt needs --target-data
  });

  test('a collapse (and what auto did about it) is said in report.html', async () => {
    // the detection itself is tested in test/native/transfer.test.ts; here: what the report makes of it
    const m = JSON.parse(readFileSync(join(run, 'metrics.json'), 'utf8'));
    const collapse = { epoch: 1, classIndex: 1, class: 'bees', predictedShare: 1, dataShare: 0.542 };
    await writeRunReport(collapseRun, { ...m, misclassified: [], collapses: [collapse], recoveries: [{ epoch: 1, action: "restored the linear probe's weights" }] });
    expect(readFileSync(join(collapseRun, 'report.html'), 'utf8')).toMatch(/<h2>Collapse<\/h2>/);
  });
});

/** Opens a report in headless Chromium (Debian's), collecting console errors, page errors and failed requests. */
async function openReport(report: string, check: (page: import('puppeteer-core').Page, errors: string[]) => Promise<void>): Promise<void> {
  expect(existsSync(report)).toBe(true);
  const puppeteer = await import('puppeteer-core');
  const browser = await puppeteer.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu'] });
  try {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()}`));
    await page.setViewport({ width: 1200, height: 1400 });
    await page.goto(`file://${report}`, { waitUntil: 'load' });
    await page.waitForFunction('window.reportReady === true', { timeout: 20000 });
    await check(page, errors);
    expect(errors).toEqual([]);
  } finally {
    await browser.close();
  }
}

describe('report.html in headless Chromium', () => {
  test('renders every chart without console errors', async () => {
    await openReport(join(run, 'report.html'), async (page) => {
      // every chart container holds a canvas with more than a background colour
      const charts = await page.evaluate(() =>
        Array.from(document.querySelectorAll('.chart')).map((el) => {
          const c = el.querySelector('canvas') as HTMLCanvasElement | null;
          if (!c) return { id: el.id, colours: 0 };
          const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
          const seen = new Set<number>();
          for (let i = 0; i < d.length; i += 4 * 7) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2] | (d[i + 3] << 24));
          return { id: el.id, colours: seen.size };
        }),
      );
      expect(charts.map((c) => c.id)).toEqual(['chart-loss', 'chart-accuracy', 'chart-lr', 'chart-confusion']);
      for (const c of charts) expect(c.colours).toBeGreaterThan(5);
      const thumbs = await page.evaluate(() => Array.from(document.querySelectorAll('.thumbs img')).filter((i) => (i as HTMLImageElement).naturalWidth > 0).length);
      expect(thumbs).toBe(Math.min(24, trained.evaluation.errors.length));
      // a Grad-CAM overlay drawn on every misclassified image, with more than one colour
      const cams = await page.evaluate(() =>
        Array.from(document.querySelectorAll('canvas.gradcam')).map((c) => {
          const cv = c as HTMLCanvasElement;
          const d = cv.getContext('2d')!.getImageData(0, 0, cv.width, cv.height).data;
          const seen = new Set<number>();
          for (let i = 0; i < d.length; i += 4) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
          return { drawn: cv.dataset.drawn === 'true', colours: seen.size };
        }),
      );
      expect(cams).toHaveLength(thumbs);
      for (const c of cams) expect(c).toMatchObject({ drawn: true });
      expect(Math.max(...cams.map((c) => c.colours))).toBeGreaterThan(10);
      const captions = await page.evaluate(() => Array.from(document.querySelectorAll('.thumbs figcaption')).map((f) => f.textContent ?? ''));
      for (const c of captions) expect(c).toMatch(/\(\d+\.\d%\) → .*\(\d+\.\d%\)/);
      const shot = PNG.sync.read(Buffer.from(await page.screenshot({ type: 'png' })));
      let nonWhite = 0;
      for (let i = 0; i < shot.data.length; i += 4) if (shot.data[i] < 240 || shot.data[i + 1] < 240 || shot.data[i + 2] < 240) nonWhite++;
      const frac = nonWhite / (shot.width * shot.height);
      console.log(`report screenshot: ${shot.width}x${shot.height}, ${(100 * frac).toFixed(1)}% non-white pixels`);
      expect(frac).toBeGreaterThan(0.03);
    });
  });

  test("the auto run's report shows the assessment; the collapsed run's the warning", async () => {
    await openReport(join(autoRun, 'report.html'), async (page) => {
      const text = await page.evaluate(() => document.body.innerText);
      expect(text).toMatch(/linear-probe accuracy/);
      expect(text).toMatch(/Chosen: linear-probe/);
    });
    await openReport(join(collapseRun, 'report.html'), async (page) => {
      const text = await page.evaluate(() => document.body.innerText);
      expect(text).toMatch(/collapsed to predicting one class/);
      expect(text).toMatch(/epoch 2: 100\.0% of validation predictions were 'bees', which is 54\.2% of the data/);
      expect(text).toMatch(/restored the linear probe's weights/);
    });
  });

  test('the experiment summary report renders its two charts without console errors', async () => {
    await openReport(join(tmp, 'exp', 'report.html'), async (page) => {
      const ids = await page.evaluate(() => Array.from(document.querySelectorAll('.chart canvas')).map((c) => c.closest('.chart')!.id));
      expect(ids).toEqual(['chart-accuracy', 'chart-time']);
      const links = await page.evaluate(() => Array.from(document.querySelectorAll('a')).map((a) => a.getAttribute('href')));
      expect(links).toEqual(['squeezenet1_1-scratch/report.html', 'squeezenet1_1-feature-extract/report.html']);
    });
  });
});
