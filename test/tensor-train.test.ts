// A small CNN written directly with F ops trains on a synthetic learnable
// task with in-place SGD under noGrad; the loss falls and memory is flat.
// Bounds: after a 30-step warm-up, live tensors and their bytes return to
// exactly the same values after every step, and process RSS never exceeds
// the warm-up value by more than 64 MB.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as T from '../src/tensor/index.js';
import { F } from '../src/tensor/index.js';

const CLASSES = 4;
const STEPS = 300;
const WARMUP = 30;
const RSS_BOUND = 64 * 2 ** 20;

interface Params {
  [name: string]: T.Tensor;
}

function kaiming(shape: number[], fanIn: number): T.Tensor {
  return T.tidy(() => T.randn(shape).mul(Math.sqrt(2 / fanIn))).setRequiresGrad(true);
}

function makeModel(): { params: Params; buffers: Params } {
  const params: Params = {
    c1: kaiming([8, 3, 3, 3], 27),
    g1: T.ones([8]).keep().setRequiresGrad(true),
    b1: T.zeros([8]).keep().setRequiresGrad(true),
    c2: kaiming([16, 8, 3, 3], 72),
    g2: T.ones([16]).keep().setRequiresGrad(true),
    b2: T.zeros([16]).keep().setRequiresGrad(true),
    fw: kaiming([CLASSES, 16], 16),
    fb: T.zeros([CLASSES]).keep().setRequiresGrad(true),
  };
  const buffers: Params = {
    m1: T.zeros([8]).keep(),
    v1: T.ones([8]).keep(),
    m2: T.zeros([16]).keep(),
    v2: T.ones([16]).keep(),
  };
  return { params, buffers };
}

function forward(x: T.Tensor, p: Params, b: Params, training: boolean): T.Tensor {
  let h = F.conv2d(x, p.c1!, null, { padding: 1 });
  h = F.relu(F.batchNorm(h, b.m1!, b.v1!, { weight: p.g1!, bias: p.b1!, training }));
  h = F.maxPool2d(h, 2);
  h = F.conv2d(h, p.c2!, null, { padding: 1 });
  h = F.relu(F.batchNorm(h, b.m2!, b.v2!, { weight: p.g2!, bias: p.b2!, training }));
  h = F.adaptiveAvgPool2d(h, 1).flatten(1);
  return F.linear(h, p.fw!, p.fb!);
}

test('small CNN trains 300 steps: loss falls, memory flat after warm-up', () => {
  T.manualSeed(42);
  const start = T.memory();
  // Task: each class is a fixed random 3x16x16 pattern; samples add heavy noise.
  const templates = T.randn([CLASSES, 3, 16, 16]).keep();
  const labels = T.randint(0, CLASSES, [512]).keep();
  const images = T.tidy(() => templates.indexSelect(0, labels).add(T.randn([512, 3, 16, 16]).mul(1.5))).keep();
  const { params, buffers } = makeModel();
  const velocity = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, T.zerosLike(v).keep()]));
  const lr = 0.05;
  const momentum = 0.9;

  const losses: number[] = [];
  let ref: { tensors: number; bytes: number } | undefined;
  let rssRef = 0;
  let rssMax = 0;
  const t0 = Date.now();
  for (let step = 0; step < STEPS; step++) {
    // Forward in a scope that returns only the loss: the intermediates'
    // handles are freed before backward (the graph keeps what it saved).
    const loss = T.tidy(() => {
      const idx = T.randint(0, 512, [32]);
      const x = images.indexSelect(0, idx);
      const y = labels.indexSelect(0, idx);
      return F.crossEntropy(forward(x, params, buffers, true), y, { labelSmoothing: 0.05 });
    });
    loss.backward();
    losses.push(loss.item());
    loss.dispose();
    T.tidy(() =>
      T.noGrad(() => {
        for (const [k, p] of Object.entries(params)) {
          const g = p.grad!;
          velocity[k]!.mul_(momentum).add_(g);
          p.add_(velocity[k]!, -lr);
          p.zeroGrad();
        }
      }),
    );
    const m = T.memory();
    if (step === WARMUP) {
      ref = { tensors: m.tensors, bytes: m.bytes };
      rssRef = m.rss;
    }
    if (step > WARMUP) {
      assert.deepEqual({ tensors: m.tensors, bytes: m.bytes }, ref, `memory after step ${step}`);
      rssMax = Math.max(rssMax, m.rss);
    }
  }
  const seconds = (Date.now() - t0) / 1000;

  const mean = (a: number[]): number => a.reduce((s, v) => s + v, 0) / a.length;
  const first = mean(losses.slice(0, 10));
  const last = mean(losses.slice(-10));
  assert.ok(
    last < 0.35 * first,
    `loss should fall clearly: first 10 steps ${first.toFixed(3)}, last 10 ${last.toFixed(3)}`,
  );
  assert.ok(losses.every(Number.isFinite));
  assert.ok(
    rssMax - rssRef < RSS_BOUND,
    `RSS grew ${((rssMax - rssRef) / 2 ** 20).toFixed(1)} MB after warm-up (bound 64 MB)`,
  );

  // Eval mode (running statistics) classifies the training set.
  const acc = T.tidy(() =>
    T.noGrad(() => {
      const pred = forward(images, params, buffers, false).argmax(1);
      return pred.eq(labels).float().mean().item();
    }),
  );
  assert.ok(acc > 0.9, `eval accuracy ${acc}`);

  for (const t of [
    templates,
    labels,
    images,
    ...Object.values(params),
    ...Object.values(buffers),
    ...Object.values(velocity),
  ])
    t.dispose();
  assert.equal(T.memory().tensors, start.tensors, 'everything freed');
  assert.equal(T.memory().bytes, start.bytes);
  console.log(
    `# ${STEPS} steps in ${seconds.toFixed(1)} s; loss ${first.toFixed(3)} -> ${last.toFixed(3)}; eval acc ${acc.toFixed(3)}; ` +
      `after warm-up: ${ref!.tensors} tensors, ${ref!.bytes} bytes every step, RSS +${((rssMax - rssRef) / 2 ** 20).toFixed(1)} MB`,
  );
});

const MB = 2 ** 20;
test("dispose frees the storage at once, not at GC: with malloc policy 'retain' later allocations reuse it", () => {
  const before = T.memory();
  const rss: number[] = [];
  const rounds = 12;
  for (let i = 0; i < rounds; i++) {
    const big = T.zeros([64, 1024, 1024]); // 256 MB, touched
    assert.equal(T.memory().bytes - before.bytes, 256 * MB);
    big.dispose();
    assert.equal(T.memory().bytes, before.bytes);
    rss.push(T.memory().rss);
  }
  const growth = rss[rounds - 1]! - rss[1]!;
  if (T.getMallocPolicy() === 'retain') {
    // The process keeps freed blocks (no page faults for the next step), so RSS does not fall at dispose, and
    // the next allocation mostly comes from them. Had dispose not freed the storage, each of the 10 rounds would
    // add 256 MB (2.5 GB); glibc may still place a block anew once or twice when small allocations split the
    // free space (the high-water mark moves, then holds), hence the bound of 4 of those 10.
    assert.ok(growth < 4 * 256 * MB, `RSS grew by ${(growth / MB).toFixed(0)} MB over 10 rounds of allocate + dispose`);
    // The caching CPU allocator hands the same 256 MB block back each round.
    assert.ok(
      T.memory().cacheHits - before.cacheHits >= rounds - 1,
      `cache hits: ${T.memory().cacheHits - before.cacheHits}`,
    );
  } else {
    assert.ok(rss[rounds - 1]! - before.rss < 128 * MB, 'the memory went back to the OS');
  }
});

test('with GOODSREC_MALLOC=system, dispose returns the memory to the OS at once', {
  skip: process.platform !== 'linux' && 'glibc only',
}, () => {
  const code = `import * as T from ${JSON.stringify(new URL('../src/tensor/index.js', import.meta.url).href)};
    const before = T.memory(); const big = T.zeros([64, 1024, 1024]); const during = T.memory(); big.dispose(); const after = T.memory();
    console.log(JSON.stringify({ policy: T.getMallocPolicy(), fell: during.rss - after.rss }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
    encoding: 'utf8',
    env: { ...process.env, GOODSREC_MALLOC: 'system' },
  });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { policy: string; fell: number };
  assert.equal(out.policy, 'system');
  assert.ok(out.fell > 200 * MB, `RSS fell by ${(out.fell / MB).toFixed(0)} MB at dispose`);
});

// A training step in a worker thread (where `goodsrec train` runs it): glibc's per-thread arena drops an empty
// 64 MiB heap, so without the caching allocator every round faults its 64 MB in again (16k pages).
function workerRoundFaults(policy: 'retain' | 'system'): number[] {
  const tensorUrl = JSON.stringify(new URL('../src/tensor/index.js', import.meta.url).href);
  const code = `import { Worker } from 'node:worker_threads';
    import * as T from ${tensorUrl};
    const w = new Worker(\`import * as T from ${tensorUrl}; import { parentPort } from 'node:worker_threads';
      const faults = [];
      for (let i = 0; i < 6; i++) {
        const f0 = process.resourceUsage().minorPageFault;
        const a = T.zeros([16, 1024, 1024]); const b = T.zeros([4, 1024, 1024]); a.dispose(); b.dispose();
        faults.push(process.resourceUsage().minorPageFault - f0);
      }
      parentPort.postMessage(faults);\`, { eval: true });
    w.on('message', (f) => { console.log(JSON.stringify({ policy: T.getMallocPolicy(), faults: f })); w.terminate(); });`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
    encoding: 'utf8',
    env: { ...process.env, GOODSREC_MALLOC: policy },
  });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { policy: string; faults: number[] };
  assert.equal(out.policy, policy);
  return out.faults;
}

test("malloc policy 'retain' in a worker thread: re-allocating 80 MB a round page-faults nothing new", {
  skip: process.platform !== 'linux' && 'glibc only',
}, () => {
  const retain = workerRoundFaults('retain');
  const system = workerRoundFaults('system');
  console.log(
    `# page faults per round (80 MB allocated and freed) in a worker: retain ${retain.join(' ')} | system ${system.join(' ')}`,
  );
  // 80 MB is 20k pages: the first round faults them in; after it, 'retain' reuses them.
  assert.ok(Math.max(...retain.slice(2)) < 2000, `retain: ${retain.join(' ')}`);
  // Negative control: glibc's defaults give the memory back, and each round faults it in again.
  assert.ok(Math.min(...system.slice(2)) > 10000, `system: ${system.join(' ')}`);
});

test('grad getter handles are scoped; backward frees the graph', () => {
  const w = T.randn([256, 256], { requiresGrad: true }).keep();
  const base = T.memory();
  const loss = T.tidy(() => w.matmul(w).relu().matmul(w).sum());
  // Only the loss handle is alive; the graph's saved tensors are not handles.
  assert.equal(T.memory().tensors, base.tensors + 1);
  loss.backward();
  loss.dispose();
  T.tidy(() => {
    for (let i = 0; i < 100; i++) assert.equal(w.grad!.shape[0], 256);
  });
  const m = T.memory();
  assert.equal(m.tensors, base.tensors, 'grad handles freed by tidy');
  w.zeroGrad();
  assert.equal(w.grad, undefined);
  assert.throws(() => loss.backward(), /disposed/);
  w.dispose();
});
