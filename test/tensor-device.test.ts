// The device module (src/tensor/device.ts), the host-to-device batch path, the fp16 scaled optimizer step,
// and the CLI's answers for CUDA on a machine or build without it. GPU-only checks skip with the reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../src/tensor/index.js';
import { Linear } from '../src/nn/index.js';
import { SGD } from '../src/optim/index.js';
import { scaledOptimizerStep } from '../src/train/amp-step.js';
import { runCli } from './helpers/cli.js';
import { OP_CASES, f } from './helpers/op-cases.js';
import { runOnDevice } from './helpers/op-device.js';
import type { OpCase } from './helpers/op-oracle.js';

const hasGpu = T.cuda.deviceCount() > 0;

test('device names: parse, kind, index, rank device, backend and autocast dtype', () => {
  for (const ok of ['auto', 'cpu', 'cuda', 'cuda:0', 'cuda:12']) assert.equal(T.parseDevice(ok), ok);
  for (const bad of ['gpu', 'CUDA', 'cuda:', 'cuda:x', 'cpu:0', ' cpu', 'mps'])
    assert.throws(
      () => T.parseDevice(bad),
      (e: Error) => e instanceof T.DeviceError && e.message.includes(bad),
    );
  assert.deepEqual(
    ['cpu', 'cuda', 'cuda:3'].map((d) => T.isDevice(d)),
    [true, true, true],
  );
  assert.equal(T.isDevice('auto'), false);
  assert.deepEqual((['cpu', 'cuda', 'cuda:3'] as const).map(T.deviceType), ['cpu', 'cuda', 'cuda']);
  assert.deepEqual((['cpu', 'cuda', 'cuda:3'] as const).map(T.deviceIndex), [null, 0, 3]);
  assert.deepEqual(
    (['cpu', 'cuda', 'cuda:3'] as const).map((d) => T.rankDevice(d, 2)),
    ['cpu', 'cuda:2', 'cuda:3'],
  );
  assert.deepEqual(['cpu', 'cuda', 'cuda:3'].map(T.backendForDevice), ['gloo', 'nccl', 'nccl']);
  assert.deepEqual((['cpu', 'cuda:1'] as const).map(T.autocastDtype), ['bfloat16', 'float16']);
  assert.equal(T.isCuda('cudax'), false);
});

test('auto resolves to the CPU without a GPU; CUDA there is a DeviceError naming the reason', (t) => {
  if (hasGpu) return t.skip('needs a machine without a CUDA device');
  assert.equal(T.resolveDevice('auto'), 'cpu');
  assert.equal(T.resolveDevice('cpu'), 'cpu');
  const b = T.buildInfo();
  const why = b.cudaCompiled
    ? /has CUDA compiled in but sees no GPU \(0 devices\)/
    : /built against libtorch .* without CUDA/;
  for (const d of ['cuda', 'cuda:1'])
    assert.throws(
      () => T.resolveDevice(d),
      (e: Error) => e.name === 'DeviceError' && why.test(e.message),
    );
  assert.throws(
    () => T.checkLocalRanks('cuda', 2),
    (e: Error) => e.name === 'DeviceError',
  );
  assert.doesNotThrow(() => T.checkLocalRanks('cpu', 2));
  assert.equal(T.describeDevice('cpu'), 'cpu');
  T.synchronize('cpu');
  assert.deepEqual(T.cudaSummary(), { cudaCompiled: b.cudaCompiled, cudaDevices: 0 });
});

test('a GPU resolves, is described by name, synchronizes, and cuda:N past the last is refused', (t) => {
  if (!hasGpu) return t.skip('needs a CUDA device');
  assert.equal(T.resolveDevice('auto'), 'cuda');
  assert.match(T.describeDevice('cuda:0'), /^cuda:0 \(.+\)$/);
  T.synchronize('cuda');
  const n = T.cuda.deviceCount();
  assert.throws(() => T.resolveDevice(`cuda:${n}`), /DeviceError|GPU/);
});

test('batchToDevice on the CPU: the same values, channels_last when asked, labels untouched', () => {
  T.tidy(() => {
    const x = T.arange(0, 2 * 3 * 4 * 5)
      .float()
      .reshape([2, 3, 4, 5]);
    const same = T.batchToDevice(x, 'cpu');
    assert.equal(same.sub(x).abs().max().item(), 0);
    assert.equal(same.isContiguous('channelsLast'), false);
    const cl = T.batchToDevice(x, 'cpu', { channelsLast: true });
    assert.equal(cl.isContiguous('channelsLast'), true);
    assert.equal(cl.sub(x).abs().max().item(), 0);
    const y = T.tensor([1, 2, 3], [3]).long();
    assert.deepEqual([...T.batchToDevice(y, 'cpu', { channelsLast: true }).toArray()].map(Number), [1, 2, 3]);
  });
});

test('pinned host memory and a non-blocking copy to the GPU keep the values', (t) => {
  if (!hasGpu) return t.skip('needs a CUDA device');
  T.tidy(() => {
    const x = T.randn([4, 3, 8, 8]);
    const p = x.pinMemory();
    assert.equal(p.isPinned(), true);
    assert.equal(x.isPinned(), false);
    const g = T.batchToDevice(x, 'cuda', { channelsLast: true });
    T.synchronize('cuda');
    assert.equal(g.cpu().sub(x).abs().max().item(), 0);
    const before = T.memory().cudaBytes;
    assert.ok(before > 0);
  });
  assert.equal(typeof T.releaseCachedMemory(), 'number');
});

test('fp16 scaled step: a synthetic inf gradient skips the step and halves the scale; a finite one steps', () => {
  T.tidy(() => {
    T.manualSeed(1);
    const lin = new Linear(3, 2);
    const params = lin.parameters();
    const opt = new SGD(params, { lr: 0.5 });
    const scaler = new T.GradScaler({ initScale: 1024, growthInterval: 1000 });
    const w0 = params[0]!.clone();
    params[0]!.grad = T.full([2, 3], 1024);
    params[1]!.grad = T.tensor([Number.POSITIVE_INFINITY, 0], [2]);
    assert.equal(scaledOptimizerStep(opt, params, scaler), false);
    assert.equal(scaler.scale, 512);
    assert.equal(params[0]!.sub(w0).abs().max().item(), 0, 'weights moved on a skipped step');
    params[0]!.grad = T.full([2, 3], 512);
    params[1]!.grad = T.tensor([512, 0], [2]);
    assert.equal(scaledOptimizerStep(opt, params, scaler), true);
    assert.equal(scaler.scale, 512);
    // unscaled gradient 1, lr 0.5: every weight moved by -0.5 (negative control: the skipped step moved nothing)
    assert.ok(Math.abs(params[0]!.sub(w0).add(0.5).abs().max().item()) < 1e-6);
    // no scaler: always steps
    params[0]!.grad = T.full([2, 3], Number.NaN);
    assert.equal(scaledOptimizerStep(opt, params, null), true);
  });
});

test('the CLI: --device cuda without a GPU exits 2 with one sentence; --nproc-per-node 2 fails before launching', (t) => {
  if (hasGpu) return t.skip('needs a machine without a CUDA device');
  const one = runCli(['train', '--data', 'examples/grocery-sample', '--device', 'cuda', '--out', '/nonexistent/x']);
  assert.equal(one.code, 2, one.stderr);
  const lines = one.stderr.trim().split('\n');
  assert.equal(lines.length, 1, one.stderr);
  assert.match(lines[0]!, /^goodsrec: device cuda: .*(without CUDA|0 devices)/);
  const ranks = runCli(['train', '--data', 'examples/grocery-sample', '--device', 'cuda', '--nproc-per-node', '2']);
  assert.equal(ranks.code, 2, ranks.stderr);
  assert.doesNotMatch(ranks.stderr, /launched ranks/);
  assert.match(ranks.stderr, /device cuda/);
  const v = runCli(['--version']);
  assert.equal(v.code, 0);
  const b = T.buildInfo();
  assert.match(
    v.stdout,
    new RegExp(`libtorch ${b.torchVersion.replace(/[.+]/g, '\\$&')} \\((CUDA compiled in.*, 0 devices|no CUDA)`),
  );
});

// The op-parity step of scripts/device-check.sh: the oracle's cases on a device against the CPU in float64.
test('op parity against the CPU in float64: every oracle case within its bound on the CPU; an op off by 1e-4 is caught', () => {
  const r = runOnDevice(OP_CASES, 'cpu');
  assert.equal(r.length, OP_CASES.length);
  assert.deepEqual(
    r.filter((x) => x.problem !== null).map((x) => `${x.name}: ${x.problem}`),
    [],
  );
  // Negative controls: a float32 result 1e-4 off (10x the float32 bound) fails, as does a wrong gradient.
  const off: OpCase = {
    name: 'off by 1e-4',
    inputs: [f([3, 4])],
    js: ([a]) => (a!.dtype === 'float64' ? a!.mul(2) : a!.mul(2 * (1 + 1e-4))),
    py: '',
  };
  const detached: OpCase = {
    name: 'gradient differs',
    inputs: [f([3, 4])],
    js: ([a]) => (a!.dtype === 'float64' ? a!.mul(a!) : a!.mul(a!.detach())),
    py: '',
  };
  const [o, d] = runOnDevice([off, detached], 'cpu');
  assert.match(o!.problem ?? '', /output 0: element/);
  assert.match(d!.problem ?? '', /grad of input 0: element/);
});

test('op parity on CUDA against the CPU in float64', (t) => {
  if (!hasGpu) return t.skip('needs a CUDA device');
  const r = runOnDevice(OP_CASES, 'cuda');
  assert.deepEqual(
    r.filter((x) => x.problem !== null).map((x) => `${x.name}: ${x.problem}`),
    [],
  );
});

// The trainer's input path (src/train/trainer.ts): batch i + 1 is fetched and moved while step i runs.
test('DevicePrefetcher: batch i + 1 is moved before step i reads its loss; values, order and early close', async () => {
  const events: string[] = [];
  let returned = false;
  async function* source(): AsyncGenerator<Float32Array> {
    try {
      for (let i = 0; i < 4; i++) {
        events.push(`load ${i}`);
        yield Float32Array.from([i, i + 0.5, -i]);
      }
    } finally {
      returned = true;
    }
  }
  const run = async (stopAfter: number): Promise<number[][]> => {
    events.length = 0;
    returned = false;
    const pf = new T.DevicePrefetcher(source(), (b: Float32Array) => {
      events.push(`move ${b[0]}`);
      return T.batchToDevice(T.tensor(b, [3]), 'cpu').keep();
    });
    const seen: number[][] = [];
    let next = await pf.fetch();
    try {
      for (let step = 0; next; step++) {
        const cur = next;
        events.push(`queue ${step}`);
        next = await pf.fetch();
        events.push(`read ${step}`);
        seen.push(cur.onDevice.toArray());
        cur.onDevice.dispose();
        if (step + 1 === stopAfter) break;
      }
    } finally {
      next?.onDevice.dispose();
      await pf.close();
    }
    return seen;
  };
  assert.deepEqual(
    await run(Infinity),
    [0, 1, 2, 3].map((i) => [i, i + 0.5, -i]),
  );
  assert.deepEqual(events.slice(0, 7), ['load 0', 'move 0', 'queue 0', 'load 1', 'move 1', 'read 0', 'queue 1']);
  assert.ok(returned);
  // Stopped after two steps: the third batch was already moved (the prefetch), and the source is closed.
  assert.equal((await run(2)).length, 2);
  assert.ok(events.includes('move 2') && !events.includes('load 3'), events.join(', '));
  assert.ok(returned, 'the source was returned (a loader stops its workers there)');
});

test('DevicePrefetcher on CUDA: batches arrive on the GPU with their values, pinned copies, in order', async (t) => {
  if (!hasGpu) return t.skip('needs a CUDA device');
  async function* source(): AsyncGenerator<Float32Array> {
    for (let i = 0; i < 3; i++) yield Float32Array.from([i, -i, i / 4]);
  }
  const pf = new T.DevicePrefetcher(source(), (b: Float32Array) =>
    T.tidy(() => T.batchToDevice(T.tensor(b, [3]), 'cuda').keep()),
  );
  const seen: number[][] = [];
  for (let next = await pf.fetch(); next; ) {
    const cur = next;
    assert.ok(cur.onDevice.device.startsWith('cuda'), cur.onDevice.device);
    next = await pf.fetch();
    seen.push(cur.onDevice.to('cpu').toArray());
    cur.onDevice.dispose();
  }
  assert.deepEqual(
    seen,
    [0, 1, 2].map((i) => [i, -i, i / 4]),
  );
});
