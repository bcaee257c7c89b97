// Source-model choice: assess(candidates, loader) ranks backbones on the training images, and the ranking orders them
// as their held-out linear-probe accuracies do (ants/bees at 224 px, MNIST digits at 64 px); the same ranking through
// the CLI (`assess --candidates`, `train --candidates`), deterministic for random-initialised candidates; errors.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assess, Candidate, chooseModel, DataLoader, ImageDataset, ImageFolder, ImageList, InvalidOptionError, RANKING_ORDER, Trainer, Transform } from '../../lib';
import { ROOT, sharedPath } from '../helpers';

const tmp = mkdtempSync(join(tmpdir(), 'tl-cand-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const CLI = join(ROOT, 'dist', 'cjs', 'cli', 'index.js');
const weights = () => sharedPath('weights', 'squeezenet1_1-imagenet.pth');
const candidates = (): Candidate[] => [
  { arch: 'squeezenet1_1', weights: null, name: 'squeezenet random' },
  { arch: 'squeezenet1_1', weights: weights(), name: 'squeezenet ImageNet' },
  { arch: 'resnet18', weights: null, name: 'resnet18 random' },
];

// held-out accuracy of the linear probe (the head fitted on the frozen training features) for each candidate
async function heldOut(cands: Candidate[], train: ImageDataset, val: ImageDataset): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const c of cands) {
    const { model } = await chooseModel([c], new DataLoader(train, { batchSize: 32 }));
    const fit = await new Trainer(model, { strategy: 'linear-probe', seed: 0 }).fit(new DataLoader(train, { batchSize: 32 }), new DataLoader(val, { batchSize: 32 }));
    out[c.name!] = fit.history[0].valAccuracy!;
    model.dispose();
  }
  return out;
}

// every pair the held-out accuracies separate by more than `margin` is ordered the same way by the ranking
function checkOrder(order: string[], acc: Record<string, number>, margin: number): void {
  for (let i = 0; i < order.length; i++)
    for (let j = i + 1; j < order.length; j++)
      if (Math.abs(acc[order[i]] - acc[order[j]]) > margin) {
        const pair = `${order[i]} (${acc[order[i]].toFixed(3)}) ranked above ${order[j]} (${acc[order[j]].toFixed(3)})`;
        expect({ pair, higherRankedIsBetter: acc[order[i]] > acc[order[j]] }).toEqual({ pair, higherRankedIsBetter: true });
      }
}

test('ants/bees: the real ImageNet weights rank first, the ranking agrees with held-out linear-probe accuracy, figures are complete', async () => {
  const t = Transform.imagenetEval();
  const train = await ImageFolder.open(join(sharedPath('data', 'hymenoptera'), 'train'), { transform: t });
  const val = await ImageFolder.open(join(sharedPath('data', 'hymenoptera'), 'val'), { transform: t });
  const r = await assess(candidates(), new DataLoader(train, { batchSize: 32 }));
  expect(r.orderedBy).toBe(RANKING_ORDER);
  expect(r.ranking.map((x) => x.rank)).toEqual([1, 2, 3]);
  expect(r.ranking[0].name).toBe('squeezenet ImageNet');
  // 0.90 against 0.64 on 244 images: far beyond two standard errors
  expect(r.closeCall).toBe(false);
  for (const x of r.ranking) {
    expect(x.assessment.count).toBe(train.length);
    for (const k of ['linearProbeAccuracy', 'knnAccuracy', 'logme'] as const) expect(Number.isFinite(x.assessment[k])).toBe(true);
  }
  // best first by linear probe, then LogME
  for (let i = 1; i < r.ranking.length; i++) {
    const [a, b] = [r.ranking[i - 1].assessment, r.ranking[i].assessment];
    expect(a.linearProbeAccuracy > b.linearProbeAccuracy || (a.linearProbeAccuracy === b.linearProbeAccuracy && a.logme >= b.logme)).toBe(true);
  }
  const acc = await heldOut(candidates(), train, val);
  console.log(`ants/bees ranking: ${r.ranking.map((x) => `${x.name} (probe cv ${x.assessment.linearProbeAccuracy.toFixed(3)}, LogME ${x.assessment.logme.toFixed(3)}; held-out ${acc[x.name].toFixed(3)})`).join(' > ')}`);
  checkOrder(r.ranking.map((x) => x.name), acc, 0.03);
  expect(acc['squeezenet ImageNet']).toBeGreaterThan(0.85);
  // random-initialised candidates are seeded: the same figures again
  const again = await assess(candidates().slice(2), new DataLoader(train, { batchSize: 32 }));
  expect(again.ranking[0].assessment.linearProbeAccuracy).toBe(r.ranking.find((x) => x.name === 'resnet18 random')!.assessment.linearProbeAccuracy);
});

test('MNIST digits (a different order of the random candidates is possible): the ranking agrees with held-out linear-probe accuracy', async () => {
  const root = sharedPath('data', 'mnist_usps', 'mnist');
  const classes = readdirSync(root).sort();
  const items = classes.flatMap((c) => readdirSync(join(root, c)).sort().map((f, i) => ({ path: join(root, c, f), label: c, i })));
  const t = Transform.compose([Transform.resize([64, 64]), Transform.toTensor(), Transform.normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]);
  const split = (k: number) => ImageList.from(items.filter((it) => it.i % 4 === k).map(({ path, label }) => ({ path, label })), { classes, transform: t });
  const [train, val] = [split(0), split(1)];
  const r = await assess(candidates(), new DataLoader(train, { batchSize: 64 }));
  const acc = await heldOut(candidates(), train, val);
  console.log(`digits ranking (${train.length} train / ${val.length} held out): ${r.ranking.map((x) => `${x.name} (probe cv ${x.assessment.linearProbeAccuracy.toFixed(3)}; held-out ${acc[x.name].toFixed(3)})`).join(' > ')}`);
  checkOrder(r.ranking.map((x) => x.name), acc, 0.03);
  expect(typeof r.closeCall).toBe('boolean');
});

test('CLI: assess --candidates prints the ranking (and --json gives it); train --candidates trains the best and records the ranking', () => {
  const data = sharedPath('data', 'hymenoptera');
  const list = `squeezenet1_1:none,squeezenet1_1:${weights()}`;
  const a = spawnSync(process.execPath, [CLI, '--json', 'assess', '--data', data, '--candidates', list], { encoding: 'utf8', cwd: tmp });
  expect(a.status).toBe(0);
  const r = JSON.parse(a.stdout);
  expect(r.ranking.map((x: { name: string }) => x.name)).toEqual([`squeezenet1_1:${weights()}`, 'squeezenet1_1 (random init)']);
  const out = join(tmp, 'run');
  const t = spawnSync(process.execPath, [CLI, 'train', '--data', data, '--candidates', list, '--strategy', 'linear-probe', '--out', out], { encoding: 'utf8', cwd: tmp });
  expect(t.status).toBe(0);
  expect(t.stdout + t.stderr).toMatch(/source model: squeezenet1_1:.*squeezenet1_1-imagenet\.pth \(of 2/);
  const m = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
  expect(m.weights).toBe(weights());
  expect(m.ranking.ranking).toHaveLength(2);
  expect(m.evaluation.accuracy).toBeGreaterThan(0.85);
  expect(readFileSync(join(out, 'report.html'), 'utf8')).toContain('Source model (ranked on the training images)');
  const bad = spawnSync(process.execPath, [CLI, 'assess', '--data', data, '--candidates', 'resnet7:none'], { encoding: 'utf8', cwd: tmp });
  expect(bad.status).toBe(2);
  expect(bad.stderr).toMatch(/candidates\[0\]\.arch/);
});

test("Trainer.auto(candidates, …): strategy 'auto' over source models ranks them on the probe view, trains the best", async () => {
  const root = sharedPath('data', 'hymenoptera');
  const train = await ImageFolder.open(join(root, 'train'), { transform: Transform.imagenetTrain(224) });
  const val = await ImageFolder.open(join(root, 'val'), { transform: Transform.imagenetEval() });
  const r = await Trainer.auto(candidates().slice(0, 2), new DataLoader(train, { batchSize: 32, shuffle: true, seed: 0 }), new DataLoader(val, { batchSize: 32 }), { seed: 0 });
  expect(r.ranking.ranking.map((x) => x.name)).toEqual(['squeezenet ImageNet', 'squeezenet random']);
  expect(r.model.loadReport.source).toBe(weights());
  expect(r.trainer.options.strategy).toBe('auto');
  expect(r.fit.assessment?.recommendation.strategy).toBe('linear-probe');
  // the probe view (centre crops): the ranking's figures are those of assess on the deterministic images
  expect(r.ranking.ranking[0].assessment.linearProbeAccuracy).toBeCloseTo(r.fit.assessment!.linearProbeAccuracy, 6);
  expect(r.fit.history[r.fit.history.length - 1].valAccuracy).toBeGreaterThan(0.85);
  r.model.dispose();
});

test('bad candidates: typed errors naming the entry', async () => {
  const train = await ImageFolder.open(join(sharedPath('data', 'hymenoptera'), 'val'), { transform: Transform.imagenetEval() });
  const dl = new DataLoader(train, { batchSize: 32 });
  await expect(assess([], dl)).rejects.toThrow(InvalidOptionError);
  await expect(assess([{ arch: 'resnet7' as never }], dl)).rejects.toThrow(/candidates\[0\]\.arch/);
  await expect(assess([{ arch: 'resnet18', bogus: 1 } as never], dl)).rejects.toThrow(/bogus/);
  await expect(assess([{ arch: 'resnet18' }, { arch: 'resnet18' }], dl)).rejects.toThrow(/distinct name/);
  await expect(assess([{ arch: 'squeezenet1_1', weights: join(tmp, 'missing.pth') }], dl)).rejects.toThrow(/missing\.pth/);
});
