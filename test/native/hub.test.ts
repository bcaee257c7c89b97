// Weights hub against a local HTTP server: success, hash mismatch, 404, connection cut, offline.
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Model, downloadWeightsFile, fetchWeights, hubCacheDir, WeightsError, DownloadProgress } from '../../lib';
import { sharedPath } from '../helpers';

const payload = readFileSync(sharedPath('weights', 'squeezenet1_1-imagenet.pth'));
const sha = createHash('sha256').update(payload).digest('hex');
const goodName = `squeezenet1_1-${sha.slice(0, 8)}.pth`;
let server: Server;
let base: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    const name = (req.url ?? '').split('/').pop();
    if (name === goodName || name === 'squeezenet1_1-b8a52dc0.pth') {
      res.writeHead(200, { 'content-length': payload.length });
      res.end(payload);
    } else if (name?.startsWith('cut-')) {
      res.writeHead(200, { 'content-length': payload.length });
      res.write(payload.subarray(0, 100000), () => res.socket?.destroy());
    } else {
      res.writeHead(404);
      res.end('not found');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/models`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const freshCache = () => mkdtempSync(join(tmpdir(), 'tl-hub-'));

test('downloads into the cache with progress, verifies the hash, reuses the file', async () => {
  const cacheDir = freshCache();
  // what a killed download left (a pid that no longer runs) is removed; a live process's partial file is not
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
  writeFileSync(join(cacheDir, `${goodName}.partial-${dead}-1`), 'half');
  writeFileSync(join(cacheDir, `other.pth.partial-${process.pid}-1`), 'ours');
  const progress: DownloadProgress[] = [];
  const path = await downloadWeightsFile(goodName, { hubBaseUrl: base, cacheDir, onProgress: (p) => progress.push(p) });
  expect(path).toBe(join(cacheDir, goodName));
  expect(readFileSync(path).equals(payload)).toBe(true);
  expect(progress.at(-1)).toEqual({ file: goodName, received: payload.length, total: payload.length });
  expect(readdirSync(cacheDir).sort()).toEqual([goodName, `other.pth.partial-${process.pid}-1`].sort());
  // cached: offline works and returns the same file
  expect(await downloadWeightsFile(goodName, { hubBaseUrl: 'http://127.0.0.1:9/none', cacheDir, offline: true })).toBe(path);
  const model = await Model.create({ arch: 'squeezenet1_1', weights: path });
  expect(model.loadReport.source).toBe(path);
  model.dispose();
});

test('hash mismatch leaves nothing behind', async () => {
  const cacheDir = freshCache();
  const err = await fetchWeights('squeezenet1_1', 'IMAGENET1K_V1', { hubBaseUrl: base, cacheDir }).catch((e) => e);
  expect(err).toBeInstanceOf(WeightsError);
  expect(err.message).toMatch(/Hash mismatch .* does not start with b8a52dc0/);
  expect(readdirSync(cacheDir)).toEqual([]);
  // through the model API, with the same error
  await expect(Model.create({ arch: 'squeezenet1_1', weights: 'DEFAULT', hubBaseUrl: base, cacheDir })).rejects.toThrow(/Hash mismatch/);
});

test('404 names the URL and the expected path', async () => {
  const cacheDir = freshCache();
  const err = await fetchWeights('resnet18', 'IMAGENET1K_V1', { hubBaseUrl: base, cacheDir }).catch((e) => e);
  expect(err).toBeInstanceOf(WeightsError);
  expect(err.message).toContain(`${base}/resnet18-f37072fd.pth`);
  expect(err.message).toContain('HTTP 404');
  expect(readdirSync(cacheDir)).toEqual([]);
});

test('connection cut mid-transfer leaves nothing behind', async () => {
  const cacheDir = freshCache();
  const err = await downloadWeightsFile('cut-0123abcd.pth', { hubBaseUrl: base, cacheDir }).catch((e) => e);
  expect(err).toBeInstanceOf(WeightsError);
  expect(err.message).toMatch(/interrupted|cut short/);
  expect(readdirSync(cacheDir)).toEqual([]);
});

test('offline or no network: an error naming the expected path and URL', async () => {
  const cacheDir = freshCache();
  const err = await Model.create({ arch: 'resnet50', weights: 'IMAGENET1K_V2', offline: true, cacheDir }).catch((e) => e);
  expect(err).toBeInstanceOf(WeightsError);
  expect(err.code).toBe('ERR_WEIGHTS');
  expect(err.message).toContain(join(cacheDir, 'resnet50-11ad3fa6.pth'));
  expect(err.message).toContain('https://download.pytorch.org/models/resnet50-11ad3fa6.pth');
  const unreachable = await fetchWeights('resnet18', 'DEFAULT', { hubBaseUrl: 'http://127.0.0.1:9', cacheDir }).catch((e) => e);
  expect(unreachable.message).toMatch(/Could not download .* put the file at/);
  expect(existsSync(join(cacheDir, 'resnet18-f37072fd.pth'))).toBe(false);
});

test('the default cache is PyTorch\'s', () => {
  const old = process.env.TORCH_HOME;
  process.env.TORCH_HOME = '/x/torch';
  expect(hubCacheDir()).toBe('/x/torch/hub/checkpoints');
  if (old === undefined) delete process.env.TORCH_HOME;
  else process.env.TORCH_HOME = old;
});
