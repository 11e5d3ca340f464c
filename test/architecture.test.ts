// The map is executable (ARCHITECTURE.md, "The rooms"): every import of every file under src/ must be
// allowed by its room's "may use" column, each room may use only rooms above it, every folder of src/
// has a row, and only src/cli and src/index.ts reach the trainer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

const repo = resolve(import.meta.dirname, '..', '..');
const src = join(repo, 'src');

interface Room {
  /** 'util', 'nn', 'native/image', 'index.ts', ... (the path without src/ and the trailing slash). */
  name: string;
  /** Position in the table: a room may use only rooms with a smaller one. */
  order: number;
  /** null: everything. */
  uses: Set<string> | null;
  usesTypes: Set<string>;
}

/** The rooms table of ARCHITECTURE.md. */
export function parseRooms(markdown: string): Map<string, Room> {
  const section = markdown.slice(markdown.indexOf('## The rooms'));
  const rows = section.split('\n').filter((l) => /^\| `/.test(l));
  const rooms = new Map<string, Room>();
  rows.forEach((line, order) => {
    const cells = line.split(' | ');
    const mayUse = cells[cells.length - 1]!.replace(/\s*\|\s*$/, '').trim();
    const name = cells[0]!
      .replace(/^\|\s*`/, '')
      .replace(/`$/, '')
      .replace(/^src\//, '')
      .replace(/\/$/, '');
    const uses = new Set<string>();
    const usesTypes = new Set<string>();
    if (mayUse !== '-' && mayUse !== 'everything') {
      for (const item of mayUse.split(/[,;]\s*/)) {
        const m = item.trim().match(/^([\w/.]+)( \(types\))?$/);
        if (!m) throw new Error(`ARCHITECTURE.md, room ${name}: cannot read "may use" item '${item}'`);
        (m[2] ? usesTypes : uses).add(m[1]!);
      }
    }
    rooms.set(name, { name, order, uses: mayUse === 'everything' ? null : uses, usesTypes });
  });
  return rooms;
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? tsFiles(p) : e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** The room of a path under src/: its first folder, or the file itself at the top. */
function roomOf(path: string): string {
  const parts = relative(src, path).split(sep);
  return parts.length === 1 ? parts[0]! : parts[0]!;
}

interface Import {
  spec: string;
  typeOnly: boolean;
}

/** Relative imports of a file: static (type-only or not), re-exports and dynamic import() calls. */
export function importsOf(file: string, text: string): Import[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const out: Import[] = [];
  const visit = (n: ts.Node): void => {
    if (ts.isImportDeclaration(n) && ts.isStringLiteral(n.moduleSpecifier)) {
      const c = n.importClause;
      const named = c?.namedBindings && ts.isNamedImports(c.namedBindings) ? c.namedBindings.elements : undefined;
      const typeOnly =
        !!c && (c.isTypeOnly || (!c.name && !!named && named.length > 0 && named.every((e) => e.isTypeOnly)));
      out.push({ spec: n.moduleSpecifier.text, typeOnly });
    } else if (ts.isExportDeclaration(n) && n.moduleSpecifier && ts.isStringLiteral(n.moduleSpecifier)) {
      const named = n.exportClause && ts.isNamedExports(n.exportClause) ? n.exportClause.elements : undefined;
      const typeOnly = n.isTypeOnly || (!!named && named.length > 0 && named.every((e) => e.isTypeOnly));
      out.push({ spec: n.moduleSpecifier.text, typeOnly });
    } else if (
      ts.isCallExpression(n) &&
      n.expression.kind === ts.SyntaxKind.ImportKeyword &&
      n.arguments[0] &&
      ts.isStringLiteralLike(n.arguments[0])
    ) {
      out.push({ spec: n.arguments[0].text, typeOnly: false });
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out.filter((i) => i.spec.startsWith('.'));
}

/** Imports of `file` that its room's row does not allow, as readable lines. */
export function violations(rooms: Map<string, Room>, file: string, text: string): string[] {
  const from = rooms.get(roomOf(file));
  if (!from) return [`${relative(repo, file)}: its room ${roomOf(file)} has no row in ARCHITECTURE.md`];
  const out: string[] = [];
  for (const imp of importsOf(file, text)) {
    const target = resolve(dirname(file), imp.spec);
    if (!target.startsWith(src + sep)) continue;
    const toName = roomOf(target);
    if (toName === from.name) continue;
    const to = rooms.get(toName);
    const where = `${relative(repo, file)} imports '${imp.spec}'`;
    if (!to) out.push(`${where}: room ${toName} has no row`);
    else if (from.uses === null) continue;
    else if (!from.uses.has(toName) && !(imp.typeOnly && from.usesTypes.has(toName)))
      out.push(
        `${where}${imp.typeOnly ? ' (types)' : ''}: ${from.name} may use ${[...from.uses, ...[...from.usesTypes].map((r) => `${r} (types)`)].join(', ') || 'nothing'}`,
      );
  }
  return out;
}

const rooms = parseRooms(readFileSync(join(repo, 'ARCHITECTURE.md'), 'utf8'));

test('ARCHITECTURE.md: every folder of src/ has a row, and each room uses only rooms above it', () => {
  const folders = readdirSync(src, { withFileTypes: true })
    .filter((e) => e.isDirectory() || e.name.endsWith('.ts'))
    .map((e) => e.name);
  assert.deepEqual(
    folders.filter((f) => !rooms.has(f)),
    [],
    'folders of src/ without a row',
  );
  const upward: string[] = [];
  for (const r of rooms.values()) {
    for (const u of [...(r.uses ?? []), ...r.usesTypes]) {
      const to = rooms.get(u);
      // The addons' rows name the C++ libraries they link; a room of src/ names only rooms.
      if (!to) {
        if (!r.name.startsWith('native')) upward.push(`${r.name} may use ${u}, which has no row`);
      } else if (to.order >= r.order) upward.push(`${r.name} may use ${u}, which is not above it`);
    }
  }
  assert.deepEqual(upward, []);
});

test('every import under src/ is allowed by its room (ARCHITECTURE.md "may use")', () => {
  const files = tsFiles(src);
  assert.ok(files.length > 150, `only ${files.length} source files: wrong folder?`);
  const bad = files.flatMap((f) => violations(rooms, f, readFileSync(f, 'utf8')));
  assert.deepEqual(bad, []);
  // The one rule said in words: only src/cli and src/index.ts may reach the trainer.
  const reachTrain = [...rooms.values()].filter(
    (r) => r.uses === null || r.uses.has('train') || r.usesTypes.has('train'),
  );
  assert.deepEqual(reachTrain.map((r) => r.name).sort(), ['cli', 'index.ts']);
});

test('negative control: a synthetic import the column forbids is reported; allowed ones are not', () => {
  const planted = (room: string, text: string) => violations(rooms, join(src, room, 'planted.ts'), text);
  // util may use nothing.
  assert.equal(planted('util', "import { Tensor } from '../tensor/index.js';").length, 1);
  // eval may not reach the trainer, whether statically, dynamically or by a re-export.
  assert.equal(planted('eval', "import { train } from '../train/trainer.js';").length, 1);
  assert.equal(planted('eval', "const m = await import('../train/worker-entry.js');").length, 1);
  assert.equal(planted('eval', "export { y } from '../train/fixres.js';").length, 1);
  // run may take types from hub, not values.
  assert.equal(planted('run', "import type { PretrainedRef } from '../hub/index.js';").length, 0);
  assert.equal(planted('run', "import { type A, type B } from '../hub/index.js';").length, 0);
  assert.equal(planted('run', "import { resolvePretrained } from '../hub/index.js';").length, 1);
  // Within the room, above it, comments and packages: fine.
  assert.equal(planted('run', "import { x } from './layout.js';\nimport { y } from '../data/index.js';").length, 0);
  assert.equal(planted('run', "// import { train } from '../train/trainer.js';\nimport sharp from 'sharp';").length, 0);
  // From a nested folder the room is still the first folder.
  assert.equal(
    violations(rooms, join(src, 'serve', 'onnx', 'x.ts'), "import { a } from '../../train/x.js';").length,
    1,
  );
  // A folder without a row is reported.
  assert.equal(planted('newroom', "import { a } from '../util/rng.js';").length, 1);
  // The table parser reads what it is given: an upward "may use" is caught.
  const upside = parseRooms('## The rooms\n| `src/util/` | x | tensor |\n| `src/tensor/` | x | util |\n');
  assert.equal(upside.get('util')!.uses!.has('tensor'), true);
  assert.ok(upside.get('util')!.order < upside.get('tensor')!.order);
});
