// Packaging: prebuildify (cmake-js build) → npm pack → install the tarball into an empty project → both
// `import { ResNet, Trainer } from 'torch-resnet-tl'` and `require('torch-resnet-tl')` work from the prebuilt
// binary, the CLI runs through the package bin, and without libtorch loading fails with an error listing the fixes.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers';

const tmp = mkdtempSync(join(tmpdir(), 'tl-pack-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const app = join(tmp, 'app');

const SCRIPT = (load: string) => `${load}
const pkgDir = require('node:path').dirname(require.resolve('torch-resnet-tl/package.json'));
(async () => {
  const m = await ResNet.create({ arch: 'resnet18', numClasses: 3, classes: ['a', 'b', 'c'] });
  const out = await m.forward(new Float32Array(2 * 3 * 64 * 64).fill(0.5), [2, 3, 64, 64]);
  const t = new Trainer(m, { epochs: 1 });
  console.log(JSON.stringify({ shape: out.shape, libtorch: version().libtorch, trainer: t.options.strategy, binary: require('node-gyp-build').path(pkgDir) }));
  m.dispose();
})().catch((e) => { console.error(e); process.exit(1); });
`;

test('npm pack + install into an empty project: ESM import and CommonJS require both work from the prebuilt binary', () => {
  execFileSync('npm', ['run', 'prebuildify'], { cwd: ROOT, stdio: 'pipe' });
  const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', tmp], { cwd: ROOT, encoding: 'utf8' }));
  const files: string[] = packed[0].files.map((f: { path: string }) => f.path);
  for (const f of ['prebuilds/linux-x64/torch-resnet-tl.node', 'dist/cjs/index.js', 'dist/esm/index.mjs', 'dist/esm/index.d.mts', 'dist/cjs/cli/index.js', 'package.json'])
    expect(files).toContain(f);
  expect(files.some((f) => f.startsWith('build/') || f.startsWith('test/') || f.startsWith('.fixtures/'))).toBe(false);
  console.log(`npm pack: ${packed[0].filename}, ${(packed[0].size / 1e6).toFixed(1)} MB, ${files.length} files`);

  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', join(tmp, packed[0].filename)], { cwd: app, stdio: 'pipe' });

  writeFileSync(join(app, 'esm.mjs'), SCRIPT(`import { createRequire } from 'node:module';\nconst require = createRequire(import.meta.url);\nimport { ResNet, Trainer, version } from 'torch-resnet-tl';`));
  writeFileSync(join(app, 'cjs.cjs'), SCRIPT(`const { ResNet, Trainer, version } = require('torch-resnet-tl');`));
  for (const file of ['esm.mjs', 'cjs.cjs']) {
    const r = JSON.parse(execFileSync(process.execPath, [file], { cwd: app, encoding: 'utf8' }).trim());
    expect(r.shape).toEqual([2, 3]);
    expect(r.libtorch).toMatch(/^\d+\.\d+/);
    expect(r.trainer).toBe('full');
    expect(r.binary).toContain(join('node_modules', 'torch-resnet-tl', 'prebuilds', 'linux-x64'));
  }
  const info = JSON.parse(execFileSync(join(app, 'node_modules', '.bin', 'torch-resnet-tl'), ['--json', 'info'], { cwd: app, encoding: 'utf8' }));
  expect(info.devices).toContain('cpu');
});

test('without libtorch, loading fails with an error that lists the fixes', () => {
  // libtorch hidden in a private mount namespace (needs root, as on the CI machine)
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `mount --bind /dev/null "$(ldconfig -p | awk '/libtorch_cpu.so/ {print $NF; exit}')" && exec "$0" cjs.cjs`, process.execPath], { cwd: app, encoding: 'utf8' });
  if (r.error) throw r.error;
  expect(r.status).not.toBe(0);
  expect(r.stderr).toContain('Could not load the torch-resnet-tl native addon');
  expect(r.stderr).toContain('apt-get install libtorch-dev');
  expect(r.stderr).toContain('LIBTORCH=/path/to/libtorch');
});
