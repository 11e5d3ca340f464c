// The addon in worker_threads: it loads per thread (no JS values in native
// statics), computes there while the main thread's timers keep firing, and
// two workers run at once with identical results.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import * as T from '../src/tensor/index.js';
import { computeLoop } from './helpers/compute-loop.js';

interface WorkerResult {
  result: number;
  ms: number;
  memory: T.MemoryInfo;
  libtorchError: string;
}

const WORKER = new URL('./helpers/tensor-worker.js', import.meta.url);

function runWorker(steps: number): Promise<WorkerResult> {
  return new Promise((resolve, reject) => {
    const w = new Worker(WORKER, { workerData: { steps } });
    w.once('message', (m: WorkerResult) => resolve(m));
    w.once('error', reject);
    w.once('exit', (code) => {
      if (code !== 0) reject(new Error(`worker exited with code ${code}`));
    });
  });
}

/** Max gap between 5 ms interval ticks while `p` runs. */
async function timerDelayDuring<R>(p: () => Promise<R>): Promise<{ value: R; maxDelay: number; ticks: number }> {
  let last = performance.now();
  let maxDelay = 0;
  let ticks = 0;
  const h = setInterval(() => {
    const now = performance.now();
    maxDelay = Math.max(maxDelay, now - last);
    last = now;
    ticks++;
  }, 5);
  try {
    const value = await p();
    return { value, maxDelay, ticks };
  } finally {
    clearInterval(h);
  }
}

const STEPS = 300;
const expected = computeLoop(STEPS);

test('compute in a worker keeps the main thread responsive', async () => {
  const { value, maxDelay, ticks } = await timerDelayDuring(() => runWorker(STEPS));
  assert.ok(
    Math.abs(value.result - expected) <= 1e-5 * Math.abs(expected),
    `worker ${value.result} vs main ${expected}`,
  );
  assert.equal(value.memory.tensors, 0, 'the worker freed its tensors');
  assert.match(value.libtorchError, /cannot be multiplied/, 'libtorch errors are JS exceptions in workers too');
  // The same loop on the main thread holds the timers for its whole length (the control).
  const blocked = await timerDelayDuring(async () => {
    const t0 = performance.now();
    computeLoop(STEPS);
    const ms = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 20)); // the overdue tick fires first and records the wait
    return ms;
  });
  console.log(
    `# worker: ${value.ms} ms compute, max main-thread timer delay ${maxDelay.toFixed(1)} ms over ${ticks} ticks; ` +
      `same loop on the main thread: ${blocked.value.toFixed(0)} ms, max timer delay ${blocked.maxDelay.toFixed(0)} ms`,
  );
  // Relative bounds, so a loaded machine (slower compute, later timers) keeps them: timers fire all along
  // the worker's compute, no wait is near its length, while the main-thread loop's wait is.
  assert.ok(ticks > 10, `${ticks} timer ticks during ${value.ms} ms of compute`);
  assert.ok(
    maxDelay < value.ms / 2,
    `main-thread timer delay ${maxDelay.toFixed(1)} ms while the worker computed for ${value.ms} ms`,
  );
  assert.ok(
    blocked.maxDelay >= blocked.value / 2,
    `control: the loop on the main thread (${blocked.value.toFixed(0)} ms) delayed timers only ${blocked.maxDelay.toFixed(0)} ms`,
  );
});

test('two workers compute at once and agree', async () => {
  const before = T.memory();
  const [a, b] = await Promise.all([runWorker(STEPS), runWorker(STEPS)]);
  for (const r of [a!, b!]) {
    assert.ok(Math.abs(r.result - expected) <= 1e-5 * Math.abs(expected), `worker ${r.result} vs main ${expected}`);
    assert.equal(r.memory.tensors, 0);
  }
  assert.equal(T.memory().tensors, before.tensors, 'worker tensors do not show in the main thread count');
});

test('a worker terminated mid-loop neither crashes the process nor leaks its tensors', async () => {
  const before = T.memory();
  const w = new Worker(WORKER, { workerData: { steps: 100000 } });
  // Until the worker holds tensors (it starts and loads the addon first: slower on a loaded machine).
  const deadline = Date.now() + 60_000;
  while (T.memory().processTensors <= before.processTensors) {
    assert.ok(Date.now() < deadline, 'the worker holds tensors while it runs');
    await new Promise((r) => setTimeout(r, 10));
  }
  await w.terminate();
  assert.equal(T.memory().processTensors, before.processTensors, 'its tensors were freed at teardown');
  assert.equal(T.memory().processBytes, before.processBytes);
  T.tidy(() => assert.equal(T.ones([3]).sum().item(), 3));
});
