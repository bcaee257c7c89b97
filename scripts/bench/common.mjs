// What every benchmark shares: the built library (dist/), the shared data folder, timing, and the Python peers —
// Debian's PyTorch 1.13 with its defaults (the loop people write), and PyPI's current torch (.torch2/venv,
// scripts/torch2-requirements.txt) in its best CPU configuration, with jemalloc preloaded and its decay off (on this
// VM fresh large allocations page-fault heavily; a retaining allocator is what PyTorch users who care about CPU speed
// run).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The library as users get it (the CommonJS build); `npm run bench:*` builds it first. */
export const lib = require(join(ROOT, 'dist', 'cjs', 'index.js'));
/** The addon's functions, for the few benchmarks that time one native piece alone. */
export const native = () => require(join(ROOT, 'dist', 'cjs', 'native.js')).getNative();

/** A path in the shared data folder (TORCH_RESNET_TL_SHARED, default ../shared beside the checkout). */
export const SHARED = resolve(process.env.TORCH_RESNET_TL_SHARED ?? join(ROOT, '..', 'shared'));
export const sharedPath = (...parts) => join(SHARED, ...parts);

/** Seconds `fn` takes (awaited). */
export async function seconds(fn) {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

/** Items per second of `fn` (which handles `items` items) over `iters` calls after one warm-up call. */
export async function throughput(items, iters, fn) {
  await fn();
  return (items * iters) / (await seconds(async () => {
    for (let i = 0; i < iters; i++) await fn();
  }));
}

export const DEBIAN_PY = '/usr/bin/python3';
export const PYPI_PY = join(ROOT, '.torch2', 'venv', 'bin', 'python');
const JEMALLOC = '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2';

/** Runs a Python peer ('default': Debian's torch; 'best': PyPI's torch with jemalloc); its stdout's JSON lines. */
export function runPython(kind, args) {
  const best = kind === 'best';
  const py = best ? PYPI_PY : DEBIAN_PY;
  if (!existsSync(py)) throw new Error(`${py} is missing: run \`bash scripts/setup.sh --bench\``);
  const env = { ...process.env };
  if (best) {
    if (!existsSync(JEMALLOC)) throw new Error(`${JEMALLOC} is missing: run \`bash scripts/setup.sh --bench\``);
    env.LD_PRELOAD = JEMALLOC;
    env.MALLOC_CONF = 'dirty_decay_ms:-1,muzzy_decay_ms:-1';
  }
  return execFileSync(py, [...args, ...(best ? ['best'] : [])], { encoding: 'utf8', env })
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l));
}
