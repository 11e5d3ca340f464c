/**
 * worker_threads entry: decodes and transforms samples for the DataLoader. The pipeline config comes in
 * workerData; each job message carries the path, the per-sample seed, the batch slot to write the
 * result into (a SharedArrayBuffer, so nothing is copied back) and, when the loader has it cached, the
 * deterministic-prefix image (also shared, not copied).
 */
import { parentPort, workerData } from 'node:worker_threads';
import sharp from 'sharp';
import { BadImageError, readImageFile, type RgbImage } from './image.js';
import { decodeWithPrefix, finishSample, processBuffer, type PipelineConfig, type Processed } from './transforms.js';
import { Rng } from '../util/rng.js';
import type { WorkerJob, WorkerResult } from './loader.js';

const { pipeline: cfg, prefixLen: k } = workerData as { pipeline: PipelineConfig; prefixLen: number };
sharp.cache(false); // every file is read once per epoch; libvips' operation cache only costs memory here

function slot(job: WorkerJob): Float32Array | Uint8Array | undefined {
  if (!job.into) return undefined;
  const { buffer, offset, length } = job.into;
  return cfg.output === 'uint8' ? new Uint8Array(buffer, offset, length) : new Float32Array(buffer, offset * 4, length);
}

async function run(job: WorkerJob): Promise<void> {
  try {
    const into = slot(job);
    let out: Processed;
    let share: WorkerResult['prefix'];
    if (!job.cached && !job.wantPrefix) {
      // Nothing to cache: decode and transform in one go (windowed JPEG decoding when it applies).
      out = await processBuffer(await readImageFile(job.path), job.path, cfg, job.seed, into);
    } else {
      let prefix: RgbImage;
      if (job.cached) prefix = { data: new Uint8Array(job.cached.buffer), width: job.cached.width, height: job.cached.height };
      else {
        const img = await decodeWithPrefix(job.path, cfg, k);
        const sab = new SharedArrayBuffer(img.data.length);
        new Uint8Array(sab).set(img.data);
        share = { buffer: sab, width: img.width, height: img.height };
        prefix = { data: new Uint8Array(sab), width: img.width, height: img.height };
      }
      out = finishSample(prefix, cfg, new Rng(job.seed), k, { into });
    }
    if (into && out.data === into) {
      parentPort!.postMessage({ id: job.id, width: out.width, height: out.height, inSlot: true, prefix: share } satisfies WorkerResult);
      return;
    }
    // The result did not fit the slot (an image-dependent size): send it, the loader decides.
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
