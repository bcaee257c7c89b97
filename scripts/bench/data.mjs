// bench:data — the document's training transforms over hymenoptera/train, batch 32: ours vs torchvision's
// DataLoader in the same run. Best epoch of --epochs (default 2) per setting.
// usage: node scripts/bench/data.mjs [--data ../shared/data/hymenoptera/train] [--epochs 2]
import { lib, runPython, seconds, sharedPath } from './common.mjs';
import { parseArgs } from 'node:util';
import { cpus } from 'node:os';

const { ImageFolder, DataLoader, Transform } = lib;
const { values } = parseArgs({ options: { data: { type: 'string', default: sharedPath('data', 'hymenoptera', 'train') }, epochs: { type: 'string', default: '2' } } });
const epochs = Number(values.epochs);

async function ours(workers, opts = {}) {
  const ds = await ImageFolder.open(values.data, { transform: Transform.documentTrain(), ...opts.dataset });
  const loader = new DataLoader(ds, { batchSize: 32, shuffle: true, seed: 1, workers, ...opts.loader });
  let best = 0;
  for (let e = 0; e < epochs + (opts.warm ? 1 : 0); e++) {
    let n = 0;
    const s = await seconds(async () => {
      for await (const b of loader) {
        n += b.size;
        b.dispose(); // as the Trainer does after each step
      }
    });
    if (opts.warm && e === 0) continue;
    best = Math.max(best, n / s);
  }
  return best;
}

function python(workers) {
  return runPython('default', ['scripts/bench/data_py.py', values.data, String(workers), String(epochs)]).pop().img_per_s;
}

const cores = cpus().length;
const py2 = python(2);
const py0 = python(0);
const o2 = await ours(2);
const o1 = await ours(1);
const warm = await ours(2, { loader: { cache: true }, warm: true });
const f = (x) => x.toFixed(1);
console.log(`\nbench:data — ${values.data}, document training transforms, batch 32, best of ${epochs} epochs, ${cores} cores`);
console.log('| setting | ours img/s | torchvision img/s | ratio |');
console.log('|---|---|---|---|');
console.log(`| 2 workers vs num_workers=2 | ${f(o2)} | ${f(py2)} | ${(o2 / py2).toFixed(2)}× |`);
console.log(`| 1 worker vs num_workers=0 | ${f(o1)} | ${f(py0)} | ${(o1 / py0).toFixed(2)}× |`);
console.log(`| 2 workers, decoded cache warm, vs num_workers=2 | ${f(warm)} | ${f(py2)} | ${(warm / py2).toFixed(2)}× |`);
