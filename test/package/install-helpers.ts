// Installing the package the way users do: npm pack (prepack collects this machine's prebuilt binaries), then
// npm install of the tarball into an empty project, then a real prediction from that project.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, sharedPath } from '../helpers';

export interface Packed {
  tarball: string;
  files: string[];
  size: number;
}

export function pack(dest: string): Packed {
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', dest], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const packed = JSON.parse(out.slice(out.search(/^\[/m)));
  return { tarball: join(dest, packed[0].filename), files: packed[0].files.map((f: { path: string }) => f.path), size: packed[0].size };
}

/** npm install of `tarball` into a new empty project `app`; returns the seconds it took. */
export function installInto(app: string, tarball: string): number {
  mkdirSync(app, { recursive: true });
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  const t0 = performance.now();
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], { cwd: app, stdio: 'pipe' });
  return (performance.now() - t0) / 1000;
}

/** A script that predicts with the shared squeezenet weights and reports what it loaded. */
export function predictScript(load: string): string {
  return `${load}
const { readFileSync } = require('node:fs');
(async () => {
  const m = await Model.create({ arch: 'squeezenet1_1', weights: ${JSON.stringify(sharedPath('weights', 'squeezenet1_1-imagenet.pth'))} });
  const [p] = await m.predict([${JSON.stringify(sharedPath('data', 'imagenet-samples', 'n01443537_goldfish.JPEG'))}], { topk: 2 });
  const maps = readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/\\s+/)[5]).filter((f) => f && /libtorch_cpu\\.so/.test(f));
  console.log(JSON.stringify({ top: p, libtorch: version().libtorch, libtorchFiles: [...new Set(maps)], binary: loadedBinary() }));
  m.dispose();
})().catch((e) => { console.error(e); process.exit(1); });
`;
}
