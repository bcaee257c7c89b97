// Collects the addon binaries built on this machine into prebuilds/<platform>/<libtorch tag>/ (stripped), the layout
// lib/binary.ts loads from: build/ (the distribution's libtorch, tag system-<major.minor>), build-pypi/ (the pinned
// PyPI torch, tag torch-<version>). Binaries made elsewhere (scripts/prebuild-debian13.sh: Debian 13's libtorch 2.6,
// built in a Debian 13 root) are kept when they were built from the current sources. Each folder gets build.json
// (libtorch, distribution, sources hash). --require (npm's prepack): fail unless at least one binary is there and
// every one was built from the current sources, so a packed tarball never carries a stale or missing binary.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sourcesHash } from './sources-hash.mjs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
if (!existsSync(join(root, 'dist', 'cjs', 'binary.js'))) {
  console.error('[prebuilds] dist/ is missing: run `bash scripts/setup.sh` first');
  process.exit(1);
}
const require_ = (await import('node:module')).createRequire(import.meta.url);
const b = require_(join(root, 'dist', 'cjs', 'binary.js'));

const hash = sourcesHash();
const out = join(root, 'prebuilds', b.PLATFORM);
const builds = [];
const sys = b.systemLibtorch();
if (sys && existsSync(join(root, 'build', 'Release', 'torch_resnet_tl.node'))) builds.push({ dir: join(root, 'build', 'Release'), lt: sys });
const venvPython = join(root, '.torch2', 'venv', 'bin', 'python');
const pypi = existsSync(venvPython) ? b.pythonTorch(venvPython, 'pypi') : undefined;
if (pypi && existsSync(join(root, 'build-pypi', 'Release', 'torch_resnet_tl.node'))) builds.push({ dir: join(root, 'build-pypi', 'Release'), lt: pypi });

const dist = b.distribution();
for (const { dir, lt } of builds) {
  const dst = join(out, lt.tag);
  rmSync(dst, { recursive: true, force: true });
  mkdirSync(dst, { recursive: true });
  for (const f of ['torch_resnet_tl.node', 'tl_preload.node']) {
    if (!existsSync(join(dir, f))) throw new Error(`${join(dir, f)} is missing: rebuild (bash scripts/setup.sh)`);
    execFileSync('strip', ['--strip-unneeded', '-o', join(dst, f), join(dir, f)]);
  }
  writeFileSync(join(dst, 'build.json'), JSON.stringify({ libtorch: lt.version, kind: lt.kind, libDir: lt.libDir, builtOn: dist.name, sources: hash }, null, 1) + '\n');
}

const have = existsSync(out) ? readdirSync(out).filter((t) => existsSync(join(out, t, 'torch_resnet_tl.node'))) : [];
const stale = have.filter((t) => JSON.parse(readFileSync(join(out, t, 'build.json'), 'utf8')).sources !== hash);
for (const t of have) {
  const size = statSync(join(out, t, 'torch_resnet_tl.node')).size;
  console.error(`[prebuilds] ${b.PLATFORM}/${t}: ${(size / 1e6).toFixed(1)} MB${stale.includes(t) ? ' (STALE: built from other sources)' : ''}`);
}
if (process.argv.includes('--require')) {
  if (!have.length) {
    console.error('[prebuilds] no binary to pack: build one first (bash scripts/setup.sh)');
    process.exit(1);
  }
  if (stale.length) {
    console.error(`[prebuilds] ${stale.join(', ')} were built from other sources than these: rebuild them or delete prebuilds/${b.PLATFORM}/<tag>`);
    process.exit(1);
  }
}
