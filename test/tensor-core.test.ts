// Core engine behaviour: creation, read-back, scopes and disposal, errors, grad mode.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../src/tensor/index.js';

test('tensor round-trips typed arrays for every dtype', () => {
  const cases: [T.DType, ArrayBufferView][] = [
    ['float32', new Float32Array([1.5, -2, 3.25, 0])],
    ['float64', new Float64Array([1e-300, 2, -3, 4])],
    ['int64', new BigInt64Array([1n, -2n, 2n ** 40n, 4n])],
    ['int32', new Int32Array([1, -2, 3, 2 ** 30])],
    ['int16', new Int16Array([1, -2, 3, 4])],
    ['int8', new Int8Array([1, -2, 3, 4])],
    ['uint8', new Uint8Array([1, 2, 255, 4])],
    ['bool', new Uint8Array([1, 0, 1, 1])],
    ['float16', new Uint16Array([0x3c00, 0xc000, 0x4200, 0])],
    ['bfloat16', new Uint16Array([0x3f80, 0xc000, 0x4040, 0])],
  ];
  for (const [dtype, data] of cases) {
    const t = T.tensor(data, [2, 2], { dtype });
    assert.equal(t.dtype, dtype);
    assert.deepEqual(t.shape, [2, 2]);
    assert.deepEqual(
      Array.from(t.data() as ArrayLike<number | bigint>),
      Array.from(data as unknown as ArrayLike<number | bigint>),
      dtype,
    );
    t.dispose();
  }
  const h = T.tensor(new Uint16Array([0x3c00, 0xc000]), [2], { dtype: 'float16' });
  assert.deepEqual(h.toArray(), [1, -2]);
  h.dispose();
});

test('nested arrays, scalars and item()', () => {
  const t = T.tensor([
    [1, 2, 3],
    [4, 5, 6],
  ]);
  assert.deepEqual(t.shape, [2, 3]);
  assert.equal(t.sum().item(), 21);
  assert.throws(() => T.tensor(new Float32Array(5), [2, 3]), /shape \[2, 3\] needs 6 values but the array has 5/);
  t.dispose();
});

test('tidy frees everything but the result, also when fn throws', () => {
  const before = T.memory().tensors;
  const kept = T.tidy(() => {
    const a = T.ones([8, 8]);
    const b = a.mul(3).add(1);
    return { out: b.sum(), list: [b.mean()] };
  });
  assert.equal(T.memory().tensors, before + 2);
  assert.equal(kept.out.item(), 256);
  kept.out.dispose();
  kept.list[0]!.dispose();
  assert.equal(T.memory().tensors, before);
  assert.throws(
    () =>
      T.tidy(() => {
        T.zeros([3]);
        throw new Error('boom');
      }),
    /boom/,
  );
  assert.equal(T.memory().tensors, before);
  assert.equal(T.scopeDepth(), 0);
});

test('nested tidy moves results to the parent; keep() survives', () => {
  const before = T.memory().tensors;
  let escaped: T.Tensor | undefined;
  const r = T.tidy(() => {
    const inner = T.tidy(() => T.ones([2]).mul(2));
    escaped = T.zeros([1]).keep();
    return inner.add(1);
  });
  assert.deepEqual(r.toArray(), [3, 3]);
  assert.equal(escaped!.isDisposed, false);
  r.dispose();
  escaped!.dispose();
  assert.equal(T.memory().tensors, before);
});

test('tidy rejects async functions', () => {
  assert.throws(() => T.tidy(async () => 1 as unknown as never), /synchronous/);
});

test('disposed tensors refuse use; dispose is idempotent', () => {
  const t = T.ones([2]);
  t.dispose();
  t.dispose();
  assert.equal(t.isDisposed, true);
  assert.throws(() => t.add(1), /disposed/);
});

test('libtorch errors become JS errors with the torch message', () => {
  T.tidy(() => {
    assert.throws(() => T.ones([2, 3]).matmul(T.ones([4, 5])), /cannot be multiplied \(2x3 and 4x5\)/);
    assert.throws(() => T.ones([2]).view([3]), /invalid for input of size 2/);
  });
});

test('memory accounting counts shared storage once', () => {
  const before = T.memory();
  const a = T.zeros([1024], { dtype: 'float32' });
  const v = a.view([32, 32]);
  const m = T.memory();
  assert.equal(m.tensors - before.tensors, 2);
  assert.equal(m.bytes - before.bytes, 4096);
  a.dispose();
  v.dispose();
  assert.equal(T.memory().bytes, before.bytes);
});

test('noGrad scope and requiresGrad', () => {
  T.tidy(() => {
    const w = T.ones([3], { requiresGrad: true });
    const y = T.noGrad(() => w.mul(2));
    assert.equal(y.requiresGrad, false);
    assert.equal(T.isGradEnabled(), true);
    const z = w.mul(w).sum();
    z.backward();
    assert.deepEqual(w.grad!.toArray(), [2, 2, 2]);
    w.zeroGrad();
    assert.equal(w.grad, undefined);
  });
});

test('manualSeed makes random ops reproducible', () => {
  T.tidy(() => {
    T.manualSeed(7);
    const a = T.randn([16]).toArray();
    T.manualSeed(7);
    const b = T.randn([16]).toArray();
    T.manualSeed(8);
    const c = T.randn([16]).toArray();
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
  });
});

test('threads default to the machine cores', () => {
  assert.equal(T.getNumThreads() >= 1, true);
  const prev = T.getNumThreads();
  T.setNumThreads(1);
  assert.equal(T.getNumThreads(), 1);
  T.setNumThreads(prev);
  assert.throws(() => T.setNumThreads(0), /positive integer/);
});

test('channels_last memory format', () => {
  T.tidy(() => {
    const x = T.randn([2, 3, 4, 5]);
    const cl = x.contiguous('channelsLast');
    assert.equal(cl.isContiguous('channelsLast'), true);
    assert.equal(cl.isContiguous(), false);
    assert.deepEqual(cl.strides, [60, 1, 15, 3]);
    assert.equal(cl.equal(x), true);
  });
});

test('fromRaw/toRaw round-trip bytes exactly, also from non-contiguous tensors', () => {
  T.tidy(() => {
    for (const dtype of T.DTYPES) {
      const t = T.arange(0, 12, 1, { dtype: 'float64' }).sub(5).mul(0.75).to({ dtype }).reshape([3, 4]);
      const raw = T.toRaw(t);
      assert.equal(raw.dtype, dtype);
      assert.deepEqual(raw.shape, [3, 4]);
      assert.equal(raw.data.byteLength, 12 * T.bytesPerElement(dtype));
      const back = T.fromRaw(raw);
      assert.equal(back.dtype, dtype);
      assert.equal(back.equal(t), true, dtype);
      // A transposed view comes out row-major in its logical order.
      const tr = T.toRaw(t.t());
      assert.deepEqual(tr.shape, [4, 3]);
      assert.equal(T.fromRaw(tr).equal(t.t()), true, `${dtype} transposed`);
    }
    assert.throws(
      () => T.fromRaw({ dtype: 'float32', shape: [2, 2], data: new Uint8Array(12) }),
      /12 bytes given, shape needs 16/,
    );
  });
});
