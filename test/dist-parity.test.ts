// Data-parallel parity: 2 goodsrec processes on Gloo (loopback) against PyTorch DDP (2 processes,
// Gloo) on the same float64 CNN, data, DistributedSampler sharding and SGD: per-rank losses and the
// weights after k steps must agree; without averaging, or summing instead, they must not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '../src/tensor/index.js';
import { shardLength, shardOrder } from '../src/data/shard.js';
import { bucketSizes } from '../src/distributed/data-parallel.js';
import { runOracle, loadTensors, relError } from './nn-helpers.js';
import { freePort } from './helpers/free-port.js';

const WORKER = join(dirname(fileURLToPath(import.meta.url)), 'helpers', 'ddp-worker.js');
const STEPS = 3;
// float64 on both sides: only summation order can differ, far below this.
const TOL = 1e-9;

function runRank(dir: string, mode: string, rank: number, port: number): Promise<void> {
  return new Promise((resolveRun, reject) => {
    const p = spawn(process.execPath, [WORKER, dir, String(STEPS), mode], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, RANK: String(rank), WORLD_SIZE: '2', LOCAL_RANK: String(rank), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), GOODSREC_DIST_TIMEOUT: '60' },
    });
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolveRun() : reject(new Error(`rank ${rank} (${mode}) exited with ${code}`))));
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

test('2-process Gloo data parallel matches PyTorch DDP (losses and weights), negative controls differ', { timeout: 150_000 }, async () => {
  const oracle = runOracle('ddp_oracle.py', String(await freePort()), String(STEPS));
  try {
    const dir = oracle.dir;
    const torchLosses = (oracle.json.losses as number[][]);
    const torchW = [0, 1].map((r) => loadTensors(join(dir, `torch-rank${r}.safetensors`)));
    // DDP's replicas keep identical parameters (BatchNorm statistics are per replica after the last forward).
    const params = (m: Map<string, T.Tensor>): Map<string, T.Tensor> => new Map([...m].filter(([k]) => !/running_|num_batches/.test(k)));
    assert.equal(maxRelError(params(torchW[0]!), params(torchW[1]!)), 0);

    // Overlapped with backward (several small buckets), and all after backward.
    for (const mode of ['ddp', 'ddp-post']) await runGoodsrec(dir, mode);
    for (const [mode, r] of [['ddp', 0], ['ddp', 1], ['ddp-post', 0], ['ddp-post', 1]] as const) {
      const mine = JSON.parse(readFileSync(join(dir, `goodsrec-${mode}-rank${r}.json`), 'utf8')) as { losses: number[]; buckets: number[]; early: number };
      if (mode === 'ddp') {
        assert.ok(mine.buckets.length >= 3, `several buckets: ${mine.buckets}`);
        assert.equal(mine.early, mine.buckets.length, 'every bucket was launched from a backward hook');
      }
      assert.equal(mine.losses.length, STEPS);
      mine.losses.forEach((l, s) => assert.ok(Math.abs(l - torchLosses[r]![s]!) <= TOL * Math.abs(torchLosses[r]![s]!),
        `${mode} rank ${r} step ${s + 1}: loss ${l} vs PyTorch DDP ${torchLosses[r]![s]}`));
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
    for (const m of torchW) for (const t of m.values()) t.dispose();
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
    assert.ok(train.every((s) => s.length === Math.ceil(order.length / w)), `world ${w}: equal steps on every rank`);
    assert.deepEqual(new Set(train.flat()), new Set(order), `world ${w}: every sample seen in training`);
    const evalShards = Array.from({ length: w }, (_, r) => [...shardOrder(order, { rank: r, worldSize: w }, false)]);
    assert.deepEqual(evalShards.flat().sort((a, b) => a - b), [...order].sort((a, b) => a - b), `world ${w}: eval counts each once`);
    evalShards.forEach((s, r) => assert.equal(s.length, shardLength(order.length, { rank: r, worldSize: w }, false)));
  }
});

test('gradient buckets: reverse order, first bucket 1 MiB then the cap, an oversized tensor alone', () => {
  const MiB = 1024 * 1024;
  assert.deepEqual(bucketSizes([0.5 * MiB, 0.4 * MiB, 0.2 * MiB, 10 * MiB, 20 * MiB, 30 * MiB, 1], MiB, 25 * MiB), [2, 2, 1, 1, 1]);
  assert.deepEqual(bucketSizes([], MiB, 25 * MiB), []);
});
