// Which libtorch the loaded addon was built against, per TORCH_RESNET_TL_LIBTORCH: Debian's 1.13 (system) or PyPI's
// pinned current release (pypi, a CUDA build). On a machine without a GPU the CUDA build reports no CUDA device,
// refuses 'cuda' with a DeviceError naming what exists, and everything CPU works (the rest of the suite).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cuda, DeviceError, devices, Model, version } from '../../lib';
import { ROOT } from '../helpers';

const variant = process.env.TORCH_RESNET_TL_LIBTORCH ?? 'system';

describe(`libtorch variant (${variant})`, () => {
  test('version() names the variant and the libtorch release it was built against', () => {
    const v = version();
    if (variant === 'pypi') {
      const pinned = /^torch==([\d.]+)/m.exec(readFileSync(join(ROOT, 'scripts', 'torch2-requirements.txt'), 'utf8'))?.[1];
      expect(pinned).toMatch(/^2\./);
      expect(v.variant).toBe('pypi');
      expect(v.libtorch).toBe(pinned);
      expect(v.cuda).toBe(true); // PyPI's Linux torch is a CUDA build: this addon links libtorch_cuda
    } else if (variant === 'system') {
      expect(v.variant).toBe('system');
      expect(v.libtorch).toMatch(/^1\.13\./);
    } else {
      expect(v.variant).toBe('custom');
    }
  });

  test('without a GPU: no CUDA device, and cuda:0 is a DeviceError listing the devices', async () => {
    if (cuda.isAvailable()) {
      // on a GPU machine the same build must see it
      expect(devices().filter((d) => d.startsWith('cuda:')).length).toBe(cuda.deviceCount());
      return;
    }
    expect(devices()).toEqual(['cpu']);
    const err = await Model.create({ arch: 'resnet18', weights: null, device: 'cuda:0' }).catch((e) => e);
    expect(err).toBeInstanceOf(DeviceError);
    expect(err.message).toMatch(/available devices: cpu/);
  });
});
