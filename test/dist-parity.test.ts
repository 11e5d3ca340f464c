// Data-parallel parity: 2 goodsrec processes on Gloo (loopback) against PyTorch DDP (2 processes,
// Gloo) on the same float64 CNN, data, DistributedSampler sharding and SGD: per-rank losses and the
// weights after k steps must agree; without averaging, or summing instead, they must not. Then the same
// with SyncBatchNorm against DDP with nn.SyncBatchNorm.convert_sync_batchnorm (per-replica BN must differ).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '../src/tensor/index.js';
import { shardLength, shardOrder } from '../src/data/shard.js';
import { bucketSizes } from '../src/distributed/data-parallel.js';
import { convertSyncBatchNorm } from '../src/distributed/sync-batchnorm.js';
import type { EvalMetrics } from '../src/eval/metrics.js';
import { BatchNorm2d } from '../src/nn/index.js';
import { runOracle, loadTensors, relError } from './nn-helpers.js';
import { loadDataset, selectSplits } from '../src/data/index.js';
import { evaluate } from '../src/eval/evaluate.js';
import { createModel } from '../src/models/index.js';
import { evalPipeline } from '../src/run/pipelines.js';
import { freePort } from './helpers/free-port.js';

const WORKER = join(dirname(fileURLToPath(import.meta.url)), 'helpers', 'ddp-worker.js');
const STEPS = 3;
// float64 on both sides: only summation order can differ, far below this.
const TOL = 1e-9;

function runRank(dir: string, mode: string, rank: number, port: number): Promise<void> {
  return new Promise((resolveRun, reject) => {
    const p = spawn(process.execPath, [WORKER, dir, String(STEPS), mode], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: {
        ...process.env,
        RANK: String(rank),
        WORLD_SIZE: '2',
        LOCAL_RANK: String(rank),
        MASTER_ADDR: '127.0.0.1',
        MASTER_PORT: String(port),
        GOODSREC_DIST_TIMEOUT: '60',
      },
    });
    p.on('error', reject);
    p.on('exit', (code) =>
      code === 0 ? resolveRun() : reject(new Error(`rank ${rank} (${mode}) exited with ${code}`)),
    );
  });
}

async function runGoodsrec(dir: string, mode: string): Promise<void> {
  const port = await freePort();
  await Promise.all([runRank(dir, mode, 0, port), runRank(dir, mode, 1, port)]);
}

/** Largest relative error over the state dicts (every tensor, buffers included). */
function maxRelError(a: Map<string, T.Tensor>, b: Map<string, T.Tensor>): number {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  let worst = 0;
  for (const [k, t] of a) worst = Math.max(worst, relError(t, b.get(k)!));
  return worst;
}

test('2-process Gloo data parallel and SyncBatchNorm match PyTorch DDP (losses and weights), negative controls differ', {
  timeout: 240_000,
}, async () => {
  const oracle = runOracle('ddp_oracle.py', String(await freePort()), String(STEPS));
  try {
    const dir = oracle.dir;
    const torchLosses = oracle.json.losses as number[][];
    const torchW = [0, 1].map((r) => loadTensors(join(dir, `torch-rank${r}.safetensors`)));
    // DDP's replicas keep identical parameters (BatchNorm statistics are per replica after the last forward).
    const params = (m: Map<string, T.Tensor>): Map<string, T.Tensor> =>
      new Map([...m].filter(([k]) => !/running_|num_batches/.test(k)));
    assert.equal(maxRelError(params(torchW[0]!), params(torchW[1]!)), 0);

    // Overlapped with backward (several small buckets), and all after backward.
    for (const mode of ['ddp', 'ddp-post']) await runGoodsrec(dir, mode);
    for (const [mode, r] of [
      ['ddp', 0],
      ['ddp', 1],
      ['ddp-post', 0],
      ['ddp-post', 1],
    ] as const) {
      const mine = JSON.parse(readFileSync(join(dir, `goodsrec-${mode}-rank${r}.json`), 'utf8')) as {
        losses: number[];
        buckets: number[];
        early: number;
      };
      if (mode === 'ddp') {
        assert.ok(mine.buckets.length >= 3, `several buckets: ${mine.buckets}`);
        assert.equal(mine.early, mine.buckets.length, 'every bucket was launched from a backward hook');
      }
      assert.equal(mine.losses.length, STEPS);
      mine.losses.forEach((l, s) =>
        assert.ok(
          Math.abs(l - torchLosses[r]![s]!) <= TOL * Math.abs(torchLosses[r]![s]!),
          `${mode} rank ${r} step ${s + 1}: loss ${l} vs PyTorch DDP ${torchLosses[r]![s]}`,
        ),
      );
      const w = loadTensors(join(dir, `goodsrec-${mode}-rank${r}.safetensors`));
      const err = maxRelError(w, torchW[r]!);
      assert.ok(err <= TOL, `${mode} rank ${r}: weights after ${STEPS} steps differ from PyTorch DDP's by ${err}`);
      for (const t of w.values()) t.dispose();
    }

    // Negative controls: the comparison above must be able to fail.
    for (const mode of ['nosync', 'sum']) {
      await runGoodsrec(dir, mode);
      const w = loadTensors(join(dir, `goodsrec-${mode}-rank0.safetensors`));
      const err = maxRelError(w, torchW[0]!);
      assert.ok(err > 1e3 * TOL, `${mode}: weights should differ from PyTorch DDP's, error ${err}`);
      for (const t of w.values()) t.dispose();
    }

    // SyncBatchNorm: global batch statistics (running statistics included) as PyTorch's, on both ranks.
    await runGoodsrec(dir, 'syncbn');
    const syncLosses = oracle.json.syncbn_losses as number[][];
    const torchSync = [0, 1].map((r) => loadTensors(join(dir, `torch-syncbn-rank${r}.safetensors`)));
    assert.ok(maxRelError(torchSync[0]!, torchSync[1]!) <= TOL, 'PyTorch SyncBN replicas share running statistics');
    for (const r of [0, 1]) {
      type Out = { losses: number[]; buckets: number[]; early: number };
      const mine = JSON.parse(readFileSync(join(dir, `goodsrec-syncbn-rank${r}.json`), 'utf8')) as Out;
      assert.equal(mine.early, mine.buckets.length, 'buckets still overlap backward beside SyncBN all-reduces');
      mine.losses.forEach((l, s) =>
        assert.ok(
          Math.abs(l - syncLosses[r]![s]!) <= TOL * Math.abs(syncLosses[r]![s]!),
          `syncbn rank ${r} step ${s + 1}: loss ${l} vs PyTorch SyncBN ${syncLosses[r]![s]}`,
        ),
      );
      const w = loadTensors(join(dir, `goodsrec-syncbn-rank${r}.safetensors`));
      const err = maxRelError(w, torchSync[r]!);
      assert.ok(err <= TOL, `syncbn rank ${r}: state after ${STEPS} steps differs from PyTorch SyncBN's by ${err}`);
      for (const t of w.values()) t.dispose();
      // Negative control: per-replica BatchNorm (the 'ddp' run above) must fail the SyncBN comparison.
      const perReplica = loadTensors(join(dir, `goodsrec-ddp-rank${r}.safetensors`));
      const bad = maxRelError(perReplica, torchSync[r]!);
      assert.ok(bad > 1e3 * TOL, `per-replica BN should differ from PyTorch SyncBN's, error ${bad}`);
      for (const t of perReplica.values()) t.dispose();
    }
    for (const m of [...torchW, ...torchSync]) for (const t of m.values()) t.dispose();
  } finally {
    oracle.cleanup();
  }
});

test('sharding: as DistributedSampler for training (padded by the head), every sample exactly once for eval', () => {
  const order = Int32Array.from([5, 3, 9, 0, 7, 1, 4]);
  // torch: indices += indices[:pad]; indices[rank:total:world]
  assert.deepEqual([...shardOrder(order, { rank: 0, worldSize: 3 }, true)], [5, 0, 4]);
  assert.deepEqual([...shardOrder(order, { rank: 1, worldSize: 3 }, true)], [3, 7, 5]);
  assert.deepEqual([...shardOrder(order, { rank: 2, worldSize: 3 }, true)], [9, 1, 3]);
  for (const w of [1, 2, 3, 4, 8, 10]) {
    const train = Array.from({ length: w }, (_, r) => [...shardOrder(order, { rank: r, worldSize: w }, true)]);
    assert.ok(
      train.every((s) => s.length === Math.ceil(order.length / w)),
      `world ${w}: equal steps on every rank`,
    );
    assert.deepEqual(new Set(train.flat()), new Set(order), `world ${w}: every sample seen in training`);
    const evalShards = Array.from({ length: w }, (_, r) => [...shardOrder(order, { rank: r, worldSize: w }, false)]);
    assert.deepEqual(
      evalShards.flat().sort((a, b) => a - b),
      [...order].sort((a, b) => a - b),
      `world ${w}: eval counts each once`,
    );
    evalShards.forEach((s, r) => assert.equal(s.length, shardLength(order.length, { rank: r, worldSize: w }, false)));
  }
});

test('sharded evaluation: each rank its strided share, summed counts give the 1-process metrics exactly', async () => {
  // 13 test images: uneven for 2 and 3 ranks. The ranks run one after another here; the all-reduce is a sum
  // (the 2-process path through the trainer is checked in dist-cli.test.ts).
  const sample = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'grocery-sample');
  const all = selectSplits(loadDataset(sample), 'test');
  const ds = { ...all, samples: all.samples.filter((_, i) => i % 4 === 1).slice(0, 13) };
  assert.equal(ds.samples.length, 13);
  T.manualSeed(3);
  const model = createModel('resnet18', { numClasses: ds.classes.length, log: null });
  const pipeline = evalPipeline({
    size: 32,
    resize: 'letterbox',
    cropPct: 0.875,
    mean: [0.5, 0.5, 0.5],
    std: [0.25, 0.25, 0.25],
  });
  const whole = (await evaluate(model, ds, pipeline, { batchSize: 4, keepTopK: 0 })).metrics;
  assert.equal(whole.samples, 13);
  for (const worldSize of [2, 3]) {
    const parts: Float64Array[] = [];
    let seen = 0;
    for (let rank = 0; rank < worldSize; rank++) {
      const r = await evaluate(model, ds, pipeline, {
        batchSize: 4,
        keepTopK: 0,
        shard: { rank, worldSize },
        reduceCounts: (c) => {
          parts.push(c);
          return c;
        },
      });
      seen += r.metrics.samples;
      assert.equal(r.metrics.samples, shardLength(13, { rank, worldSize }, false), `rank ${rank}/${worldSize}`);
    }
    assert.equal(seen, 13, `world ${worldSize}: every sample once, no padding`);
    const sum = parts.reduce((a, b) => a.map((v, i) => v + b[i]!));
    const m: EvalMetrics = (
      await evaluate(model, ds, pipeline, {
        batchSize: 4,
        keepTopK: 0,
        shard: { rank: 0, worldSize },
        reduceCounts: () => sum,
      })
    ).metrics;
    assert.deepEqual(m.confusion, whole.confusion, `world ${worldSize}: confusion counts`);
    assert.deepEqual(m.perClass, whole.perClass, `world ${worldSize}: per-class counts`);
    assert.deepEqual([m.samples, m.top1 * 13, m.top5 * 13], [whole.samples, whole.top1 * 13, whole.top5 * 13]);
    // Loss sums are float32 per batch, and the batches differ: equal to float32 rounding.
    assert.ok(Math.abs(m.loss! - whole.loss!) <= 1e-6 * Math.abs(whole.loss!), `loss ${m.loss} vs ${whole.loss}`);
    // Negative control: one rank's counts alone are not the split's.
    assert.notEqual(parts[0]![0], whole.samples);
  }
  model.dispose();
});

/** A process group of one rank (loopback). */
async function soloGroup(): Promise<T.ProcessGroup> {
  const masterPort = await freePort();
  return T.ProcessGroup.init({ masterAddr: '127.0.0.1', masterPort, rank: 0, worldSize: 1, timeoutMs: 30_000 });
}

test('SyncBatchNorm on one rank is BatchNorm: outputs, input gradients, running stats (float32, mean 1e3)', async () => {
  const pg = await soloGroup();
  try {
    // The sums are taken around the running mean: near the batch mean (990) float32 keeps its precision.
    const results = (
      [
        [false, 990],
        [true, 990],
        [true, 0],
      ] as const
    ).map(([sync, runningMean]) =>
      T.tidy(() => {
        T.manualSeed(5);
        const bn = new BatchNorm2d(6);
        T.noGrad(() => {
          bn.weight!.uniform_(0.5, 1.5);
          bn.bias!.uniform_(-1, 1);
          bn.running_mean!.fill_(runningMean);
        });
        if (sync) convertSyncBatchNorm(bn, pg);
        const x = T.randn([4, 6, 5, 5]).mul(3).add(1000).setRequiresGrad();
        const y = bn.forward(x);
        y.mul(T.randn([4, 6, 5, 5]))
          .sum()
          .backward();
        const out = [y, x.grad!, bn.weight!.grad!, bn.running_mean!, bn.running_var!].map((t) =>
          t.detach().clone().keep(),
        );
        bn.dispose();
        return out;
      }),
    );
    const [plain, synced, unshifted] = results as [T.Tensor[], T.Tensor[], T.Tensor[]];
    const names = ['output', 'input gradient', 'weight gradient', 'running mean', 'running var'];
    plain.forEach((p, i) => {
      const err = relError(synced[i]!, p);
      assert.ok(err < 1e-4, `${names[i]}: SyncBatchNorm vs BatchNorm relative error ${err}`);
    });
    // Negative control: around 0, E[x^2] - E[x]^2 loses float32's digits (measured 5e-3): the check sees it.
    const lost = relError(unshifted[0]!, plain[0]!);
    assert.ok(lost > 1e-4, `unshifted sums should lose precision, error ${lost}`);
    for (const t of [...plain, ...synced, ...unshifted]) t.dispose();
  } finally {
    pg.destroy();
  }
});

test('backend follows the device: Gloo for the CPU, NCCL for CUDA', async () => {
  assert.deepEqual(['cpu', 'cuda', 'cuda:3'].map(T.backendForDevice), ['gloo', 'nccl', 'nccl']);
  const pg = await soloGroup();
  assert.equal(pg.backend, 'gloo');
  pg.destroy();
});

test('a libtorch without CUDA/NCCL refuses a CUDA process group at once, with a clear error', (t) => {
  if (T.cuda.isAvailable()) {
    t.skip('needs a machine without a CUDA device (with one, NCCL groups are built)');
    return;
  }
  // The CPU build has no NCCL; the CUDA build has it but no GPU to put the group on.
  const why = T.buildInfo().nccl
    ? /device cuda:1: libtorch .* has CUDA compiled in but sees no GPU \(0 devices\)/
    : /training on device cuda:1 needs the NCCL backend: .*without CUDA\/NCCL.*CUDA libtorch built with NCCL/;
  // A rendezvous timeout far above the bound: waiting for the peer instead of refusing fails the bound
  // on any machine, and a refusal meets it however loaded the machine is.
  const timeoutMs = 120_000;
  const cudaGroup = { masterAddr: '127.0.0.1', masterPort: 1, rank: 1, worldSize: 2, timeoutMs, device: 'cuda:1' };
  const started = Date.now();
  assert.throws(() => T.ProcessGroup.init(cudaGroup), why);
  const ms = Date.now() - started;
  assert.ok(ms < timeoutMs / 4, `refused after ${ms} ms: before the rendezvous, not after its timeout`);
});

test('gradient buckets: reverse order, first bucket 1 MiB then the cap, an oversized tensor alone', () => {
  const MiB = 1024 * 1024;
  assert.deepEqual(
    bucketSizes([0.5 * MiB, 0.4 * MiB, 0.2 * MiB, 10 * MiB, 20 * MiB, 30 * MiB, 1], MiB, 25 * MiB),
    [2, 2, 1, 1, 1],
  );
  assert.deepEqual(bucketSizes([], MiB, 25 * MiB), []);
});
