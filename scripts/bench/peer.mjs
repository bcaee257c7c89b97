// The Python peers of the benchmarks: Debian's PyTorch 1.13 with its defaults (the loop people write), and PyPI's
// current torch (.torch2/venv, scripts/torch2-requirements.txt) in its best CPU configuration, with jemalloc
// preloaded and its decay off (on this VM fresh large allocations page-fault heavily; a retaining allocator is what
// PyTorch users who care about CPU speed run).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export const DEBIAN_PY = '/usr/bin/python3';
export const PYPI_PY = '.torch2/venv/bin/python';
const JEMALLOC = '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2';

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
    .map((l) => JSON.parse(l));
}
