// `setup` and `doctor`: what a user of the npm package runs once, and what tells them why something does not work.
// setup installs what the selected libtorch needs (apt packages on Debian/Ubuntu when root, else the exact command;
// the pinned PyPI torch for TORCH_RESNET_TL_LIBTORCH=pypi), builds from source when no prebuilt binary fits (with the
// package's own pinned cmake-js), and ends by checking itself. doctor reports libtorch, binary, BLAS, decoders,
// data-parallel backends, devices and threads, each problem with its fix.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { Command, Option } from 'commander';
import {
  BUILD_TAG_FILE,
  buildDir,
  debianPackages,
  distribution,
  findLibtorch,
  LibtorchInfo,
  pickBinary,
  PLATFORM,
  prebuiltTags,
  pypiHome,
  selectedKind,
} from '../binary';
import { devices, getComputePriority, getNumThreads, version } from '../device';
import { TorchResNetError } from '../errors';
import { encodeJpeg } from '../image';
import { loadedBinary, packageRoot } from '../native';
import { Transform } from '../transform';
import { Output, table } from './progress';

/** A failed set-up step: the message says what to run. Exit code 5. */
export class SetupError extends TorchResNetError {
  constructor(message: string) {
    super(message, 'ERR_SETUP');
    this.name = 'SetupError';
  }
}

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

/** Debian packages of `names` that dpkg does not list as installed. */
function missingPackages(names: string[]): string[] {
  return names.filter((p) => {
    const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', p], { encoding: 'utf8' });
    return !(r.status === 0 && r.stdout.includes('install ok installed'));
  });
}

/** Installs Debian packages when root; otherwise throws with the exact command. */
function aptInstall(pkgs: string[], why: string, out: Output): void {
  if (!pkgs.length) return;
  const d = distribution();
  if (!['debian', 'ubuntu'].includes(d.id)) throw new SetupError(`${why}: install the equivalents of these Debian packages with your package manager: ${pkgs.join(' ')}`);
  const cmd = `apt-get install -y --no-install-recommends ${pkgs.join(' ')}`;
  if (!isRoot()) throw new SetupError(`${why}; run:\n  sudo apt-get update && sudo ${cmd}\nthen \`npx torch-resnet-tl setup\` again`);
  out.log(`[setup] ${why}: apt-get install ${pkgs.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...pkgs], { stdio: 'inherit', env });
}

/** The pinned PyPI torch in its own venv (pypiHome()), as the checkout's scripts/setup.sh makes .torch2/venv. */
function ensurePypiTorch(root: string, out: Output): void {
  const home = pypiHome();
  const python = join(home, 'venv', 'bin', 'python');
  if (existsSync(join(root, '.torch2', 'venv', 'bin', 'python')) || existsSync(python)) return;
  const req = join(root, 'scripts', 'torch2-requirements.txt');
  out.log(`[setup] installing the pinned PyPI torch into ${home}/venv (${req}, sha256-checked; about 3 GB)`);
  mkdirSync(home, { recursive: true });
  execFileSync('python3', ['-m', 'venv', join(home, 'venv')], { stdio: 'inherit' });
  execFileSync(join(home, 'venv', 'bin', 'pip'), ['install', '-q', '--disable-pip-version-check', '--require-hashes', '--no-deps', '-r', req], { stdio: 'inherit' });
}

/** Builds the addon from source for `lt` into its build folder with the package's own cmake-js. */
function buildFromSource(root: string, lt: LibtorchInfo, out: Output): void {
  aptInstall(missingPackages(debianPackages(lt.kind).build), 'a from-source build needs a compiler, CMake and the decoders’ headers', out);
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
  const dir = buildDir(root, lt);
  const variant = lt.kind === 'python' ? 'python' : lt.kind === 'folder' ? 'custom' : lt.kind;
  const args = [cmakeJs, 'rebuild', '-O', dir, '--CDCMAKE_BUILD_TYPE=Release', `--CDTL_LIBTORCH_VARIANT=${variant}`, ...(lt.root ? [`--CDTL_LIBTORCH_ROOT=${lt.root}`] : [])];
  out.log(`[setup] building the addon from source for libtorch ${lt.version} (${lt.libDir}) into ${dir}`);
  const r = spawnSync(process.execPath, [...args, '--', `-j${Math.max(1, cpus().length)}`], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) throw new SetupError(`the from-source build failed (exit ${r.status}); its output is above. Build packages: ${debianPackages(lt.kind).build.join(' ')}`);
  writeFileSync(join(dir, BUILD_TAG_FILE), `${lt.tag}\n`);
}

/** A minimal 2×2 RGB PNG (zlib + CRC-32 by hand: no image library needed). */
function tinyPng(): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer) => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.from([0, 0, 0, 2, 0, 0, 0, 2, 8, 2, 0, 0, 0]);
  const raw = Buffer.from([0, 255, 0, 0, 0, 255, 0, 0, 0, 0, 255, 255, 255, 255]);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

/** Decodes a JPEG and a PNG through the native pipeline: true when each works. */
async function decoders(): Promise<{ jpeg: boolean; png: boolean; jpegError?: string; pngError?: string }> {
  const t = Transform.compose(Transform.resize([2, 2]));
  const res: { jpeg: boolean; png: boolean; jpegError?: string; pngError?: string } = { jpeg: false, png: false };
  try {
    const jpg = await encodeJpeg({ data: new Uint8Array(3 * 8 * 8).fill(128), shape: [3, 8, 8] });
    res.jpeg = (await t.apply(jpg)).shape.join('x') === '3x2x2';
  } catch (e) {
    res.jpegError = (e as Error).message;
  }
  try {
    res.png = (await t.apply(tinyPng())).shape.join('x') === '3x2x2';
  } catch (e) {
    res.pngError = (e as Error).message;
  }
  return res;
}

/** The BLAS behind Debian's libtorch (it calls the generic libblas.so.3). */
function blasKind(lt: LibtorchInfo): { kind: string; warning?: string } {
  if (lt.kind !== 'system') return { kind: 'bundled with torch (MKL / OpenBLAS inside the wheel)' };
  for (const p of [join(lt.libDir, 'libblas.so.3'), '/usr/lib/x86_64-linux-gnu/libblas.so.3']) {
    if (!existsSync(p)) continue;
    const real = realpathSync(p);
    if (/openblas/i.test(real)) return { kind: `OpenBLAS (${real})` };
    if (/blis|mkl/i.test(real)) return { kind: real };
    return { kind: `reference BLAS (${real})`, warning: 'the reference BLAS makes matrix products ~22x slower: sudo apt-get install libopenblas0-pthread' };
  }
  return { kind: 'libblas.so.3 not found', warning: 'sudo apt-get install libopenblas0-pthread' };
}

export interface DoctorReport {
  platform: string;
  distribution: string;
  selected: string;
  libtorch?: LibtorchInfo;
  binary?: { path: string; source: string };
  prebuilt: string[];
  libtorchVersion?: string;
  build?: { cuda: boolean; variant: string };
  blas?: string;
  decoders?: { jpeg: boolean; png: boolean };
  distributed?: string[];
  devices?: string[];
  threads?: number;
  computeNice?: number;
  /** `warning`: works, but slower or without an optional capability (reference BLAS, no data-parallel backend). */
  problems: { problem: string; fix: string; warning?: true }[];
}

/** What this machine has and lacks for torch-resnet-tl; loads the addon when it can. */
export async function doctor(): Promise<DoctorReport> {
  const root = packageRoot();
  const d = distribution();
  const kind = selectedKind();
  const r: DoctorReport = { platform: PLATFORM, distribution: d.name, selected: process.env.TORCH_RESNET_TL_LIBTORCH || 'system', prebuilt: prebuiltTags(root), problems: [] };
  const { found, why } = findLibtorch(root);
  if (!found) {
    const pk = debianPackages(kind);
    r.problems.push({ problem: `no libtorch: ${why}`, fix: kind === 'system' ? `npx torch-resnet-tl setup (runs: apt-get install ${pk.runtime.join(' ')}), or TORCH_RESNET_TL_LIBTORCH=python for your own PyTorch` : 'npx torch-resnet-tl setup' });
    return r;
  }
  r.libtorch = found;
  const bin = pickBinary(root, found);
  if (!bin) {
    r.problems.push({ problem: `no binary for libtorch ${found.version} (prebuilt: ${r.prebuilt.join(', ') || 'none'})`, fix: 'npx torch-resnet-tl setup (builds from source)' });
    return r;
  }
  try {
    const v = version();
    const l = loadedBinary();
    r.binary = l ? { path: l.path, source: l.source } : { path: bin.path, source: bin.source };
    r.libtorchVersion = v.libtorch;
    r.build = { cuda: v.cuda, variant: v.variant };
    r.distributed = v.distributed;
    r.devices = devices();
    r.threads = getNumThreads();
    r.computeNice = getComputePriority();
  } catch (e) {
    r.binary = { path: bin.path, source: bin.source };
    r.problems.push({ problem: `the binary does not load: ${(e as Error).message.split('\n')[0]}`, fix: `npx torch-resnet-tl setup${kind === 'system' ? ` (runs: apt-get install ${debianPackages(kind).runtime.join(' ')})` : ''}` });
    return r;
  }
  const blas = blasKind(found);
  r.blas = blas.kind;
  if (blas.warning) r.problems.push({ problem: `BLAS: ${blas.kind}`, fix: blas.warning, warning: true });
  const dec = await decoders();
  r.decoders = { jpeg: dec.jpeg, png: dec.png };
  if (!dec.jpeg) r.problems.push({ problem: `JPEG decoding fails: ${dec.jpegError ?? 'wrong output'}`, fix: 'npx torch-resnet-tl setup --build (a build with libjpeg-turbo)' });
  if (!dec.png) r.problems.push({ problem: `PNG decoding fails: ${dec.pngError ?? 'wrong output'}`, fix: 'npx torch-resnet-tl setup --build (a build with libpng)' });
  if (!r.distributed?.length) r.problems.push({ problem: 'no data-parallel backend in this binary', fix: 'sudo apt-get install libgloo-dev, then npx torch-resnet-tl setup --build (only needed for multi-process training)', warning: true });
  return r;
}

function printDoctor(out: Output, r: DoctorReport): void {
  if (out.json) {
    process.stdout.write(`${JSON.stringify(r, null, 1)}\n`);
    return;
  }
  const rows: [string, string][] = [
    ['platform', `${r.platform}, ${r.distribution}`],
    ['libtorch selected', `${r.selected} (TORCH_RESNET_TL_LIBTORCH)`],
    ['libtorch found', r.libtorch ? `${r.libtorch.version} in ${r.libtorch.libDir}${r.libtorch.python ? ` (${r.libtorch.python})` : ''}` : 'none'],
    ['prebuilt binaries', r.prebuilt.join(', ') || 'none'],
    ['binary in use', r.binary ? `${r.binary.path} (${r.binary.source})` : 'none'],
  ];
  if (r.build) rows.push(['build', `libtorch ${r.libtorchVersion}, ${r.build.cuda ? 'CUDA' : 'CPU'} build`]);
  if (r.blas) rows.push(['BLAS', r.blas]);
  if (r.decoders) rows.push(['JPEG / PNG', `${r.decoders.jpeg ? 'ok' : 'FAILS'} / ${r.decoders.png ? 'ok' : 'FAILS'}`]);
  if (r.distributed) rows.push(['data-parallel', r.distributed.join(', ') || 'none']);
  if (r.devices) rows.push(['devices', r.devices.join(', ')]);
  if (r.threads !== undefined) rows.push(['threads / compute nice', `${r.threads} / ${r.computeNice}`]);
  process.stdout.write(`${table(['item', 'value'], rows)}\n`);
  if (r.problems.length) process.stdout.write(`\nproblems:\n${r.problems.map((p) => `  - ${p.warning ? 'warning: ' : ''}${p.problem}\n    fix: ${p.fix}`).join('\n')}\n`);
  else process.stdout.write('\nno problems found\n');
}

/** `setup` and `doctor`. */
export function addSetupCommands(program: Command, out: () => Output): void {
  program
    .command('setup')
    .description('install what the selected libtorch needs (apt when root, else the command to run; the pinned PyPI torch for TORCH_RESNET_TL_LIBTORCH=pypi), build from source when no prebuilt binary fits, then check')
    .addOption(new Option('--build', 'build from source even when a prebuilt binary fits'))
    .action(async (o) => {
      const output = out();
      const root = packageRoot();
      const kind = selectedKind();
      if (kind === 'system') aptInstall(missingPackages(debianPackages(kind).runtime), 'libtorch and the image decoders are missing', output);
      if (kind === 'pypi') ensurePypiTorch(root, output);
      const { found, why } = findLibtorch(root);
      if (!found) throw new SetupError(`no libtorch for TORCH_RESNET_TL_LIBTORCH=${process.env.TORCH_RESNET_TL_LIBTORCH || 'system'}: ${why}${kind === 'python' ? '; install torch into that Python (pip install torch) or set TORCH_RESNET_TL_PYTHON' : ''}`);
      if (kind !== 'system') aptInstall(missingPackages(debianPackages(kind).runtime), 'the image decoders are missing', output);
      const bin = pickBinary(root, found);
      if (o.build || !bin) buildFromSource(root, found, output);
      else output.log(`[setup] ${bin.source} binary for libtorch ${found.version}: ${bin.path}`);
      const report = await doctor();
      printDoctor(output, report);
      const fatal = report.problems.filter((p) => !p.warning);
      if (fatal.length) throw new SetupError(`set-up check failed: ${fatal.map((p) => p.problem).join('; ')}`);
    });
  program
    .command('doctor')
    .description('report the libtorch found, the binary in use, BLAS, JPEG/PNG decoding, data-parallel backends, devices and threads, with a fix for each problem')
    .action(async () => {
      const output = out();
      const report = await doctor();
      printDoctor(output, report);
      if (report.problems.some((p) => !p.warning)) process.exitCode = 5;
    });
}
