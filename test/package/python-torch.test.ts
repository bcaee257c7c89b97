// The user's own PyTorch (run by npm run test:libtorch2, which installs PyPI's torch 2.15.0 into .torch2/venv and
// builds against it; npm test's run on Debian's libtorch cannot reach it): the packed tarball installed into an
// empty project with TORCH_RESNET_TL_LIBTORCH=python and TORCH_RESNET_TL_PYTHON pointing at that venv predicts with
// the prebuilt torch-2.15.0 binary, libtorch's libraries come from the venv and none lie inside node_modules.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers';
import { installInto, pack, predictScript } from './install-helpers';

const tmp = mkdtempSync(join(tmpdir(), 'tl-pytorch-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

test('TORCH_RESNET_TL_LIBTORCH=python: the venv torch 2.15.0 is used from the prebuilt binary, nothing of torch in node_modules', () => {
  const python = process.env.TORCH_RESNET_TL_PYTHON ?? join(ROOT, '.torch2', 'venv', 'bin', 'python');
  const torchVersion = execFileSync(python, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' }).trim();
  const venvLib = execFileSync(python, ['-c', 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))'], { encoding: 'utf8' }).trim();
  const packed = pack(tmp);
  expect(packed.files).toContain(`prebuilds/linux-x64/torch-${torchVersion}/torch_resnet_tl.node`);
  const app = join(tmp, 'app');
  const seconds = installInto(app, packed.tarball);
  writeFileSync(join(app, 'cjs.cjs'), predictScript(`const { Model, version, loadedBinary } = require('torch-resnet-tl');`));
  const env = { ...process.env, TORCH_RESNET_TL_LIBTORCH: 'python', TORCH_RESNET_TL_PYTHON: python };
  const r = JSON.parse(execFileSync(process.execPath, ['cjs.cjs'], { cwd: app, encoding: 'utf8', env }).trim().split('\n').pop()!);
  console.log(`python torch ${torchVersion}: install ${seconds.toFixed(1)} s; ${r.top[0].label} ${r.top[0].probability.toFixed(4)}; libtorch ${r.libtorch} from ${r.libtorchFiles.join(', ')}; binary ${r.binary.path}`);
  expect(r.libtorch).toBe(torchVersion.split('+')[0]);
  expect(r.top[0]).toMatchObject({ index: 1, label: 'goldfish' });
  expect(r.binary).toMatchObject({ source: 'prebuilt', libtorch: { kind: 'python', version: torchVersion } });
  expect(r.libtorchFiles).toEqual([join(venvLib, 'libtorch_cpu.so')]);
  const inModules = execFileSync('find', [join(app, 'node_modules'), '-name', 'libtorch*.so*', '-o', '-name', 'libc10*.so*'], { encoding: 'utf8' }).trim();
  expect(inModules).toBe('');
}, 300_000);
