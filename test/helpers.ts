import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ChildProcess, execFileSync, spawn } from 'node:child_process';

export const ROOT = resolve(__dirname, '..');
/** Shared read-only data: $TORCH_RESNET_TL_SHARED, default ../shared next to the project. */
export const SHARED = resolve(process.env.TORCH_RESNET_TL_SHARED ?? join(ROOT, '..', 'shared'));
/** Reference fixtures: $TORCH_RESNET_TL_FIXTURES (the libtorch-2 suite uses .fixtures-pypi), default .fixtures. */
export const FIXTURES = resolve(process.env.TORCH_RESNET_TL_FIXTURES ?? join(ROOT, '.fixtures'));
export const PYTHON = process.env.TORCH_RESNET_TL_PYTHON ?? '/usr/bin/python3';

/** Path inside ../shared; throws when missing (tests never skip silently, and CI=true demands the data). */
export function sharedPath(...parts: string[]): string {
  const p = join(SHARED, ...parts);
  if (!existsSync(p))
    throw new Error(`required shared data is missing: ${p} (set TORCH_RESNET_TL_SHARED)${process.env.CI === 'true' ? ' [CI]' : ''}`);
  return p;
}

export function fixture(...parts: string[]): string {
  const p = join(FIXTURES, ...parts);
  if (!existsSync(p)) throw new Error(`fixture missing: ${p}; run \`bash scripts/setup.sh\``);
  return p;
}

export function readF32(path: string): Float32Array {
  const b = readFileSync(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

export function maxAbs(a: ArrayLike<number>): number {
  return maxAbsDiffF64(toF64(a), new Float64Array(a.length));
}

/** Element-wise comparison: largest and mean |Δ|, and the share of elements within `eps`. */
export function diffStats(a: ArrayLike<number>, b: ArrayLike<number>, eps = 1e-6): { max: number; mean: number; same: number } {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  const [x, y] = [toF64(a), toF64(b)]; // no global names in the loop: see maxAbsDiff
  let max = 0;
  let sum = 0;
  let same = 0;
  for (let i = 0, n = x.length; i < n; i++) {
    let d = x[i] - y[i];
    if (d < 0) d = -d;
    if (!(d <= max)) max = d === d ? d : 1 / 0;
    sum += d;
    if (d <= eps) same++;
  }
  return { max, mean: sum / x.length, same: same / x.length };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  // The loop names no global (Math, Number, Infinity): under Jest the global object is a vm context, every global
  // lookup goes through its interceptor, and a loop with `Math.max` ran 40x slower (54 s for one state dict of the
  // zoo). Both sides are copied into one array type first (a native copy; int64 buffers arrive as BigInt64Array).
  return maxAbsDiffF64(toF64(a), toF64(b));
}

function toF64(a: ArrayLike<number>): Float64Array {
  return typeof a[0] === 'bigint' ? Float64Array.from(a as ArrayLike<number>, Number) : new Float64Array(a);
}

function maxAbsDiffF64(a: Float64Array, b: Float64Array): number {
  let m = 0;
  for (let i = 0, n = a.length; i < n; i++) {
    let d = a[i] - b[i];
    if (d < 0) d = -d;
    if (!(d <= m)) m = d === d ? d : 1 / 0;
  }
  return m;
}

/** Runs Python (Debian's torch + torchvision) and returns stdout. */
export function python(code: string, args: string[] = []): string {
  return execFileSync(PYTHON, ['-c', code, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
}

/**
 * For a test file that runs a prediction server — `torch-resnet-tl serve` (the CLI) or examples/serve.ts — a scratch
 * folder and `start(model, flags)` → base URL; `proc()` is the running server. It is stopped and the folder removed
 * after the file's tests.
 */
export function serveHarness(prefix: string, what: 'cli' | 'example' = 'cli'): { tmp: string; start: (modelPath: string, extra: string[]) => Promise<string>; proc: () => ChildProcess } {
  const tmp = mkdtempSync(join(tmpdir(), prefix));
  let proc: ChildProcess | undefined;
  let stopping = false;
  afterAll(() => {
    stopping = true;
    // tsx runs the example in a child process and relays SIGTERM to it (a SIGKILL would orphan that child)
    proc?.kill(what === 'cli' ? 'SIGKILL' : 'SIGTERM');
    rmSync(tmp, { recursive: true, force: true });
  });
  const start = (modelPath: string, extra: string[]) =>
    new Promise<string>((resolvePromise, reject) => {
      const args =
        what === 'cli'
          ? [join(ROOT, 'dist', 'cjs', 'cli', 'index.js'), 'serve', '--model', modelPath, '--port', '0', ...extra]
          : [join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs'), join(ROOT, 'examples', 'serve.ts'), modelPath, '0', ...extra];
      proc = spawn(process.execPath, args, { cwd: ROOT });
      let out = '';
      let err = '';
      proc.stdout!.on('data', (d) => {
        out += d;
        const m = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
        if (m) resolvePromise(m[1]);
      });
      proc.stderr!.on('data', (d) => (err += d));
      proc.on('exit', (code, signal) => {
        reject(new Error(`server exited ${code}: ${err}`));
        // after it started (the promise is settled): a crash mid-test shows up here, not as a bare "fetch failed"
        if (!stopping && out.includes('on http://')) console.error(`the server exited during the test (${code ?? signal}); its stderr:\n${err}`);
      });
    });
  return { tmp, start, proc: () => proc! };
}
