// sha256 over the native sources (cpp/, binding/, cmake/, CMakeLists.txt): what a prebuilt binary was built from.
// `node scripts/sources-hash.mjs` prints it.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

export function sourcesHash() {
  const h = createHash('sha256');
  const walk = (p) => {
    if (statSync(p).isDirectory()) for (const e of readdirSync(p).sort()) walk(join(p, e));
    else h.update(relative(root, p)).update('\0').update(readFileSync(p));
  };
  for (const p of ['cpp', 'binding', 'cmake', 'CMakeLists.txt']) walk(join(root, p));
  return h.digest('hex').slice(0, 16);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) console.log(sourcesHash());
