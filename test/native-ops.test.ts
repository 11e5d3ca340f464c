// The op table (src/tensor/ops.ts) against the C++ registrations and the loaded addon; errors
// that name the op and the argument; the libtorch version check at load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import * as T from '../src/tensor/index.js';
import { call, native } from '../src/tensor/native.js';
import { libtorchMismatch, compiledLibtorch } from '../src/util/addon.js';
import { OP_TABLE, isOpName, namedArgs, opArgs, type OpArgs } from '../src/tensor/ops.js';
import { OPS as ONNX_OPS } from '../src/serve/onnx/ops.js';
import { compareWithTable, parseRegistrations, readRegistrations } from './helpers/native-registrations.js';

test('every GR_OP of native/*.cc is declared in the op table with its arity, kinds and result, and vice versa', () => {
  const regs = readRegistrations('native');
  assert.ok(regs.length > 200, `parsed only ${regs.length} registrations`);
  assert.deepEqual(compareWithTable(regs, OP_TABLE), []);
  assert.equal(regs.length, Object.keys(OP_TABLE).length);
});

test('the comparison catches a wrong arity, kind or result and an undeclared op (negative controls)', () => {
  const src = [
    'GR_OP(add, RET(at::add(T(0), T(1)));)', // declared with alpha: one argument short
    'GR_OP(mul, RET(at::mul(T(0), SC(1)));)', // other declared as a tensor
    'GR_OP(neg, { T(0).neg_(); RETV; })', // declared to return a tensor
    'GR_OP(frobnicate, RET(T(0));)',
  ].join('\n');
  const problems = compareWithTable(parseRegistrations(src, 'fake.cc'), OP_TABLE);
  const has = (re: RegExp): boolean => problems.some((p) => re.test(p));
  assert.ok(has(/^add: declared with 3 argument\(s\), the C\+\+ body reads 2/), problems.join('\n'));
  assert.ok(has(/^add: argument 2 \(scalar\) is never read/), problems.join('\n'));
  assert.ok(has(/^mul: argument 1 is declared tensor but read with SC/), problems.join('\n'));
  assert.ok(has(/^neg: declared to return tensor/), problems.join('\n'));
  assert.ok(has(/^frobnicate \(fake\.cc\): registered but not declared/), problems.join('\n'));
  assert.ok(has(/^conv2d: declared in src\/tensor\/ops\.ts but not registered/), problems.join('\n'));
});

test('the loaded addon exports exactly the declared ops', () => {
  const exports = native as unknown as Record<string, unknown>;
  const exported = Object.keys(exports).filter((k) => typeof exports[k] === 'function');
  assert.deepEqual(exported.sort(), Object.keys(OP_TABLE).sort());
});

test('errors from native code name the op, and argument errors the argument', () => {
  const a = T.zeros([2, 3]);
  const b = T.zeros([4, 5]);
  assert.throws(
    () => a.matmul(b),
    (e: Error) => /^matmul: mat1 and mat2 shapes cannot be multiplied/.test(e.message),
  );
  const badStride = [a.handle, b.handle, null, 3, [0, 0], [1, 1], 1] as unknown as OpArgs<'conv2d'>;
  assert.throws(
    () => call('conv2d', ...badStride),
    (e: Error) =>
      e instanceof TypeError && e.message === 'conv2d: argument 3 (stride: int[]) must be an array of integers',
  );
  b.dispose();
  assert.throws(() => a.add(b), /Error: add: argument 1 \(other: tensor\) is a disposed tensor/);
  assert.throws(
    () => T.cat([a, b]),
    /Error: cat: argument 0 \(tensors: tensor\[\]\) holds a disposed tensor at position 1/,
  );
  a.dispose();
});

test('namedArgs reads a call by the declared names', () => {
  assert.deepEqual(namedArgs('narrow', ['h', 1, 2, 3]), { self: 'h', dim: 1, start: 2, length: 3 });
});

test("an in-place op exported through its out-of-place op's ONNX handler has that op's argument names", () => {
  const checked: string[] = [];
  for (const op of Object.keys(OP_TABLE)) {
    const base = op.slice(0, -1);
    if (!op.endsWith('_') || !isOpName(base) || !isOpName(op) || ONNX_OPS[op] || !ONNX_OPS[base]) continue;
    const baseNames = opArgs(base).map((a) => a.name);
    for (const a of opArgs(op)) {
      assert.ok(baseNames.includes(a.name), `${op}: argument ${a.name} is not one of ${base}'s`);
    }
    checked.push(op);
  }
  assert.ok(checked.includes('add_') && checked.includes('relu_'), checked.join(', '));
});

test('calling an op with wrong arguments does not compile', () => {
  // Never run: the checks are the @ts-expect-error lines, which fail the build when the types accept the call.
  const typeChecks = (h: T.Tensor): void => {
    // @ts-expect-error conv2d takes 7 arguments
    call('conv2d', h.handle, h.handle, null, [1, 1], [0, 0], [1, 1]);
    // @ts-expect-error stride is an int list, not a number
    call('conv2d', h.handle, h.handle, null, 1, [0, 0], [1, 1], 1);
    // @ts-expect-error no such op
    call('conv3d', h.handle);
    // @ts-expect-error shape returns number[], not a handle
    const s: T.Tensor['handle'] = call('shape', h.handle);
    void s;
  };
  assert.equal(typeof typeChecks, 'function');
});

test('the addon reports the libtorch it was compiled against and the one the process loaded', () => {
  const v = native.libtorch;
  assert.match(v.compiled, /^\d+\.\d+\.\d+/);
  assert.equal(v.runtime.split('+')[0], v.compiled.split('+')[0]);
  assert.match(v.library, /libtorch_cpu\.so/);
  assert.equal(compiledLibtorch(process.env.GOODSREC_NATIVE ?? 'build/Release/goodsrec_native.node'), v.compiled);
  assert.equal(libtorchMismatch(v, 'x.node'), null);
  assert.equal(libtorchMismatch({ ...v, runtime: `${v.compiled}+cpu` }, 'x.node'), null);
  // Negative control: another runtime version gives the one-sentence error naming both and the library.
  const other = { compiled: '1.13.0', runtime: '2.5.1', library: '/opt/torch/lib/libtorch_cpu.so' };
  const msg = libtorchMismatch(other, 'a.node');
  assert.equal(
    msg,
    'goodsrec: the native addon a.node was compiled against libtorch 1.13.0, but this process loaded ' +
      'libtorch 2.5.1 from /opt/torch/lib/libtorch_cpu.so; rebuild the addon with `npm run build:native` ' +
      '(or point LIBTORCH / the library path at the libtorch it was built with).',
  );
  assert.match(libtorchMismatch(undefined, 'old.node') ?? '', /predates the libtorch version check/);
});

test('an addon that cannot bind to the libtorch found says which libtorch it was compiled against', () => {
  // A stub with the soname of the loaded libtorch_cpu, first on the library path: none of its symbols.
  const dir = mkdtempSync(join(tmpdir(), 'goodsrec-stub-'));
  try {
    const soname = basename(native.libtorch.library);
    writeFileSync(join(dir, 'stub.c'), 'int goodsrec_stub;\n');
    execFileSync('gcc', ['-shared', '-fPIC', `-Wl,-soname,${soname}`, '-o', join(dir, soname), join(dir, 'stub.c')]);
    const load = (env: NodeJS.ProcessEnv): ReturnType<typeof spawnSync> =>
      spawnSync(
        process.execPath,
        ['--input-type=module', '-e', "await import('./dist/src/tensor/index.js'); console.log('loaded');"],
        { env: { ...process.env, ...env }, encoding: 'utf8' },
      );
    const bad = load({ LD_LIBRARY_PATH: dir });
    assert.notEqual(bad.status, 0);
    const compiled = native.libtorch.compiled.replace(/[.+]/g, '\\$&');
    assert.match(
      String(bad.stderr),
      new RegExp(
        `was compiled against libtorch ${compiled}, ` +
          'but the libtorch this process loads does not match it \\(undefined symbol',
      ),
    );
    const good = load({}); // control: the same command loads without the stub
    assert.equal(good.status, 0, String(good.stderr));
    assert.match(String(good.stdout), /loaded/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
