// Which libtorch is on this machine, and which binary of the addon fits it. The binary is found, not assumed: a
// prebuilt is used only when it was made for exactly the libtorch found (its tag); otherwise a local build of that
// libtorch, otherwise an error that names the libtorch found, the binaries the package has, and the fix.
//
// TORCH_RESNET_TL_LIBTORCH:
//   unset | system  the distribution's libtorch (Debian/Ubuntu libtorch-dev: libtorch_cpu.so.<major.minor> in the
//                   dynamic linker's cache)
//   python          the torch of a Python environment: TORCH_RESNET_TL_PYTHON, else the python3 first on PATH
//   pypi            the pinned PyPI torch that `torch-resnet-tl setup` (or scripts/setup.sh in a checkout) installs
//                   into a venv of its own
//   <folder>        a libtorch folder (PyTorch's zip): always built from source for it
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export type LibtorchKind = 'system' | 'python' | 'pypi' | 'folder';

/** A libtorch found on this machine. */
export interface LibtorchInfo {
  kind: LibtorchKind;
  /** e.g. '1.13', '2.6' (system: the soname's version), '2.15.0+cu128' (Python torch: torch.__version__). */
  version: string;
  /** Folder with libtorch_cpu.so & co. */
  libDir: string;
  /** Folder CMake builds against (TL_LIBTORCH_ROOT); undefined for the system libtorch (find_package). */
  root?: string;
  /** The Python interpreter (python, pypi). */
  python?: string;
  /** The binary tag: 'system-1.13', 'torch-2.15.0+cu128', 'folder-<version>'. */
  tag: string;
}

/** The platform folder of prebuilt binaries. */
export const PLATFORM = `${process.platform}-${process.arch}`;

/** Where `setup` keeps the pinned PyPI torch for TORCH_RESNET_TL_LIBTORCH=pypi outside a checkout. */
export function pypiHome(): string {
  return resolve(process.env.TORCH_RESNET_TL_HOME ?? join(homedir(), '.cache', 'torch-resnet-tl'), 'pypi');
}

/** The selected kind from TORCH_RESNET_TL_LIBTORCH. */
export function selectedKind(): LibtorchKind {
  const v = process.env.TORCH_RESNET_TL_LIBTORCH;
  if (!v || v === 'system') return 'system';
  if (v === 'python' || v === 'pypi') return v;
  return 'folder';
}

/** Debian/Ubuntu's libtorch: the newest libtorch_cpu.so.<version> the dynamic linker knows. */
export function systemLibtorch(): LibtorchInfo | undefined {
  let listing = '';
  try {
    listing = execFileSync('/sbin/ldconfig', ['-p'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return undefined;
  }
  const found = [...listing.matchAll(/libtorch_cpu\.so\.(\d+\.\d+)[^\n]*=>\s*(\S+)/g)].map((m) => ({ version: m[1], path: m[2] }));
  if (!found.length) return undefined;
  found.sort((a, b) => b.version.localeCompare(a.version, undefined, { numeric: true }));
  const libDir = found[0].path.replace(/\/[^/]+$/, '');
  return { kind: 'system', version: found[0].version, libDir, tag: `system-${found[0].version}` };
}

/** The interpreter TORCH_RESNET_TL_LIBTORCH=python uses. */
export function pythonInterpreter(): string {
  return process.env.TORCH_RESNET_TL_PYTHON || 'python3';
}

/** The pinned PyPI torch's interpreter: the checkout's .torch2/venv, else the one `setup` made in pypiHome(). */
export function pypiInterpreter(packageRoot: string): string {
  const local = join(packageRoot, '.torch2', 'venv', 'bin', 'python');
  return existsSync(local) ? local : join(pypiHome(), 'venv', 'bin', 'python');
}

/**
 * The torch package of a Python environment, found without importing torch (fast): its folder, lib/ and
 * torch.__version__ from version.py. Undefined when the interpreter or torch is missing.
 */
export function pythonTorch(python: string, kind: 'python' | 'pypi' = 'python'): LibtorchInfo | undefined {
  const code = "import importlib.util, os; s = importlib.util.find_spec('torch'); print(os.path.dirname(s.origin) if s and s.origin else '')";
  const r = spawnSync(python, ['-c', code], { encoding: 'utf8', timeout: 30_000 });
  const root = r.status === 0 ? r.stdout.trim() : '';
  if (!root || !existsSync(join(root, 'lib', 'libtorch_cpu.so'))) return undefined;
  const m = /__version__\s*=\s*'([^']+)'/.exec(existsSync(join(root, 'version.py')) ? readFileSync(join(root, 'version.py'), 'utf8') : '');
  const version = m ? m[1] : 'unknown';
  return { kind, version, libDir: join(root, 'lib'), root, python, tag: `torch-${version}` };
}

/** A libtorch folder (PyPI's torch package folder or PyTorch's zip). */
export function folderLibtorch(dir: string): LibtorchInfo | undefined {
  const root = resolve(dir);
  if (!existsSync(join(root, 'lib', 'libtorch_cpu.so'))) return undefined;
  let version = 'unknown';
  for (const f of ['version.py', 'build-version']) {
    const p = join(root, f);
    if (!existsSync(p)) continue;
    const text = readFileSync(p, 'utf8');
    version = (/__version__\s*=\s*'([^']+)'/.exec(text)?.[1] ?? text.trim().split('\n')[0]) || version;
    break;
  }
  return { kind: 'folder', version, libDir: join(root, 'lib'), root, tag: `folder-${version}` };
}

/** The libtorch the selected kind points at, or undefined with `why`. */
export function findLibtorch(packageRoot: string): { found?: LibtorchInfo; why: string } {
  const kind = selectedKind();
  if (kind === 'system') {
    const found = systemLibtorch();
    return { found, why: found ? '' : 'no libtorch_cpu.so.<version> in the dynamic linker cache (ldconfig -p)' };
  }
  if (kind === 'python' || kind === 'pypi') {
    const python = kind === 'python' ? pythonInterpreter() : pypiInterpreter(packageRoot);
    const found = pythonTorch(python, kind);
    return { found, why: found ? '' : `${python} has no importable torch package with lib/libtorch_cpu.so` };
  }
  const dir = process.env.TORCH_RESNET_TL_LIBTORCH as string;
  const found = folderLibtorch(dir);
  return { found, why: found ? '' : `${resolve(dir)} is not a libtorch folder (no lib/libtorch_cpu.so)` };
}

/** The build folder a from-source build for `lt` uses in the package (the checkout's historic names kept). */
export function buildDir(packageRoot: string, lt: LibtorchInfo): string {
  if (lt.kind === 'system') return join(packageRoot, 'build');
  if (lt.kind === 'pypi') return join(packageRoot, 'build-pypi');
  if (lt.kind === 'folder') return join(packageRoot, 'build-custom');
  return join(packageRoot, `build-${lt.tag.replace(/[^\w.+-]/g, '_')}`);
}

/** The file recording which libtorch a local build was made for (written by `setup`'s from-source build). */
export const BUILD_TAG_FILE = 'libtorch-tag';

/** Tags of the prebuilt binaries this package carries. */
export function prebuiltTags(packageRoot: string): string[] {
  const dir = join(packageRoot, 'prebuilds', PLATFORM);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((t) => existsSync(join(dir, t, 'torch_resnet_tl.node')))
    .sort();
}

/**
 * The addon binary for `lt`: a local build made for it, else the prebuilt with its tag; with where it came from.
 * tl_preload.node lies next to it.
 */
export function pickBinary(packageRoot: string, lt: LibtorchInfo): { path: string; source: 'local build' | 'prebuilt' } | undefined {
  const local = buildDir(packageRoot, lt);
  const localAddon = join(local, 'Release', 'torch_resnet_tl.node');
  const tagFile = join(local, BUILD_TAG_FILE);
  // a local build without a tag file comes from a checkout's scripts/setup.sh for this kind: it is the current one
  const localTag = existsSync(tagFile) ? readFileSync(tagFile, 'utf8').trim() : lt.tag;
  if (existsSync(localAddon) && localTag === lt.tag) return { path: localAddon, source: 'local build' };
  const pre = join(packageRoot, 'prebuilds', PLATFORM, lt.tag, 'torch_resnet_tl.node');
  if (existsSync(pre)) return { path: pre, source: 'prebuilt' };
  return undefined;
}

/** libtorch's libraries that a Python environment's binary links by soname, in load order. */
export function libtorchLibraries(lt: LibtorchInfo): string[] {
  return ['libc10.so', 'libc10_cuda.so', 'libtorch_cpu.so', 'libtorch_cuda.so', 'libtorch.so'].map((f) => join(lt.libDir, f)).filter((p) => existsSync(p));
}

/** The distribution (from /etc/os-release), e.g. { id: 'debian', version: '12', name: 'Debian GNU/Linux 12 (bookworm)' }. */
export function distribution(): { id: string; version: string; name: string } {
  try {
    const text = readFileSync('/etc/os-release', 'utf8');
    const get = (k: string) => new RegExp(`^${k}="?([^"\\n]*)"?`, 'm').exec(text)?.[1] ?? '';
    return { id: get('ID'), version: get('VERSION_ID'), name: get('PRETTY_NAME') };
  } catch {
    return { id: process.platform, version: '', name: process.platform };
  }
}

/** Debian/Ubuntu packages: what a prebuilt binary needs at run time, and what a from-source build needs besides. */
export function debianPackages(kind: LibtorchKind): { runtime: string[]; build: string[] } {
  const d = distribution();
  const runtime = ['libturbojpeg0', 'libpng16-16', d.id === 'ubuntu' ? 'libjpeg-turbo8' : 'libjpeg62-turbo'];
  // Debian's libtorch calls the generic libblas.so.3: OpenBLAS instead of the reference BLAS (22x slower products)
  if (kind === 'system') runtime.unshift('libtorch-dev', 'libopenblas0-pthread');
  const build = ['build-essential', 'cmake', 'pkg-config', 'libturbojpeg0-dev', d.id === 'ubuntu' ? 'libjpeg-turbo8-dev' : 'libjpeg62-turbo-dev', 'libpng-dev', 'nlohmann-json3-dev', 'libgloo-dev'];
  if (d.id === 'debian' && Number(d.version) >= 13) {
    // trixie renamed the PNG runtime package with its t64 transition
    runtime[runtime.indexOf('libpng16-16')] = 'libpng16-16t64';
  }
  return { runtime, build };
}
