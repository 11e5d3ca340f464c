// Module mechanics: names and order, strict/non-strict loading, freezing, hooks,
// conversions, disposal, batch-norm statistics, containers and weight files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../src/tensor/index.js';
import * as nn from '../src/nn/index.js';
import { createModel, type ResNet } from '../src/models/index.js';

class Block extends nn.Module {
  readonly conv: nn.Conv2d;
  readonly bn: nn.BatchNorm2d;
  constructor(c: number) {
    super();
    this.conv = new nn.Conv2d(c, c, 3, { padding: 1 });
    this.bn = new nn.BatchNorm2d(c);
  }
  override forward(x: T.Tensor): T.Tensor {
    return nn.pipe(x, this.conv, this.bn, (t) => t.relu_());
  }
}

class Net extends nn.Module {
  declare readonly scale: T.Tensor;
  readonly stem: nn.Conv2d;
  readonly blocks: nn.Sequential;
  readonly head: nn.Linear;
  readonly _notAChild: nn.Linear;
  constructor() {
    super();
    this.registerParameter('scale', T.ones([1]));
    this.registerBuffer('steps', T.zeros([], { dtype: 'int64' }));
    this.registerBuffer('cache', T.zeros([2]), { persistent: false });
    this.stem = new nn.Conv2d(3, 4, 3, { bias: false });
    this.blocks = new nn.Sequential(new Block(4), new Block(4));
    this.head = new nn.Linear(4, 2);
    this._notAChild = new nn.Linear(1, 1);
  }
  override forward(x: T.Tensor): T.Tensor {
    return nn.pipe(
      x,
      this.stem,
      this.blocks,
      (t) => t.mean([2, 3]),
      this.head,
      (t) => t.mul(this.scale),
    );
  }
}

test('state-dict names and order follow PyTorch: own params, own buffers, then children', () => {
  const net = new Net();
  const keys = T.tidy(() => [...net.stateDict().keys()]);
  assert.deepEqual(keys, [
    'scale',
    'steps',
    'stem.weight',
    'blocks.0.conv.weight',
    'blocks.0.conv.bias',
    'blocks.0.bn.weight',
    'blocks.0.bn.bias',
    'blocks.0.bn.running_mean',
    'blocks.0.bn.running_var',
    'blocks.0.bn.num_batches_tracked',
    'blocks.1.conv.weight',
    'blocks.1.conv.bias',
    'blocks.1.bn.weight',
    'blocks.1.bn.bias',
    'blocks.1.bn.running_mean',
    'blocks.1.bn.running_var',
    'blocks.1.bn.num_batches_tracked',
    'head.weight',
    'head.bias',
  ]);
  assert.deepEqual(
    net
      .namedBuffers()
      .map(([n]) => n)
      .slice(0, 2),
    ['steps', 'cache'],
    'non-persistent buffers are buffers but not state',
  );
  assert.equal(
    T.tidy(() => net.stateDict().get('blocks.1.bn.num_batches_tracked')!.dtype),
    'int64',
  );
  assert.equal(net.numParameters(), 1 + 4 * 3 * 9 + 2 * (4 * 4 * 9 + 4 + 8) + 4 * 2 + 2);
  assert.deepEqual(
    net.namedModules().map(([n]) => n),
    [
      '',
      'stem',
      'blocks',
      'blocks.0',
      'blocks.0.conv',
      'blocks.0.bn',
      'blocks.1',
      'blocks.1.conv',
      'blocks.1.bn',
      'head',
    ],
  );
  net.dispose();
  net._notAChild.dispose();
});

test('parameters survive tidy(); dispose() frees every parameter and buffer', () => {
  const before = T.memory().tensors;
  const net = T.tidy(() => new Net());
  assert.ok(net.parameters().every((p) => !p.isDisposed && p.requiresGrad && p.isLeaf));
  T.tidy(() =>
    net
      .forward(T.randn([2, 3, 8, 8]))
      .sum()
      .backward(),
  );
  assert.ok(net.parameters().every((p) => !p.isDisposed));
  net.dispose();
  net.dispose();
  net._notAChild.dispose();
  assert.equal(T.memory().tensors, before);
});

test('loadStateDict: strict lists every missing, unexpected and mis-shaped key in one error; non-strict reports them', () => {
  const a = new Net();
  const b = new Net();
  T.tidy(() => {
    const sd = a.stateDict();
    sd.delete('head.bias');
    sd.delete('stem.weight');
    sd.set('head.extra', T.zeros([1]));
    sd.set('blocks.0.conv.weight', T.zeros([4, 4, 1, 1]));
    sd.set('blocks.1.bn.weight', T.zeros([5]));
    const e = assert.throws(
      () => b.loadStateDict(sd),
      (err: unknown) => {
        assert.ok(err instanceof nn.StateDictError);
        assert.deepEqual([...err.missingKeys], ['stem.weight', 'head.bias']);
        assert.deepEqual([...err.unexpectedKeys], ['head.extra']);
        assert.equal(err.shapeMismatches.length, 2);
        assert.match(err.message, /blocks\.0\.conv\.weight: checkpoint \[4, 4, 1, 1\], model \[4, 4, 3, 3\]/);
        assert.match(err.message, /blocks\.1\.bn\.weight: checkpoint \[5\], model \[4\]/);
        return true;
      },
    );
    void e;
    // Nothing was copied by the failed load.
    assert.ok(!b.stateDict().get('head.weight')!.equal(a.stateDict().get('head.weight')!));
    assert.throws(() => b.loadStateDict(sd, { strict: false }), /size mismatch for 2 key/);
    sd.set('blocks.0.conv.weight', a.stateDict().get('blocks.0.conv.weight')!);
    sd.set('blocks.1.bn.weight', a.stateDict().get('blocks.1.bn.weight')!);
    const r = b.loadStateDict(sd, { strict: false });
    assert.deepEqual(r.missingKeys, ['stem.weight', 'head.bias']);
    assert.deepEqual(r.unexpectedKeys, ['head.extra']);
    assert.ok(b.stateDict().get('head.weight')!.equal(a.stateDict().get('head.weight')!));
    sd.delete('head.extra');
    assert.doesNotThrow(() => b.loadStateDict(sd, { allowMissing: /^(stem|head)\./ }));
    assert.throws(() => b.loadStateDict(sd, { allowMissing: 'head' }), /missing key\(s\) \(1\): stem\.weight$/);
    // Checkpoints from before PyTorch 0.4.1 have no num_batches_tracked: accepted, as PyTorch does.
    sd.set('stem.weight', a.stateDict().get('stem.weight')!);
    sd.set('head.bias', a.stateDict().get('head.bias')!);
    for (const k of [...sd.keys()]) if (k.endsWith('num_batches_tracked')) sd.delete(k);
    assert.deepEqual(b.loadStateDict(sd).missingKeys, []);
  });
  for (const m of [a, b]) {
    m.dispose();
    m._notAChild.dispose();
  }
});

test('freeze/unfreeze by glob, prefix or RegExp; trainable count and gradients follow', () => {
  const net = new Net();
  assert.deepEqual(net.freeze('blocks'), [
    'blocks.0.conv.weight',
    'blocks.0.conv.bias',
    'blocks.0.bn.weight',
    'blocks.0.bn.bias',
    'blocks.1.conv.weight',
    'blocks.1.conv.bias',
    'blocks.1.bn.weight',
    'blocks.1.bn.bias',
  ]);
  assert.deepEqual(net.unfreeze('blocks.*.bn.*'), [
    'blocks.0.bn.weight',
    'blocks.0.bn.bias',
    'blocks.1.bn.weight',
    'blocks.1.bn.bias',
  ]);
  assert.deepEqual(net.freeze(/\.bias$/), [
    'blocks.0.conv.bias',
    'blocks.0.bn.bias',
    'blocks.1.conv.bias',
    'blocks.1.bn.bias',
    'head.bias',
  ]);
  assert.deepEqual(net.freeze('bloc'), [], 'a prefix must end at a dot');
  assert.equal(net.numParameters({ trainableOnly: true }), 1 + 108 + 8 + 8);
  T.tidy(() =>
    net
      .forward(T.randn([2, 3, 8, 8]))
      .sum()
      .backward(),
  );
  const grads = net.namedParameters().map(([n, p]) => [n, T.tidy(() => p.grad !== undefined)] as const);
  for (const [n, has] of grads) assert.equal(has, !n.endsWith('bias') && !n.includes('conv'), n);
  net.dispose();
  net._notAChild.dispose();
});

test('forward hooks see every call, can replace the output, and are removable', () => {
  T.manualSeed(0);
  const model = createModel('resnet18', { numClasses: 3 }).eval() as ResNet;
  const seen: string[] = [];
  const feats: T.Tensor[] = [];
  const h1 = model.layer2.registerForwardHook((_m, input, output) => {
    seen.push(`${input.shape[1]}->${output.shape[1]}`);
    feats.push(output.clone().keep());
  });
  const h2 = model.getClassifier().registerForwardHook((_m, _i, out) => out.mul(0));
  T.tidy(() => {
    const y = T.noGrad(() => model.forward(T.randn([1, 3, 32, 32])));
    assert.equal(y.abs().sum().item(), 0, 'the classifier hook replaced the logits');
  });
  assert.deepEqual(seen, ['64->128']);
  assert.deepEqual(feats[0]!.shape, [1, 128, 4, 4]);
  h1.remove();
  h2.remove();
  h1.remove();
  T.tidy(() => {
    const y = T.noGrad(() => model.forward(T.randn([1, 3, 32, 32])));
    assert.ok(y.abs().sum().item() > 0);
  });
  assert.equal(seen.length, 1);
  assert.ok(!Object.hasOwn(model.layer2, 'forward'), 'no wrapper left once the last hook is removed');
  feats[0]!.dispose();
  model.dispose();
});

test('to(): dtype converts floating tensors only, memory format the 4-d ones; grads and frozen flags survive', () => {
  const net = new Net();
  net.freeze('head.bias');
  net.to('float64');
  const sd = T.tidy(() => new Map([...net.stateDict()].map(([k, t]) => [k, t.dtype])));
  assert.equal(sd.get('stem.weight'), 'float64');
  assert.equal(sd.get('blocks.0.bn.num_batches_tracked'), 'int64');
  assert.equal(sd.get('steps'), 'int64');
  assert.equal(net.head.bias!.requiresGrad, false);
  assert.ok(net.head.weight.requiresGrad && net.head.weight.isLeaf);
  net.to('channelsLast');
  assert.ok(net.stem.weight.isContiguous('channelsLast') && !net.stem.weight.isContiguous());
  T.tidy(() => {
    const y = net.forward(T.randn([2, 3, 8, 8], { dtype: 'float64' }).contiguous('channelsLast'));
    assert.equal(y.dtype, 'float64');
    y.sum().backward();
    assert.equal(net.stem.weight.grad?.dtype, 'float64');
  });
  net.to({ dtype: 'float32', memoryFormat: 'contiguous' });
  assert.ok(net.stem.weight.isContiguous() && net.stem.weight.dtype === 'float32');
  net.dispose();
  net._notAChild.dispose();
});

test('BatchNorm2d: running stats with momentum, cumulative average with momentum null, eval uses them', () => {
  const x = T.tensor(
    Float32Array.from({ length: 2 * 2 * 3 * 3 }, (_, i) => (i * 7) % 5),
    [2, 2, 3, 3],
  ).keep();
  const mean = T.tidy(() => x.mean([0, 2, 3]).toArray());
  const varU = T.tidy(() => x.var([0, 2, 3]).toArray()); // unbiased, as PyTorch stores
  const bn = new nn.BatchNorm2d(2, { momentum: 0.3 });
  T.tidy(() => {
    bn.forward(x);
    bn.forward(x);
  });
  const rm = bn.running_mean!.toArray(),
    rv = bn.running_var!.toArray();
  mean.forEach((m, c) => assert.ok(Math.abs(rm[c]! - m * (1 - 0.7 ** 2)) < 1e-5));
  varU.forEach((v, c) => assert.ok(Math.abs(rv[c]! - (0.7 ** 2 + v * (1 - 0.7 ** 2))) < 1e-5));
  assert.equal(bn.num_batches_tracked!.item(), 2);
  const cum = new nn.BatchNorm2d(2, { momentum: null });
  T.tidy(() => {
    cum.forward(x);
    cum.forward(x.mul(3));
  });
  mean.forEach((m, c) => assert.ok(Math.abs(cum.running_mean!.toArray()[c]! - (m + 3 * m) / 2) < 1e-5));
  cum.eval();
  T.tidy(() => {
    const y = cum.forward(x);
    const ref = x
      .sub(cum.running_mean!.reshape([1, 2, 1, 1]))
      .div(cum.running_var!.add(1e-5).sqrt().reshape([1, 2, 1, 1]));
    assert.ok(y.allclose(ref, 1e-5, 1e-5));
  });
  assert.equal(cum.num_batches_tracked!.item(), 2, 'eval does not count batches');
  x.dispose();
  bn.dispose();
  cum.dispose();
});

test('layers: init bounds, shapes, dropout/drop-path only in training, containers and activations by name', () => {
  T.manualSeed(1);
  const lin = new nn.Linear(100, 50);
  const bound = 1 / Math.sqrt(100);
  assert.ok(lin.weight.abs().max().item() <= bound && lin.weight.abs().max().item() > 0.9 * bound);
  assert.ok(lin.bias!.abs().max().item() <= bound);
  const conv = new nn.Conv2d(4, 8, [3, 1], { groups: 2, stride: 2, padding: [1, 0], bias: false });
  assert.deepEqual(conv.weight.shape, [8, 2, 3, 1]);
  assert.equal(conv.bias, null);
  assert.throws(() => new nn.Conv2d(3, 8, 3, { groups: 2 }), /divisible by groups/);
  T.tidy(() => {
    assert.deepEqual(conv.forward(T.randn([1, 4, 9, 9])).shape, [1, 8, 5, 5]);
    const x = T.ones([64, 16]);
    const drop = new nn.Dropout(0.5);
    const dp = new nn.DropPath(0.5);
    const y = drop.forward(x);
    assert.ok(y.eq(0).sum().item() > 0 && y.max().item() === 2);
    const z = dp.forward(x);
    const perRow = z.sum(1).toArray();
    assert.ok(
      perRow.every((v) => v === 0 || v === 32),
      'drop path drops whole samples',
    );
    drop.eval();
    dp.eval();
    assert.equal(drop.forward(x), x);
    assert.equal(dp.forward(x), x);
    const seq = new nn.Sequential(new nn.Flatten(), nn.createAct('gelu'), new nn.Identity());
    assert.deepEqual(seq.forward(T.randn([2, 3, 4])).shape, [2, 12]);
    assert.equal(seq.at(1).constructor.name, 'GELU');
    const ln = new nn.LayerNorm(12);
    const gn = new nn.GroupNorm(2, 4);
    assert.deepEqual(ln.forward(T.randn([2, 12])).shape, [2, 12]);
    assert.deepEqual(gn.forward(T.randn([2, 4, 3, 3])).shape, [2, 4, 3, 3]);
    ln.dispose();
    gn.dispose();
  });
  assert.throws(() => nn.createAct('nope' as nn.ActName), /Expected an activation name/);
  assert.throws(() => nn.createAttn('nope', 8), /Expected an attention layer name/);
  assert.equal(nn.createAttn('none', 8), null);
  const dict = new nn.ModuleDict({ a: new nn.Linear(1, 1), b: new nn.Identity() });
  assert.deepEqual(
    T.tidy(() => [...dict.stateDict().keys()]),
    ['a.weight', 'a.bias'],
  );
  assert.throws(() => dict.get('c'), /has no 'c' \(has: a, b\)/);
  const list = new nn.ModuleList([new nn.Linear(1, 2), new nn.Linear(2, 1)]);
  assert.deepEqual(
    list.namedParameters().map(([n]) => n),
    ['0.weight', '0.bias', '1.weight', '1.bias'],
  );
  lin.dispose();
  conv.dispose();
  dict.dispose();
  list.dispose();
});

test('saveWeights/loadWeights round trip through safetensors; a wrong file says what is wrong', () => {
  const dir = mkdtempSync(join(tmpdir(), 'goodsrec-nn-'));
  try {
    const a = new Net();
    T.tidy(() => a.train().forward(T.randn([2, 3, 8, 8])));
    nn.saveWeights(a, join(dir, 'a.safetensors'));
    const b = new Net();
    const r = nn.loadWeights(b, join(dir, 'a.safetensors'));
    assert.equal(r.loaded.length, 19);
    T.tidy(() => {
      const sb = b.stateDict();
      for (const [k, t] of a.stateDict()) assert.ok(t.equal(sb.get(k)!), k);
    });
    const c = new nn.Linear(3, 3);
    assert.throws(() => nn.loadWeights(c, join(dir, 'a.safetensors')), /unexpected key\(s\) \(19\)/);
    for (const m of [a, b]) {
      m.dispose();
      m._notAChild.dispose();
    }
    c.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
