// The package as users get it, on this machine (Debian 12, its libtorch-dev 1.13): npm pack → npm install of the
// tarball into an empty project → ESM import and CommonJS require both predict with the shared squeezenet weights
// from the prebuilt binary (nothing compiled at install), the CLI runs through the package bin (and serves over
// HTTP), and without libtorch
// loading fails with an error listing the fixes.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, sharedPath } from '../helpers';
import { installInto, pack, predictScript } from './install-helpers';

const tmp = mkdtempSync(join(tmpdir(), 'tl-pack-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const app = join(tmp, 'app');

test('npm pack + install into an empty project: a real prediction from the prebuilt binary, no compiler used', () => {
  const packed = pack(tmp);
  expect(packed.files).toContain('prebuilds/linux-x64/system-1.13/torch_resnet_tl.node');
  expect(packed.files).toContain('prebuilds/linux-x64/system-1.13/tl_preload.node');
  for (const f of ['dist/cjs/index.js', 'dist/esm/index.mjs', 'dist/esm/index.d.mts', 'dist/cjs/cli/index.js', 'package.json', 'CMakeLists.txt', 'cmake/libtorch_root.cmake'])
    expect(packed.files).toContain(f);
  expect(packed.files.some((f) => /^(build|test|\.fixtures|\.torch2)\//.test(f))).toBe(false);
  console.log(`npm pack: ${packed.tarball}, ${(packed.size / 1e6).toFixed(1)} MB, ${packed.files.length} files; prebuilt: ${packed.files.filter((f) => f.endsWith('torch_resnet_tl.node')).join(', ')}`);

  const seconds = installInto(app, packed.tarball);
  const pkg = join(app, 'node_modules', 'torch-resnet-tl');
  // nothing was compiled: no build folder in the installed package
  expect(readdirSync(pkg).filter((f) => f.startsWith('build'))).toEqual([]);
  writeFileSync(join(app, 'esm.mjs'), predictScript(`import { createRequire } from 'node:module';\nconst require = createRequire(import.meta.url);\nimport { Model, version, loadedBinary } from 'torch-resnet-tl';`));
  writeFileSync(join(app, 'cjs.cjs'), predictScript(`const { Model, version, loadedBinary } = require('torch-resnet-tl');`));
  for (const file of ['esm.mjs', 'cjs.cjs']) {
    const r = JSON.parse(execFileSync(process.execPath, [file], { cwd: app, encoding: 'utf8' }).trim().split('\n').pop()!);
    expect(r.top[0]).toMatchObject({ index: 1, label: 'goldfish' });
    expect(r.top[0].probability).toBeGreaterThan(0.9);
    expect(r.libtorch).toMatch(/^1\.13/);
    expect(r.binary.source).toBe('prebuilt');
    expect(r.binary.path).toBe(join(pkg, 'prebuilds', 'linux-x64', 'system-1.13', 'torch_resnet_tl.node'));
    if (file === 'cjs.cjs') console.log(`install ${seconds.toFixed(1)} s; prediction ${r.top[0].label} ${r.top[0].probability.toFixed(4)} with libtorch ${r.libtorch} from ${r.binary.path}`);
  }
  const doctor = JSON.parse(execFileSync(join(app, 'node_modules', '.bin', 'torch-resnet-tl'), ['--json', 'doctor'], { cwd: app, encoding: 'utf8' }));
  expect(doctor).toMatchObject({ libtorch: { kind: 'system', version: '1.13' }, decoders: { jpeg: true, png: true }, problems: [] });
  const info = JSON.parse(execFileSync(join(app, 'node_modules', '.bin', 'torch-resnet-tl'), ['--json', 'info'], { cwd: app, encoding: 'utf8' }));
  expect(info.devices).toContain('cpu');
}, 300_000);

test('the installed CLI serves: POST /predict answers goldfish, SIGTERM drains and exits 0', async () => {
  const save = `const { Model } = require('torch-resnet-tl');\nModel.create({ arch: 'squeezenet1_1', weights: ${JSON.stringify(sharedPath('weights', 'squeezenet1_1-imagenet.pth'))} }).then((m) => m.save('sq.pth'));\n`;
  writeFileSync(join(app, 'save.cjs'), save);
  execFileSync(process.execPath, ['save.cjs'], { cwd: app });
  const server = spawn(join(app, 'node_modules', '.bin', 'torch-resnet-tl'), ['serve', '--model', 'sq.pth', '--port', '0'], { cwd: app });
  const exited = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)));
  const base = await new Promise<string>((resolve, reject) => {
    let out = '';
    server.stdout!.on('data', (d) => {
      out += d;
      const m = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) resolve(m[1]);
    });
    server.once('exit', (code) => reject(new Error(`serve exited ${code}: ${out}`)));
  });
  const r = await fetch(`${base}/predict?topk=1`, { method: 'POST', body: readFileSync(sharedPath('data', 'imagenet-samples', 'n01443537_goldfish.JPEG')) });
  expect(r.status).toBe(200);
  expect(((await r.json()) as { predictions: { label: string }[] }).predictions[0].label).toBe('goldfish');
  expect(await (await fetch(`${base}/metrics`)).text()).toMatch(/^tl_requests_total\{status="200"\} 1$/m);
  server.kill('SIGTERM');
  expect(await exited).toBe(0);
}, 120_000);

test('without libtorch, loading fails with an error that lists the fixes (CLI exit 5)', () => {
  expect(existsSync(join(app, 'cjs.cjs'))).toBe(true);
  // libtorch hidden in a private mount namespace (needs root, as on the CI machine)
  const hide = `mount --bind /dev/null "$(ldconfig -p | awk '/libtorch_cpu.so/ {print $NF; exit}')"`;
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `${hide} && exec "$0" cjs.cjs`, process.execPath], { cwd: app, encoding: 'utf8' });
  if (r.error) throw r.error;
  expect(r.status).not.toBe(0);
  expect(r.stderr).toContain('Could not load the torch-resnet-tl native addon');
  expect(r.stderr).toContain('npx torch-resnet-tl setup');
  expect(r.stderr).toContain('TORCH_RESNET_TL_LIBTORCH=python');
  const cli = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `${hide} && exec "$0" node_modules/.bin/torch-resnet-tl info`, process.execPath], { cwd: app, encoding: 'utf8' });
  expect(cli.status).toBe(5);
  expect(cli.stderr).toContain('npx torch-resnet-tl setup');
});

test('a from-source build that cannot decode JPEG or PNG is refused at configure time, naming the packages', () => {
  const dir = join(tmp, 'cmake-no-decoders');
  // the decoders hidden from CMake: no pkg-config modules, JPEG and PNG not searched
  const r = spawnSync('cmake', ['-S', ROOT, '-B', dir, '-DCMAKE_DISABLE_FIND_PACKAGE_JPEG=ON', '-DCMAKE_DISABLE_FIND_PACKAGE_PNG=ON'], {
    encoding: 'utf8',
    env: { ...process.env, PKG_CONFIG_LIBDIR: join(tmp, 'no-pkg-config') },
  });
  expect(r.status).not.toBe(0);
  const text = (r.stdout + r.stderr).replace(/\s+/g, ' '); // CMake wraps its messages
  expect(text).toMatch(/missing required libraries: JPEG \(libturbojpeg or libjpeg\) PNG \(libpng\)/);
  expect(text).toContain('libturbojpeg0-dev libjpeg62-turbo-dev libpng-dev');
  expect(existsSync(join(dir, 'Makefile')) || existsSync(join(dir, 'build.ninja'))).toBe(false);
}, 120_000);
