// Compiles lib/ to CommonJS (dist/cjs) and writes a thin ESM entry (dist/esm) over it, so that
// `import { ResNet } from 'torch-resnet-tl'` and `require('torch-resnet-tl')` share one module instance.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
rmSync(join(root, 'dist'), { recursive: true, force: true });
execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.json')], {
  stdio: 'inherit',
});
// examples/ are type-checked against lib/ (they run with tsx and import the package by name)
execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.examples.json')], {
  stdio: 'inherit',
});
chmodSync(join(root, 'dist/cjs/cli/index.js'), 0o755);
const require = createRequire(import.meta.url);
const names = Object.keys(require(join(root, 'dist/cjs/index.js'))).filter((n) => n !== 'default' && n !== '__esModule');
mkdirSync(join(root, 'dist/esm'), { recursive: true });
writeFileSync(
  join(root, 'dist/esm/index.mjs'),
  `import cjs from '../cjs/index.js';\nexport const { ${names.join(', ')} } = cjs;\nexport default cjs;\n`,
);
writeFileSync(join(root, 'dist/esm/index.d.mts'), `export * from '../cjs/index.js';\n`);
