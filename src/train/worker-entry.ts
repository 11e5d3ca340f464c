// Runs train() in a worker thread so the main thread stays free for progress
// output and signals (a training step blocks its thread for its whole length).
import { parentPort, workerData } from 'node:worker_threads';
import { train, type TrainOptions } from './trainer.js';
import type { TrainConfig } from '../run/config.js';

export interface TrainWorkerData {
  config: TrainConfig;
  options: Omit<TrainOptions, 'events'>;
  /** Int32Array over a SharedArrayBuffer: [0] != 0 asks the loop to stop at the next step. */
  stopFlag: SharedArrayBuffer;
}

export type TrainWorkerMessage =
  | { type: 'step'; progress: import('./progress.js').StepProgress; totalSteps: number; stepsDone: number }
  | { type: 'log'; line: string }
  | { type: 'epoch'; record: import('./trainer.js').EpochRecord }
  | { type: 'done'; result: import('./trainer.js').TrainResult }
  | { type: 'error'; name: string; message: string; stack?: string };

const port = parentPort;
if (!port) throw new Error('worker-entry must run in a worker thread');
const data = workerData as TrainWorkerData;
const stop = new Int32Array(data.stopFlag);
const post = (m: TrainWorkerMessage): void => port.postMessage(m);

let lastStepPost = 0;
train(data.config, {
  ...data.options,
  events: {
    onStep: (progress, totalSteps, stepsDone) => {
      // Throttled: the main thread only redraws a bar.
      const now = Date.now();
      if (now - lastStepPost > 200 || progress.step === progress.steps) {
        lastStepPost = now;
        post({ type: 'step', progress, totalSteps, stepsDone });
      }
    },
    onLog: (line) => post({ type: 'log', line }),
    onEpoch: (record) => post({ type: 'epoch', record }),
    shouldStop: () => Atomics.load(stop, 0) !== 0,
  },
}).then(
  (result) => post({ type: 'done', result }),
  (e: unknown) => {
    const err = e instanceof Error ? e : new Error(String(e));
    post({ type: 'error', name: err.name, message: err.message, ...(err.stack ? { stack: err.stack } : {}) });
  },
);
