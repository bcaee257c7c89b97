// Faults in data-parallel training: a rank killed mid-epoch makes the others fail (through the launcher at once,
// on their own within the timeout), leaves whole checkpoints, and one process resumes from them. Two network
// namespaces joined by a veth pair stand for two hosts.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataLoader, ImageFolder, ImageList, manualSeed, Model, Trainer, Transform } from '../../lib';
import { launch } from '../../lib/launch';
import { ROOT, sharedPath } from '../helpers';

const tmp = mkdtempSync(join(tmpdir(), 'tl-ddp-faults-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true })); // checkpoints of ResNets add up over runs
const RANK = join(ROOT, 'test', 'scripts', 'ddp-rank.js');
const port = () => 30000 + Math.floor(Math.random() * 900);
const transform = () => Transform.compose([Transform.resize([64, 64]), Transform.toTensor(), Transform.normalize()]);

async function job(name: string, trainer: Record<string, unknown>) {
  const folder = await ImageFolder.open(sharedPath('data', 'hymenoptera', 'train'));
  const items = folder.samples.filter((_, i) => i % 5 === 0).slice(0, 48).map((s) => ({ path: s.path, label: folder.classes[s.label] }));
  const start = join(tmp, `${name}-start.pth`);
  manualSeed(3);
  const m = await Model.create({ arch: 'resnet18', numClasses: 2, classes: folder.classes, channelsLast: false });
  await m.save(start);
  m.dispose();
  const cfg = join(tmp, `${name}.json`);
  writeFileSync(cfg, JSON.stringify({ items, classes: folder.classes, start, out: join(tmp, name), trainer: { strategy: 'full', optimizer: 'sgd', lr: 0.01, precision: 'fp32', ...trainer }, batchSize: 8, seed: 1 }));
  return { cfg, items, classes: folder.classes };
}

test('SIGKILL of rank 1 mid-epoch: the launcher names it and stops rank 0; the checkpoints stay whole; one process resumes', async () => {
  const ck = join(tmp, 'ck');
  const { cfg, items, classes } = await job('kill', { epochs: 3, checkpointDir: ck, distributed: { timeoutMs: 15000 } });
  const t0 = Date.now();
  const lines: string[] = [];
  const r = await launch({ nprocPerNode: 2, masterPort: port(), script: RANK, args: [cfg], env: { TL_KILL_AT: '1:1:1' }, stdio: 'pipe', onOutput: (k, s, t) => lines.push(`[${k} ${s}] ${t}`) });
  const seconds = (Date.now() - t0) / 1000;
  expect(r.ok).toBe(false);
  expect(r.failed).toMatchObject({ rank: 1, signal: 'SIGKILL' });
  expect(r.ranks.find((e) => e.rank === 0)?.code).not.toBe(0);
  expect(seconds).toBeLessThan(60);
  // epoch 0 was committed by rank 0; nothing torn
  const gens = readdirSync(join(ck, 'generations'));
  expect(gens).toContain('epoch-000001');
  expect(gens.filter((g) => g.includes('partial'))).toEqual([]);
  // one process continues the run (a different world size)
  const model = await Model.create({ arch: 'resnet18', numClasses: 2, classes, channelsLast: false });
  const data = ImageList.from(items, { transform: transform() });
  const res = await new Trainer(model, { strategy: 'full', optimizer: 'sgd', lr: 0.01, precision: 'fp32', epochs: 3, checkpointDir: ck, resumeFrom: ck, distributed: false }).fit(new DataLoader(data, { batchSize: 16, shuffle: true, seed: 1 }));
  expect(res.history.map((h) => h.epoch)).toEqual([0, 1, 2]);
  expect(existsSync(join(ck, 'generations', 'epoch-000003'))).toBe(true);
  model.dispose();
});

test('without a launcher, the surviving rank fails on its own within the timeout with a DistributedError', async () => {
  const { cfg } = await job('alone', { epochs: 2, distributed: { timeoutMs: 10000 } });
  const p = port();
  const env = (rank: number) => ({ ...process.env, RANK: String(rank), WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(p), OMP_NUM_THREADS: '1', TL_KILL_AT: '1:0:1' });
  const t0 = Date.now();
  const ranks = [0, 1].map((k) => spawn(process.execPath, [RANK, cfg], { env: env(k), stdio: ['ignore', 'pipe', 'pipe'] }));
  let err0 = '';
  ranks[0].stderr!.on('data', (d) => (err0 += d));
  const codes = await Promise.all(ranks.map((c) => new Promise<[number | null, string | null]>((res) => c.once('exit', (code, sig) => res([code, sig])))));
  const seconds = (Date.now() - t0) / 1000;
  expect(codes[1]).toEqual([null, 'SIGKILL']);
  expect(codes[0][0]).toBe(1);
  expect(err0).toMatch(/ERR_DISTRIBUTED/);
  expect(err0).toMatch(/rank 0 of 2/);
  expect(err0).toMatch(/rank 1 stopped answering/); // the lost rank is named (its heartbeats stopped)
  console.log(`surviving rank failed after ${seconds.toFixed(1)} s: ${err0.split('\n')[0].slice(0, 200)}`);
  expect(seconds).toBeLessThan(45);
});

describe('two hosts: network namespaces joined by a veth pair', () => {
  const ns = ['tl-host-a', 'tl-host-b'];
  const addr = ['10.231.7.1', '10.231.7.2'];
  const sh = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });
  const cleanup = () => {
    for (const n of ns) {
      try {
        sh('netns', 'del', n);
      } catch {
        // not there
      }
    }
  };
  beforeAll(() => {
    if (process.getuid?.() !== 0) throw new Error('the two-host test needs root (ip netns); CI runs as root');
    cleanup();
    for (const n of ns) sh('netns', 'add', n);
    sh('link', 'add', 'tl-veth-a', 'type', 'veth', 'peer', 'name', 'tl-veth-b');
    sh('link', 'set', 'tl-veth-a', 'netns', ns[0]);
    sh('link', 'set', 'tl-veth-b', 'netns', ns[1]);
    for (const [i, n] of ns.entries()) {
      const dev = i === 0 ? 'tl-veth-a' : 'tl-veth-b';
      sh('-n', n, 'addr', 'add', `${addr[i]}/24`, 'dev', dev);
      sh('-n', n, 'link', 'set', dev, 'up');
      sh('-n', n, 'link', 'set', 'lo', 'up');
    }
  });
  afterAll(cleanup);

  test('one rank per host, rendezvous over the veth addresses: both finish with the same weights', async () => {
    const { cfg } = await job('twohost', { epochs: 1 });
    const p = String(port());
    const run = (i: number) =>
      new Promise<{ code: number | null; err: string }>((res) => {
        const c = spawn('ip', ['netns', 'exec', ns[i], process.execPath, RANK, cfg], {
          env: { ...process.env, RANK: String(i), WORLD_SIZE: '2', LOCAL_RANK: '0', MASTER_ADDR: addr[0], MASTER_PORT: p, OMP_NUM_THREADS: '1' },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let err = '';
        c.stderr!.on('data', (d) => (err += d));
        c.once('exit', (code) => res({ code, err }));
      });
    const [a, b] = await Promise.all([run(0), run(1)]);
    if (a.code !== 0 || b.code !== 0) console.log(a.err.slice(-2000), b.err.slice(-2000));
    expect([a.code, b.code]).toEqual([0, 0]);
    const [m0, m1] = [await Model.load(join(tmp, 'twohost.rank0.pth')), await Model.load(join(tmp, 'twohost.rank1.pth'))];
    const [s0, s1, s00] = [await m0.stateDict(), await m1.stateDict(), await (await Model.load(join(tmp, 'twohost-start.pth'))).stateDict()];
    const k = 'layer4.1.conv2.weight';
    expect(s0[k].data.every((x, i) => x === s1[k].data[i])).toBe(true); // the ranks agree
    expect(s0[k].data.some((x, i) => x !== s00[k].data[i])).toBe(true); // and they trained
    m0.dispose();
    m1.dispose();
  });
});
