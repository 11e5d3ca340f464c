/**
 * One DataLoader sample from its file: the same code in the loader's worker threads and on its main
 * thread, so both give the same bytes. Decodes and transforms, writes into the sample's batch slot
 * when given, and hands back the decoded prefix in shared memory when the loader wants to cache it.
 */
import { readImageFile, type RgbImage } from './image.js';
import { decodeWithPrefix, finishSample, processBuffer, type PipelineConfig, type Processed } from './transforms.js';
import { Rng } from '../util/rng.js';

/** An 8-bit RGB image in shared memory (a cached prefix), passed between threads without copying. */
export interface SharedImage {
  buffer: SharedArrayBuffer;
  width: number;
  height: number;
}

/** A sample's place in a batch: `length` elements (float32 or uint8, per the pipeline) from element `offset`. */
export interface BatchSlot {
  buffer: SharedArrayBuffer;
  offset: number;
  length: number;
}

/** The typed view of a slot. */
export function slotView(slot: BatchSlot, cfg: PipelineConfig): Float32Array | Uint8Array {
  return cfg.output === 'uint8'
    ? new Uint8Array(slot.buffer, slot.offset, slot.length)
    : new Float32Array(slot.buffer, slot.offset * 4, slot.length);
}

export interface SampleJob {
  path: string;
  seed: number;
  /** Ops [0, prefixLen) are the cacheable prefix (see DataLoader). */
  prefixLen: number;
  /** The prefix image from the loader's cache. */
  cached?: SharedImage | undefined;
  /** Return the prefix image so the loader can cache it. */
  wantPrefix: boolean;
  slot?: BatchSlot | undefined;
}

export interface SampleOutput {
  out: Processed;
  /** The result was written into the job's slot (`out.data` is the slot's view). */
  inSlot: boolean;
  prefix?: SharedImage;
}

/** Throws BadImageError for bad files, like the decoders it calls. */
export async function processSample(cfg: PipelineConfig, job: SampleJob): Promise<SampleOutput> {
  const into = job.slot ? slotView(job.slot, cfg) : undefined;
  let out: Processed;
  let prefix: SharedImage | undefined;
  if (!job.cached && !job.wantPrefix) {
    // Nothing to cache: decode and transform in one go (windowed JPEG decoding when it applies).
    out = await processBuffer(await readImageFile(job.path), job.path, cfg, job.seed, into);
  } else {
    let img: RgbImage;
    if (job.cached)
      img = { data: new Uint8Array(job.cached.buffer), width: job.cached.width, height: job.cached.height };
    else {
      const decoded = await decodeWithPrefix(job.path, cfg, job.prefixLen);
      const sab = new SharedArrayBuffer(decoded.data.length);
      new Uint8Array(sab).set(decoded.data);
      prefix = { buffer: sab, width: decoded.width, height: decoded.height };
      img = { data: new Uint8Array(sab), width: decoded.width, height: decoded.height };
    }
    out = finishSample(img, cfg, new Rng(job.seed), job.prefixLen, { into });
  }
  return { out, inSlot: into !== undefined && out.data === into, ...(prefix ? { prefix } : {}) };
}
