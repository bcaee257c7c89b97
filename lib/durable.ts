// Crash-consistent files: atomic writes with fsync, checkpoint generations committed by one directory rename, and
// the clean-up of temporaries a killed process left behind.
//
// A training checkpoint is one generation: `generations/epoch-NNNNNN/` holding `model.pth`, `optim.safetensors`
// and `state.json` (the trainer's state plus a manifest: the sha256 of the two other files). It is written into
// `generations/.epoch-NNNNNN.partial-<pid>/`, every file and the folder fsynced, and committed by renaming the
// folder (then the parent is fsynced). A kill at any moment leaves either the previous generations alone or the new
// one complete; resuming takes the newest generation whose manifest checks out and falls back to an older one.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { link, mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CheckpointError } from './errors';

export const GENERATIONS = 'generations';
const GEN_RE = /^epoch-(\d{6})$/;
/** Generations kept: the newest and the one before it (the fallback should the newest be damaged later). */
const KEEP = 2;

async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes `data` to `path` and fsyncs the file (not its folder entry). */
async function writeSynced(path: string, data: string | Buffer): Promise<void> {
  const fh = await open(path, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function namesIn(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

function checkpointError(path: string, e: unknown): CheckpointError {
  if (e instanceof CheckpointError) return e;
  const err = e as NodeJS.ErrnoException;
  return new CheckpointError(`${path}: ${err.code === 'ENOSPC' ? 'no space left on device' : 'write failed'}: ${err.message}`, { cause: e });
}

/** Writes a file atomically and durably: a temporary sibling, fsync, rename, fsync of the folder (created if needed). */
export async function writeFileDurable(path: string, data: string | Buffer): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await mkdir(dirname(path), { recursive: true });
    await writeSynced(tmp, data);
    await rename(tmp, path);
    await fsyncPath(dirname(path));
  } catch (e) {
    await rm(tmp, { force: true });
    throw checkpointError(path, e);
  }
}

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes what killed writers left in `dir`: `<name>.tmp-<pid>…` files and `.partial-<pid>…` files or folders of
 * processes that no longer run (a running process's temporaries are left alone). Returns the removed names.
 */
export async function cleanStaleTemporaries(dir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await namesIn(dir)) {
    const m = /\.(?:tmp|partial)-(\d+)/.exec(name);
    if (!m || alive(Number(m[1]))) continue;
    await rm(join(dir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export interface GenerationFiles {
  model: string;
  optimizer: string;
}

/** The files of the generation in folder `gen`. */
function generationFiles(gen: string): GenerationFiles {
  return { model: join(gen, 'model.pth'), optimizer: join(gen, 'optim.safetensors') };
}

/**
 * Writes and commits generation `epoch` in `dir`: `write` fills the temporary folder (its paths are given) and must
 * leave each file durable (the native savers fsync the file and its folder); then `state` with the manifest is
 * written and synced, the folder renamed and its parent synced. Older generations beyond the newest two are removed
 * afterwards, and `dir/last.pth` is pointed at the new weights (a hard link, replaced atomically). Any failure (a full
 * disk included) is a CheckpointError and leaves the earlier generations intact.
 */
export async function commitGeneration(dir: string, epoch: number, write: (files: GenerationFiles) => Promise<void>, state: object): Promise<string> {
  const gens = join(dir, GENERATIONS);
  const name = `epoch-${String(epoch).padStart(6, '0')}`;
  const tmp = join(gens, `.${name}.partial-${process.pid}`);
  const final = join(gens, name);
  try {
    await mkdir(gens, { recursive: true });
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp);
    const files = generationFiles(tmp);
    await write(files);
    const manifest = { 'model.pth': { sha256: await sha256File(files.model) }, 'optim.safetensors': { sha256: await sha256File(files.optimizer) } };
    await writeSynced(join(tmp, 'state.json'), JSON.stringify({ ...state, manifest }, null, 1));
    await fsyncPath(tmp);
    await rm(final, { recursive: true, force: true });
    await rename(tmp, final);
    await fsyncPath(gens);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw checkpointError(final, e);
  }
  // after the commit: retention and the last.pth convenience link (failures here lose nothing)
  for (const old of (await listGenerations(dir)).slice(KEEP)) await rm(old.dir, { recursive: true, force: true });
  const lastTmp = join(dir, `last.pth.tmp-${process.pid}`);
  try {
    await rm(lastTmp, { force: true });
    await link(join(final, 'model.pth'), lastTmp);
    await rename(lastTmp, join(dir, 'last.pth'));
  } catch {
    await rm(lastTmp, { force: true }).catch(() => undefined);
  }
  return final;
}

/** Committed generations, newest first. */
async function listGenerations(dir: string): Promise<{ epoch: number; dir: string }[]> {
  const gens = join(dir, GENERATIONS);
  return (await namesIn(gens))
    .map((n) => ({ m: GEN_RE.exec(n), n }))
    .filter((x) => x.m)
    .map((x) => ({ epoch: Number(x.m![1]), dir: join(gens, x.n) }))
    .sort((a, b) => b.epoch - a.epoch);
}

/**
 * The newest generation whose state parses and whose files match their manifest (sha256), with the generations
 * passed over and why. Undefined when there is none.
 */
export async function latestGeneration<S>(dir: string): Promise<{ dir: string; state: S; files: GenerationFiles; rejected: { dir: string; reason: string }[] } | undefined> {
  const rejected: { dir: string; reason: string }[] = [];
  for (const g of await listGenerations(dir)) {
    try {
      const state = JSON.parse(await readFile(join(g.dir, 'state.json'), 'utf8')) as S & { manifest?: Record<string, { sha256: string }> };
      if (!state.manifest) throw new Error('state.json has no manifest');
      for (const [file, want] of Object.entries(state.manifest)) {
        const got = await sha256File(join(g.dir, file)).catch(() => `missing`);
        if (got === 'missing') throw new Error(`${file} is missing`);
        if (got !== want.sha256) throw new Error(`${file} does not match its manifest (sha256 ${got.slice(0, 12)}…, expected ${want.sha256.slice(0, 12)}…)`);
      }
      return { dir: g.dir, state, files: generationFiles(g.dir), rejected };
    } catch (e) {
      rejected.push({ dir: g.dir, reason: (e as Error).message });
    }
  }
  return undefined;
}
