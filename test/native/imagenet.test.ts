// Real ImageNet weights: squeezenet1_1 on imagenet-samples, tensors preprocessed by torchvision in Python.
import { openSync, readFileSync, readSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { IMAGENET_CLASSES, Model } from '../../lib';
import { fixture, sharedPath } from '../helpers';

test('squeezenet1_1 ImageNet weights reach top-1 >= 0.60 on imagenet-samples (reference 0.612), in fp32 and in the default \'auto\' precision', async () => {
  const dir = fixture('imagenet');
  const { labels } = JSON.parse(readFileSync(join(dir, 'labels.json'), 'utf8')) as { labels: number[] };
  expect(labels.length).toBe(1000);
  const model = await Model.create({ arch: 'squeezenet1_1', weights: sharedPath('weights', 'squeezenet1_1-imagenet.pth') });
  const per = 3 * 224 * 224;
  const batch = 50;
  /** top-1 class of every sample under `precision` (undefined: the model's default, 'auto') */
  const classify = async (precision?: 'fp32') => {
    const fd = openSync(join(dir, 'inputs.bin'), 'r');
    const out: number[] = [];
    try {
      for (let start = 0; start < labels.length; start += batch) {
        const n = Math.min(batch, labels.length - start);
        const buf = Buffer.alloc(n * per * 4);
        readSync(fd, buf, 0, buf.length, start * per * 4);
        const logits = await model.forward(new Float32Array(buf.buffer, buf.byteOffset, n * per), [n, 3, 224, 224], precision ? { precision } : {});
        for (let i = 0; i < n; i++) {
          let best = 0;
          for (let c = 1; c < 1000; c++) if (logits.data[i * 1000 + c] > logits.data[i * 1000 + best]) best = c;
          out.push(best);
        }
      }
    } finally {
      closeSync(fd);
    }
    return out;
  };
  try {
    const fp32 = await classify('fp32');
    const auto = await classify();
    expect([fp32.length, auto.length]).toEqual([1000, 1000]);
    const top1 = (p: number[]) => p.filter((c, i) => c === labels[i]).length / labels.length;
    const agree = auto.filter((c, i) => c === fp32[i]).length / 1000;
    console.log(`squeezenet1_1 imagenet-samples top-1 (torchvision preprocessing): fp32 ${top1(fp32).toFixed(3)}, 'auto' (${model.precision()}) ${top1(auto).toFixed(3)}, same class ${(agree * 100).toFixed(1)}%`);
    expect(top1(fp32)).toBeGreaterThanOrEqual(0.6);
    // the default precision (bf16 autocast on this CPU) keeps the accuracy within a point and nearly every answer
    expect(top1(auto)).toBeGreaterThanOrEqual(top1(fp32) - 0.01);
    expect(agree).toBeGreaterThanOrEqual(0.95);
  } finally {
    model.dispose();
  }
});

test('model.predict with the eval preset on the photos (Node only) reaches top-1 >= 0.60', async () => {
  const dir = sharedPath('data', 'imagenet-samples');
  const rows = readFileSync(join(dir, 'labels.tsv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split('\t'));
  expect(rows.length).toBe(1000);
  const model = await Model.create({ arch: 'squeezenet1_1', weights: sharedPath('weights', 'squeezenet1_1-imagenet.pth') });
  try {
    const preds = await model.predict(rows.map((r) => join(dir, r[0])), { topk: 5 });
    expect(preds.length).toBe(1000);
    expect(preds[0].length).toBe(5);
    expect(preds[0][0].probability).toBeGreaterThanOrEqual(preds[0][1].probability);
    const top1 = preds.filter((p, i) => p[0].index === Number(rows[i][1])).length / rows.length;
    const top5 = preds.filter((p, i) => p.some((q) => q.index === Number(rows[i][1]))).length / rows.length;
    console.log(`squeezenet1_1 imagenet-samples via model.predict: top-1 ${top1.toFixed(3)}, top-5 ${top5.toFixed(3)}`);
    expect(top1).toBeGreaterThanOrEqual(0.6);
    // an ImageNet head answers with ImageNet's class names, in the order of the data's own labels (name column)
    expect(model.classes?.length).toBe(1000);
    for (const p of preds) for (const q of p) expect(q.label).toBe(IMAGENET_CLASSES[q.index]);
    const norm = (x: string) => x.toLowerCase().replace(/[^a-z0-9]/g, '');
    const sameName = rows.filter((r) => norm(r[3]) === norm(IMAGENET_CLASSES[Number(r[1])])).length;
    console.log(`ImageNet class names matching labels.tsv: ${sameName} of 1000`);
    expect(sameName).toBeGreaterThanOrEqual(950);
    // a Buffer input gives the same answer as its file
    const one = await model.predict(readFileSync(join(dir, rows[1][0])), { topk: 3 });
    expect(one.map((p) => p.index)).toEqual(preds[1].slice(0, 3).map((p) => p.index));
  } finally {
    model.dispose();
  }
});
