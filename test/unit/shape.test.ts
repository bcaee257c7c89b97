// Code shape of lib/ (the TypeScript layer): files stay under 600 lines and functions under 80, so each reads
// top-down. The ImageNet class-name table is data, not code.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import * as ts from 'typescript';
import { ROOT } from '../helpers';
import { noAddon } from './no-addon';

noAddon();

const MAX_FILE_LINES = 600;
const MAX_FUNCTION_LINES = 80;
const DATA_FILES = new Set(['lib/imagenet-classes.ts']);

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

test(`lib/ files ≤ ${MAX_FILE_LINES} lines, functions ≤ ${MAX_FUNCTION_LINES} lines`, () => {
  const long: string[] = [];
  const files = tsFiles(join(ROOT, 'lib'));
  expect(files.length).toBeGreaterThan(20);
  for (const f of files) {
    const rel = relative(ROOT, f);
    const src = readFileSync(f, 'utf8');
    const lines = src.split('\n').length;
    if (lines > MAX_FILE_LINES && !DATA_FILES.has(rel)) long.push(`${rel}: ${lines} lines`);
    const sf = ts.createSourceFile(f, src, ts.ScriptTarget.ES2022, true);
    const visit = (node: ts.Node): void => {
      if (ts.isFunctionLike(node) && (node as ts.FunctionLikeDeclaration).body) {
        const from = sf.getLineAndCharacterOfPosition(node.getStart()).line;
        const to = sf.getLineAndCharacterOfPosition(node.end).line;
        const name = (node as ts.FunctionLikeDeclaration).name?.getText() ?? '<anonymous>';
        if (to - from + 1 > MAX_FUNCTION_LINES) long.push(`${rel}:${from + 1} ${name}: ${to - from + 1} lines`);
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
  expect(long).toEqual([]);
});
