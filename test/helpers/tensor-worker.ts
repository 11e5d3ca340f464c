// Worker body for test/tensor-worker.test.ts: a deterministic conv training
// loop (inputs from arange, no RNG, so concurrent workers agree).
import { parentPort, workerData } from 'node:worker_threads';
import * as T from '../../src/tensor/index.js';
import { computeLoop } from './compute-loop.js';

const { steps } = workerData as { steps: number };
const t0 = Date.now();
const result = computeLoop(steps);
let libtorchError = '';
try {
  T.tidy(() => T.ones([2, 3]).matmul(T.ones([4, 5])));
} catch (e) {
  libtorchError = (e as Error).message;
}
parentPort!.postMessage({ result, ms: Date.now() - t0, memory: T.memory(), libtorchError });
