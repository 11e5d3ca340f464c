// Reads the GR_OP registrations of native/*.cc and compares them with the op table
// (src/tensor/ops.ts): which argument reader each index uses, and how the body returns.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ArgKind, OpDecl, ResultKind } from '../../src/tensor/ops.js';

export interface Registration {
  name: string;
  file: string;
  /** Per argument index, the readers the body applies to it (T, OT, ..., DEV for a device, raw for info[i]). */
  readers: Set<string>[];
  /** How the body returns: RET, RETL, RET2, RETV, Boolean, Number, String, Array, ArrayBuffer, Object. */
  returns: Set<string>;
}

/** The argument text of each `GR_OP(` call at the start of a line, by balanced parentheses. */
function grOpBodies(src: string): string[] {
  const out: string[] = [];
  const re = /^GR_OP\(/gm;
  for (let m = re.exec(src); m; m = re.exec(src)) {
    let depth = 1;
    let i = m.index + m[0].length;
    const start = i;
    for (; i < src.length && depth > 0; i++) {
      const ch = src[i];
      if (ch === '"' || ch === "'") {
        // skip a literal
        for (i++; i < src.length && src[i] !== ch; i++) if (src[i] === '\\') i++;
      } else if (ch === '/' && src[i + 1] === '/') {
        while (i < src.length && src[i] !== '\n') i++;
      } else if (ch === '(') depth++;
      else if (ch === ')') depth--;
    }
    out.push(src.slice(start, i - 1));
  }
  return out;
}

const READER = /\b(T|OT|TL|D|I|OI|OD|B|IL|S|SC|DT|ODT)\((\d+)\)/g;

export function parseRegistrations(src: string, file: string): Registration[] {
  return grOpBodies(src).map((text) => {
    const comma = text.indexOf(',');
    const name = text.slice(0, comma).trim();
    const body = text.slice(comma + 1);
    const readers: Set<string>[] = [];
    const add = (i: number, r: string): void => {
      (readers[i] ??= new Set()).add(r);
    };
    for (const m of body.matchAll(READER)) add(Number(m[2]), m[1]!);
    for (const m of body.matchAll(/argOptions\(info, (\d+), (\d+)\)/g)) {
      add(Number(m[1]), 'DT');
      add(Number(m[2]), 'DEV');
    }
    for (const m of body.matchAll(/argDevice\(info, (\d+)\)/g)) add(Number(m[1]), 'DEV');
    for (const m of body.matchAll(/\bgroup\(info, (\d+)\)/g)) add(Number(m[1]), 'G');
    for (const m of body.matchAll(/info\[(\d+)\]/g)) add(Number(m[1]), 'raw');
    for (let i = 0; i < readers.length; i++) readers[i] ??= new Set();
    const returns = new Set<string>();
    const forms: [string, RegExp][] = [
      ['RET', /\bRET\(/],
      ['RETL', /\bRETL\(/],
      ['RET2', /\bRET2\(/],
      ['RETV', /\bRETV\b/],
      ['Boolean', /return Napi::Boolean::New/],
      ['Number', /return Napi::Number::New/],
      ['String', /return Napi::String::New/],
      ['Array', /return arr;/],
      ['ArrayBuffer', /return ab;/],
      ['Object', /return o;/],
      ['External', /return Napi::External<\w+>::New/],
      ['Null', /return env\.Null\(\)/],
    ];
    for (const [form, re] of forms) if (re.test(body)) returns.add(form);
    return { name, file, readers, returns };
  });
}

/** Every registration of the libtorch addon's sources (native/*.cc; native/image/ is the other addon). */
export function readRegistrations(nativeDir: string): Registration[] {
  return readdirSync(nativeDir)
    .filter((f) => f.endsWith('.cc'))
    .sort()
    .flatMap((f) => parseRegistrations(readFileSync(join(nativeDir, f), 'utf8'), join(nativeDir, f)));
}

/** The C++ reader each declared kind must use; raw (info[i]) may stand for any kind. */
const READERS_OF: Record<ArgKind, string[]> = {
  tensor: ['T'],
  'tensor?': ['OT'],
  'tensor[]': ['TL'],
  float: ['D'],
  'float?': ['OD'],
  int: ['I'],
  'int?': ['OI'],
  'int[]': ['IL'],
  bool: ['B'],
  string: ['S'],
  scalar: ['SC'],
  'scalar?': ['SC'],
  dtype: ['DT'],
  'dtype?': ['ODT'],
  'device?': ['DEV', 'S'],
  bytes: [],
  external: ['G'],
};
const RETURNS_OF: Record<ResultKind, string[]> = {
  tensor: ['RET'],
  'tensor?': ['RET', 'RETV'],
  'tensor[]': ['RETL'],
  pair: ['RET2'],
  void: ['RETV'],
  bool: ['Boolean'],
  number: ['Number'],
  item: ['Boolean', 'Number'],
  string: ['String'],
  'int[]': ['Array'],
  buffer: ['ArrayBuffer'],
  memory: ['Object'],
  buildInfo: ['Object'],
  autocastState: ['Object'],
  external: ['External'],
  'string?': ['String', 'Null'],
  distInfo: ['Object'],
};

/** Differences between the registrations and the table, one line each (empty when they match). */
export function compareWithTable(regs: readonly Registration[], table: Readonly<Record<string, OpDecl>>): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const r of regs) {
    if (seen.has(r.name)) problems.push(`${r.name}: registered twice`);
    seen.add(r.name);
    const decl = table[r.name];
    if (!decl) {
      problems.push(`${r.name} (${r.file}): registered but not declared in src/tensor/ops.ts`);
      continue;
    }
    const args = (decl.args as readonly string[]).map((a) => a.slice(a.indexOf(': ') + 2) as ArgKind);
    if (args.length !== r.readers.length) {
      problems.push(`${r.name}: declared with ${args.length} argument(s), the C++ body reads ${r.readers.length}`);
    }
    args.forEach((kind, i) => {
      const used = [...(r.readers[i] ?? [])];
      const typed = used.filter((u) => u !== 'raw');
      const allowed = READERS_OF[kind];
      if (used.length === 0) problems.push(`${r.name}: argument ${i} (${kind}) is never read by the C++ body`);
      else if (typed.some((u) => !allowed.includes(u))) {
        problems.push(`${r.name}: argument ${i} is declared ${kind} but read with ${typed.join('/')}`);
      } else if (kind.endsWith('?') && kind !== 'device?' && allowed[0] === 'SC' && !used.includes('raw')) {
        problems.push(`${r.name}: argument ${i} is declared ${kind} but the C++ body does not test for null`);
      }
    });
    const want = [...RETURNS_OF[decl.result]].sort().join(',');
    const got = [...r.returns].sort().join(',');
    if (want !== got) {
      problems.push(`${r.name}: declared to return ${decl.result} (${want}) but the body returns ${got}`);
    }
  }
  for (const name of Object.keys(table)) {
    if (!seen.has(name)) problems.push(`${name}: declared in src/tensor/ops.ts but not registered by any GR_OP`);
  }
  return problems;
}
