/**
 * worker_threads entry: decodes and transforms samples for the DataLoader. The pipeline config comes in
 * workerData; each job message carries the path, the per-sample seed and, when the loader has it
 * cached, the deterministic-prefix image (in a SharedArrayBuffer, not copied).
 */
import { parentPort, workerData } from 'node:worker_threads';
import sharp from 'sharp';
import { BadImageError, type RgbImage } from './image.js';
import { decodeWithPrefix, finishSample, type PipelineConfig } from './transforms.js';
import { Rng } from '../util/rng.js';
import type { WorkerJob, WorkerResult } from './loader.js';

const { pipeline: cfg, prefixLen: k } = workerData as { pipeline: PipelineConfig; prefixLen: number };
sharp.cache(false); // every file is read once per epoch; libvips' operation cache only costs memory here

async function run(job: WorkerJob): Promise<void> {
  try {
    let prefix: RgbImage | null = job.cached ? { data: new Uint8Array(job.cached.buffer), width: job.cached.width, height: job.cached.height } : null;
    let share: WorkerResult['prefix'];
    if (!prefix) {
      const img = await decodeWithPrefix(job.path, cfg, k);
      if (job.wantPrefix) {
        const sab = new SharedArrayBuffer(img.data.length);
        new Uint8Array(sab).set(img.data);
        share = { buffer: sab, width: img.width, height: img.height };
        prefix = { data: new Uint8Array(sab), width: img.width, height: img.height };
      } else prefix = img;
    }
    const out = finishSample(prefix!, cfg, new Rng(job.seed), k);
    const buf = out.data.buffer as ArrayBuffer;
    const msg: WorkerResult = { id: job.id, data: out.data, width: out.width, height: out.height, prefix: share };
    parentPort!.postMessage(msg, buf instanceof ArrayBuffer && out.data.byteLength === buf.byteLength ? [buf] : []);
  } catch (e) {
    const err = e instanceof BadImageError ? { reason: e.reason, message: e.message, bad: true } : { reason: 'error', message: (e as Error).stack ?? String(e), bad: false };
    parentPort!.postMessage({ id: job.id, error: err } satisfies WorkerResult);
  }
}

parentPort!.on('message', (job: WorkerJob) => {
  void run(job);
});
