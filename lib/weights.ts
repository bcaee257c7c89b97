import { cleanStaleTemporaries } from './durable';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, openSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { WeightsError } from './errors';

/** Names of torchvision's published ImageNet weights. */
export type WeightsName = 'IMAGENET1K_V1' | 'IMAGENET1K_V2' | 'DEFAULT';

/** torchvision's published files per arch (the 8 hex digits are the sha256 prefix of the file). */
export const KNOWN_WEIGHTS: Readonly<Record<string, Readonly<Partial<Record<'IMAGENET1K_V1' | 'IMAGENET1K_V2', string>>>>> = {
  resnet18: { IMAGENET1K_V1: 'resnet18-f37072fd.pth' },
  resnet34: { IMAGENET1K_V1: 'resnet34-b627a593.pth' },
  resnet50: { IMAGENET1K_V1: 'resnet50-0676ba61.pth', IMAGENET1K_V2: 'resnet50-11ad3fa6.pth' },
  resnet101: { IMAGENET1K_V1: 'resnet101-63fe2227.pth', IMAGENET1K_V2: 'resnet101-cd907fc2.pth' },
  resnet152: { IMAGENET1K_V1: 'resnet152-394f9c45.pth', IMAGENET1K_V2: 'resnet152-f82ba261.pth' },
  resnext50_32x4d: { IMAGENET1K_V1: 'resnext50_32x4d-7cdf4587.pth', IMAGENET1K_V2: 'resnext50_32x4d-1a0047aa.pth' },
  resnext101_32x8d: { IMAGENET1K_V1: 'resnext101_32x8d-8ba56ff5.pth', IMAGENET1K_V2: 'resnext101_32x8d-110c445d.pth' },
  resnext101_64x4d: { IMAGENET1K_V1: 'resnext101_64x4d-173b62eb.pth' },
  wide_resnet50_2: { IMAGENET1K_V1: 'wide_resnet50_2-95faca4d.pth', IMAGENET1K_V2: 'wide_resnet50_2-9ba9bcbe.pth' },
  wide_resnet101_2: { IMAGENET1K_V1: 'wide_resnet101_2-32ee1156.pth', IMAGENET1K_V2: 'wide_resnet101_2-d733dc28.pth' },
  squeezenet1_1: { IMAGENET1K_V1: 'squeezenet1_1-b8a52dc0.pth' },
};

/** torchvision's download location; override with `hubBaseUrl` or TORCH_RESNET_TL_HUB. */
export const DEFAULT_HUB_BASE_URL = 'https://download.pytorch.org/models';

export interface DownloadProgress {
  file: string;
  received: number;
  /** Total bytes when the server says (Content-Length), else undefined. */
  total?: number;
}

export interface HubOptions {
  /** Never download; fail naming the expected path and URL when the file is not cached. Default false. */
  offline?: boolean;
  /** Base URL of the weight files. Default: $TORCH_RESNET_TL_HUB or https://download.pytorch.org/models. */
  hubBaseUrl?: string;
  /** Cache folder. Default: $TORCH_HOME/hub/checkpoints, else ~/.cache/torch/hub/checkpoints (PyTorch's). */
  cacheDir?: string;
  /** Called as bytes arrive. */
  onProgress?: (p: DownloadProgress) => void;
}

/** PyTorch's checkpoint cache folder. */
export function hubCacheDir(): string {
  const torchHome = process.env.TORCH_HOME ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'torch');
  return join(torchHome, 'hub', 'checkpoints');
}

/** The file name of named weights for an arch, or undefined when torchvision publishes none. */
export function weightsFileName(arch: string, name: WeightsName): string | undefined {
  const files = KNOWN_WEIGHTS[arch];
  if (!files) return undefined;
  if (name === 'DEFAULT') return files.IMAGENET1K_V2 ?? files.IMAGENET1K_V1;
  return files[name];
}

function expectedHashPrefix(file: string): string | undefined {
  const m = /-([0-9a-f]{8,})\.[a-z]+$/.exec(file);
  return m?.[1];
}

/**
 * Returns the local path of named weights, downloading them into the cache when missing: to a temporary file,
 * verified against the sha256 prefix in the file name, then renamed. A failed download leaves nothing behind.
 */
export async function fetchWeights(arch: string, name: WeightsName, opts: HubOptions = {}): Promise<string> {
  const file = weightsFileName(arch, name);
  if (!file) throw new WeightsError(`No ${name} weights are published for ${arch}`);
  return downloadWeightsFile(file, opts, `Weights ${name} for ${arch}`);
}

/**
 * Returns the cached path of a hub file (`<name>-<sha256 prefix>.<ext>`), downloading `<hubBaseUrl>/<file>` when it
 * is missing and checking the sha256 prefix of its name, as torch.hub does.
 */
export async function downloadWeightsFile(file: string, opts: HubOptions = {}, what = file): Promise<string> {
  if (!/^[\w.-]+$/.test(file)) throw new WeightsError(`Invalid hub file name ${JSON.stringify(file)}`);
  const dir = opts.cacheDir ?? hubCacheDir();
  const path = join(dir, file);
  if (existsSync(path)) return path;
  const base = (opts.hubBaseUrl ?? process.env.TORCH_RESNET_TL_HUB ?? DEFAULT_HUB_BASE_URL).replace(/\/+$/, '');
  const url = `${base}/${file}`;
  if (opts.offline)
    throw new WeightsError(`${what} are not cached and offline is set: expected ${path} (download: ${url})`, { url, path });
  mkdirSync(dir, { recursive: true });
  await cleanStaleTemporaries(dir); // partial downloads of processes that were killed
  const tmp = `${path}.partial-${process.pid}-${Date.now()}`;
  try {
    let res: Response;
    try {
      res = await fetch(url);
    } catch (e) {
      throw new WeightsError(`Could not download ${url} (no network?); put the file at ${path} or pass a local file as weights`, { url, path, cause: e });
    }
    if (!res.ok || !res.body) throw new WeightsError(`Download of ${url} failed: HTTP ${res.status}; expected file at ${path}`, { url, path });
    const total = Number(res.headers.get('content-length')) || undefined;
    const hash = createHash('sha256');
    let received = 0;
    const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
    body.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      received += chunk.length;
      opts.onProgress?.({ file, received, total });
    });
    try {
      // the file is opened here, not lazily by the stream: a failed transfer must not create it after the cleanup
      await pipeline(body, createWriteStream(tmp, { fd: openSync(tmp, 'w') }));
    } catch (e) {
      throw new WeightsError(`Download of ${url} was interrupted after ${received} bytes`, { url, path, cause: e });
    }
    if (total !== undefined && received !== total)
      throw new WeightsError(`Download of ${url} was cut short: ${received} of ${total} bytes`, { url, path });
    const digest = hash.digest('hex');
    const prefix = expectedHashPrefix(file);
    if (prefix && !digest.startsWith(prefix))
      throw new WeightsError(`Hash mismatch for ${url}: sha256 ${digest.slice(0, 16)}… does not start with ${prefix}`, { url, path });
    renameSync(tmp, path);
    return path;
  } finally {
    rmSync(tmp, { force: true });
  }
}

