/**
 * worker_threads entry: decodes and transforms samples for the DataLoader (src/data/sample.ts). The
 * pipeline config comes in workerData; each job message carries the path, the per-sample seed, the
 * batch slot to write the result into (a SharedArrayBuffer, so nothing is copied back) and, when the
 * loader has it cached, the deterministic-prefix image (also shared, not copied).
 */
import { parentPort, workerData } from 'node:worker_threads';
import sharp from 'sharp';
import { BadImageError } from './image.js';
import { processSample } from './sample.js';
import type { PipelineConfig } from './transforms.js';
import type { WorkerJob, WorkerResult } from './loader.js';

const { pipeline: cfg, prefixLen } = workerData as { pipeline: PipelineConfig; prefixLen: number };
sharp.cache(false); // every file is read once per epoch; libvips' operation cache only costs memory here

async function run(job: WorkerJob): Promise<void> {
  try {
    const { out, inSlot, prefix } = await processSample(cfg, {
      path: job.path,
      seed: job.seed,
      prefixLen,
      cached: job.cached,
      wantPrefix: job.wantPrefix,
      slot: job.into,
    });
    if (inSlot) {
      parentPort!.postMessage({
        id: job.id,
        width: out.width,
        height: out.height,
        inSlot: true,
        prefix,
      } satisfies WorkerResult);
      return;
    }
    // The result did not fit the slot (an image-dependent size): send it, the loader decides.
    const buf = out.data.buffer as ArrayBuffer;
    const msg: WorkerResult = { id: job.id, data: out.data, width: out.width, height: out.height, prefix };
    parentPort!.postMessage(msg, buf instanceof ArrayBuffer && out.data.byteLength === buf.byteLength ? [buf] : []);
  } catch (e) {
    const err =
      e instanceof BadImageError
        ? { reason: e.reason, message: e.message, bad: true }
        : { reason: 'error', message: (e as Error).stack ?? String(e), bad: false };
    parentPort!.postMessage({ id: job.id, error: err } satisfies WorkerResult);
  }
}

parentPort!.on('message', (job: WorkerJob) => {
  void run(job);
});
