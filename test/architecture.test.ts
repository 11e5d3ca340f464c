// The rooms' one-way flow (ARCHITECTURE.md): the trainer is reached only by the CLI and the library
// entry point; everything after training reads the run folder through src/run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

const repo = resolve(import.meta.dirname, '..', '..');
const src = join(repo, 'src');
/** Rooms that must not import src/train. */
const FORBIDDEN_FROM = [
  'eval',
  'serve',
  'report',
  'gallery',
  'audit',
  'data',
  'run',
  'models',
  'nn',
  'tensor',
  'hub',
  'io',
];

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? tsFiles(p) : e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** Import specifiers of a file that resolve into src/train (static, dynamic, re-exports; as TypeScript reads them). */
export function trainImports(file: string, text: string): string[] {
  const { importedFiles } = ts.preProcessFile(text, true, true);
  return importedFiles
    .map((f) => f.fileName)
    .filter((spec) => {
      if (!spec.startsWith('.')) return false;
      const target = relative(src, resolve(dirname(file), spec));
      return target === 'train' || target.startsWith(`train${sep}`);
    });
}

test('no room after training imports src/train (only src/cli and src/index.ts do)', () => {
  const offenders: string[] = [];
  let scanned = 0;
  for (const room of FORBIDDEN_FROM) {
    for (const f of tsFiles(join(src, room))) {
      scanned++;
      const specs = trainImports(f, readFileSync(f, 'utf8'));
      for (const spec of specs) offenders.push(`${relative(repo, f)} imports '${spec}'`);
    }
  }
  assert.ok(scanned > 50, `only ${scanned} source files scanned: wrong folder?`);
  assert.deepEqual(offenders, []);
});

test('negative control: the scanner reports static, dynamic and re-export imports of src/train', () => {
  const file = join(src, 'eval', 'planted.ts');
  const text = [
    "import { train } from '../train/trainer.js';",
    "import type { X } from '../train/config.js';",
    "export { y } from '../train/fixres.js';",
    "const m = await import('../train/worker-entry.js');",
    "// import { z } from '../train/commented.js';",
    "import { ok } from '../run/checkpoint.js';",
    "import { trainer } from './train/not-the-room.js';",
  ].join('\n');
  const expected = ['../train/trainer.js', '../train/config.js', '../train/fixres.js', '../train/worker-entry.js'];
  assert.deepEqual(trainImports(file, text), expected);
  // From a nested folder the same room is two levels up.
  const nested = trainImports(join(src, 'serve', 'onnx', 'x.ts'), "import { a } from '../../train/x.js';");
  assert.deepEqual(nested, ['../../train/x.js']);
});
