// Every op of issue 2 against PyTorch (the same libtorch, 1.13.1, through
// Debian's python3-torch): forward values and input gradients on random
// inputs, with broadcasting, transposed/strided views and channels_last
// inputs. All cases run in one Python process (test/helpers/op-oracle.ts);
// the cases live in test/helpers/op-cases.ts (bench/device-check.ts runs them on a GPU).
// Tolerances: float32 |a-b| <= 1e-5·|b| + 1e-6·max(1, max|b|); bfloat16
// and float16 cases state theirs (two ulps); integer and bool outputs exact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../src/tensor/index.js';
import { F } from '../src/tensor/index.js';
import { runOracle, assertMatches, type OpCase } from './helpers/op-oracle.js';
import { OP_CASES as cases, f } from './helpers/op-cases.js';

const results = runOracle(cases);

for (const c of cases) {
  test(`op ${c.name} matches PyTorch`, () => {
    assertMatches(c, results.get(c.name)!);
  });
}

test('the oracle compares something: a wrong op is caught', () => {
  // Guards the harness itself: swapping sub for add must fail the comparison.
  const bad: OpCase = {
    name: 'deliberately wrong',
    inputs: [f([3]), f([3])],
    js: ([a, b]) => a!.sub(b!),
    py: 'x[0] + x[1]',
  };
  const r = runOracle([bad]);
  assert.throws(() => assertMatches(bad, r.get(bad.name)!), /output 0: element/);
});

test('autocast outputs are bfloat16 and restore float32 afterwards', () => {
  T.tidy(() => {
    const a = T.randn([4, 4]);
    const inside = T.autocast('cpu', () => a.matmul(a));
    assert.equal(inside.dtype, 'bfloat16');
    assert.equal(a.matmul(a).dtype, 'float32');
    // Elementwise ops are not autocast: they keep float32.
    assert.equal(T.autocast('cpu', () => a.add(a)).dtype, 'float32');
    assert.throws(() => T.autocast('cpu', () => 0, 'float16'), /bfloat16 only/);
  });
});

test('GradScaler unscales gradients, skips on inf/NaN and adapts the scale', () => {
  T.tidy(() => {
    const s = new T.GradScaler({ initScale: 1024, growthInterval: 2 });
    const g1 = T.tensor([2048, -512]);
    const g2 = T.tensor([1024]);
    assert.equal(s.unscaleAndUpdate([g1, g2]), true);
    assert.deepEqual(g1.toArray(), [2, -0.5]);
    assert.deepEqual(g2.toArray(), [1]);
    assert.equal(s.scale, 1024);
    assert.equal(s.unscaleAndUpdate([T.tensor([1])]), true);
    assert.equal(s.scale, 2048, 'grows after growthInterval clean steps');
    assert.equal(s.unscaleAndUpdate([T.tensor([1, Infinity])]), false);
    assert.equal(s.scale, 1024, 'backs off on inf');
    assert.equal(s.unscaleAndUpdate([T.tensor([NaN])]), false);
    assert.equal(s.scale, 512, 'backs off on NaN');
    const loss = T.tensor(3);
    assert.equal(s.scaleLoss(loss).item(), 3 * 512);
    assert.equal(T.allFinite([T.tensor([1, 2])]), true);
    assert.equal(T.allFinite([T.tensor([1, -Infinity])]), false);
  });
});

test('dropout: statistics, scaling, p=0 and eval are identity, gradient is the mask', () => {
  T.tidy(() => {
    T.manualSeed(5);
    const x = T.ones([200, 500], { requiresGrad: true });
    const y = F.dropout(x, 0.3, true);
    const v = y.toArray();
    const zeros = v.filter((e) => e === 0).length / v.length;
    assert.ok(Math.abs(zeros - 0.3) < 0.01, `dropped fraction ${zeros} should be ~0.3`);
    assert.ok(
      v.every((e) => e === 0 || Math.abs(e - 1 / 0.7) < 1e-6),
      'kept values scaled by 1/(1-p)',
    );
    y.sum().backward();
    assert.deepEqual(x.grad!.toArray(), v, 'gradient equals the scaled mask');
    const z = T.randn([50]);
    assert.deepEqual(F.dropout(z, 0, true).toArray(), z.toArray());
    assert.deepEqual(F.dropout(z, 0.5, false).toArray(), z.toArray());
    assert.ok(
      F.dropout(z, 1, true)
        .toArray()
        .every((e) => e === 0),
      'p=1 drops everything',
    );
    assert.throws(() => F.dropout(z, 1.5), /p must be in \[0, 1\]/);
  });
});

test('dropPath: drops whole samples, rescales the rest, identity when off', () => {
  T.tidy(() => {
    T.manualSeed(6);
    const x = T.randn([4000, 3, 2, 2]).add(5);
    const y = F.dropPath(x, 0.25, true);
    const xs = x.reshape([4000, 12]).toArray();
    const ys = y.reshape([4000, 12]).toArray();
    let dropped = 0;
    for (let i = 0; i < 4000; i++) {
      const row = ys.slice(i * 12, i * 12 + 12);
      const src = xs.slice(i * 12, i * 12 + 12);
      if (row.every((e) => e === 0)) dropped++;
      else
        assert.ok(
          row.every((e, k) => Math.abs(e - src[k]! / 0.75) < 1e-4),
          `sample ${i} rescaled by 1/(1-p)`,
        );
    }
    assert.ok(Math.abs(dropped / 4000 - 0.25) < 0.03, `dropped fraction ${dropped / 4000} should be ~0.25`);
    assert.equal(F.dropPath(x, 0.25, false), x);
    assert.equal(F.dropPath(x, 0, true), x);
  });
});

test('the parity cases cover gradients and channels_last outputs', () => {
  let withGrads = 0;
  let clOutputs = 0;
  for (const r of results.values()) {
    if (r.pyValues.grads.some((g) => g !== null)) withGrads++;
    clOutputs += r.pyValues.outputs.filter((o) => o.channelsLast).length;
  }
  assert.ok(withGrads >= 90, `gradients compared in ${withGrads} cases`);
  assert.ok(clOutputs >= 5, `${clOutputs} channels_last outputs compared`);
});
