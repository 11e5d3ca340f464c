/**
 * DataLoader: an async iterable of batches with per-epoch shuffling from a seed, decoding and
 * augmentation in parallel (worker_threads, each also using libvips' own threads), in-order delivery,
 * exact resume from (epoch, step), and bad-file accounting.
 *
 * Determinism: the order of an epoch comes from (seed, epoch) and each sample's augmentation from
 * (seed, epoch, position, index), so batches do not depend on worker count or scheduling.
 */
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { Rng, deriveSeed } from '../util/rng.js';
import { resolveSamplePath, type Dataset } from './dataset.js';
import { BadImageError, type BadFileReason } from './image.js';
import { processSample, type BatchSlot, type SharedImage } from './sample.js';
import { shardLength, shardOrder, type Shard } from './shard.js';
import {
  decodePrefixLength,
  deterministicPrefixLength,
  pipelineOutputSize,
  validatePipeline,
  type PipelineConfig,
} from './transforms.js';

export interface Batch {
  /**
   * float32 NCHW (normalised) or uint8 NHWC, per the pipeline's `output`. When the pipeline fixes the
   * output size, the workers write into it directly and it is a view of a SharedArrayBuffer.
   */
  data: Float32Array | Uint8Array;
  shape: [number, number, number, number];
  layout: 'NCHW' | 'NHWC';
  labels: Int32Array;
  /** Dataset indices of the samples, in batch order. */
  indices: Int32Array;
  epoch: number;
  step: number;
}

export interface LoaderState {
  epoch: number;
  step: number;
}

export interface BadFileRecord {
  path: string;
  reason: BadFileReason;
  message: string;
  epoch: number;
}

export interface DataLoaderOptions {
  /** The samples to load (select the split first). */
  dataset: Dataset;
  /** A resolved pipeline (no 'dataset' placeholders). */
  pipeline: PipelineConfig;
  batchSize: number;
  /** 'train': shuffled (or class-balanced) order; 'eval': dataset order, every sample exactly once. */
  mode?: 'train' | 'eval';
  /** Training order: 'shuffle' (default) or 'class-balanced' (each draw: a class uniformly, then an image of it). */
  sampler?: 'shuffle' | 'class-balanced' | 'sequential';
  seed?: number;
  /** Drop the last partial batch (train only; eval always keeps it). */
  dropLast?: boolean;
  /** worker_threads to decode/augment in; 0 runs on the main thread. Default: available cores. */
  workers?: number;
  /** Samples in flight per worker (overlaps libvips decoding with JS transforms). Default 2. */
  perWorker?: number;
  /** Batches prepared ahead of the consumer. Default 2. */
  prefetch?: number;
  /** Bad files: 'skip' (report, count, leave out) or 'fail' (throw). Default 'skip'. */
  onBadFile?: 'skip' | 'fail';
  /** Keep the deterministic prefix (decode + letterbox/resize/crop) of samples in memory, up to this many bytes. Default 0. */
  cacheBytes?: number;
  /** Where to start. Default {epoch: 0, step: 0}. */
  start?: LoaderState;
  /**
   * Recycle batch buffers: a batch's `data` is overwritten once the next batch is requested. Set it when
   * each batch is used up before asking for the next (e.g. copied into a tensor, as goodsrec's trainer
   * does): memory then stays flat instead of waiting for the garbage collector. Default false.
   */
  reuseBuffers?: boolean;
  /** Data-parallel rank: load only this rank's share of each epoch (see data/shard.ts). */
  shard?: Shard;
}

/** Messages to and from src/data/worker.ts. */
export interface WorkerJob {
  id: number;
  path: string;
  seed: number;
  wantPrefix: boolean;
  cached?: SharedImage;
  /** The sample's slot in the batch. */
  into?: BatchSlot;
}
export interface WorkerResult {
  id: number;
  /** The result, unless it was written into the job's slot (`inSlot`). */
  data?: Float32Array | Uint8Array;
  inSlot?: boolean;
  width?: number;
  height?: number;
  prefix?: SharedImage | undefined;
  error?: { reason: string; message: string; bad: boolean };
}

interface Pending {
  resolve: (r: WorkerResult) => void;
}

class WorkerPool {
  private workers: { w: Worker; busy: number }[] = [];
  private nextId = 1;
  private pending = new Map<number, Pending & { worker: number }>();
  private queue: { job: Omit<WorkerJob, 'id'>; resolve: (r: WorkerResult) => void }[] = [];
  private failure: Error | null = null;

  constructor(
    n: number,
    private perWorker: number,
    pipeline: PipelineConfig,
    prefixLen: number,
  ) {
    for (let i = 0; i < n; i++) {
      const w = new Worker(new URL('./worker.js', import.meta.url), { workerData: { pipeline, prefixLen } });
      w.on('message', (r: WorkerResult) => this.onResult(i, r));
      w.on('error', (e) => this.onFailure(e));
      w.on('exit', (code) => {
        if (code !== 0) this.onFailure(new Error(`data worker exited with code ${code}`));
      });
      w.unref();
      this.workers.push({ w, busy: 0 });
    }
  }

  private onFailure(e: Error): void {
    this.failure = e;
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.resolve({ id, error: { reason: 'error', message: e.message, bad: false } });
    }
    for (const q of this.queue.splice(0))
      q.resolve({ id: 0, error: { reason: 'error', message: e.message, bad: false } });
  }

  private onResult(i: number, r: WorkerResult): void {
    const p = this.pending.get(r.id);
    if (!p) return;
    this.pending.delete(r.id);
    const wk = this.workers[i]!;
    wk.busy--;
    if (wk.busy === 0) wk.w.unref();
    this.pump();
    p.resolve(r);
  }

  private pump(): void {
    while (this.queue.length) {
      let best = -1;
      for (let i = 0; i < this.workers.length; i++) {
        const b = this.workers[i]!.busy;
        if (b < this.perWorker && (best < 0 || b < this.workers[best]!.busy)) best = i;
      }
      if (best < 0) return;
      const { job, resolve } = this.queue.shift()!;
      const id = this.nextId++;
      const wk = this.workers[best]!;
      if (wk.busy === 0) wk.w.ref(); // keep the process alive while work is outstanding
      wk.busy++;
      this.pending.set(id, { resolve, worker: best });
      wk.w.postMessage({ ...job, id });
    }
  }

  run(job: Omit<WorkerJob, 'id'>): Promise<WorkerResult> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve) => {
      this.queue.push({ job, resolve });
      this.pump();
    });
  }

  async close(): Promise<void> {
    // Idle workers are unref'd and a terminating worker's handle does not hold the event loop either, so a
    // timer does until they have exited (without it `await close()` could end the process with exit code 13).
    const keepAlive = setInterval(() => {}, 60_000);
    try {
      await Promise.all(this.workers.map((w) => w.w.terminate()));
    } finally {
      clearInterval(keepAlive);
    }
    this.workers = [];
  }
}

/** A processed sample: in its batch slot (`data` null) or in its own array. */
interface SampleResult {
  data: Float32Array | Uint8Array | null;
  width: number;
  height: number;
}

export class DataLoader implements AsyncIterable<Batch> {
  readonly dataset: Dataset;
  readonly pipeline: PipelineConfig;
  readonly batchSize: number;
  readonly mode: 'train' | 'eval';
  readonly shard: Shard | null;
  readonly seed: number;
  /** Bad files met so far (each path once per epoch). */
  readonly badFiles: BadFileRecord[] = [];
  private readonly opts: Required<
    Pick<
      DataLoaderOptions,
      'sampler' | 'dropLast' | 'workers' | 'perWorker' | 'prefetch' | 'onBadFile' | 'cacheBytes' | 'reuseBuffers'
    >
  >;
  /** Batch buffers handed back by the consumer (reuseBuffers). */
  private freeBuffers: SharedArrayBuffer[] = [];
  private pos: LoaderState;
  private pool: WorkerPool | null = null;
  private cache = new Map<number, SharedImage>();
  private cacheUsed = 0;
  private readonly prefixLen: number;
  private readonly byClass: number[][];
  /** [height, width] of every sample when the pipeline fixes it, else null. */
  private readonly outputSize: [number, number] | null;

  constructor(o: DataLoaderOptions) {
    validatePipeline(o.pipeline);
    if (!(Number.isInteger(o.batchSize) && o.batchSize > 0))
      throw new Error(`Expected a positive integer for batchSize but received ${o.batchSize}`);
    if (o.dataset.samples.length === 0)
      throw new Error('DataLoader: the dataset has no samples (check the split name)');
    this.dataset = o.dataset;
    this.pipeline = o.pipeline;
    this.batchSize = o.batchSize;
    this.mode = o.mode ?? 'train';
    this.shard = o.shard && o.shard.worldSize > 1 ? { ...o.shard } : null;
    this.seed = o.seed ?? 0;
    const workers = o.workers ?? availableParallelism();
    this.opts = {
      sampler: this.mode === 'eval' ? 'sequential' : (o.sampler ?? 'shuffle'),
      dropLast: this.mode === 'eval' ? false : (o.dropLast ?? false),
      workers,
      perWorker: o.perWorker ?? 2,
      prefetch: o.prefetch ?? 2,
      onBadFile: o.onBadFile ?? 'skip',
      cacheBytes: o.cacheBytes ?? 0,
      reuseBuffers: o.reuseBuffers ?? false,
    };
    this.pos = { ...(o.start ?? { epoch: 0, step: 0 }) };
    // With a cache, keep the whole deterministic prefix (decode + letterbox...) so epochs after the first
    // skip it; without one, stop before a letterbox that fuses with the random crop after it.
    this.prefixLen = this.opts.cacheBytes > 0 ? deterministicPrefixLength(o.pipeline) : decodePrefixLength(o.pipeline);
    this.outputSize = pipelineOutputSize(o.pipeline);
    this.byClass = [];
    o.dataset.samples.forEach((s, i) => {
      (this.byClass[s.label] ??= []).push(i);
    });
  }

  /** Batches per epoch. */
  get stepsPerEpoch(): number {
    const all = this.dataset.samples.length;
    const n = this.shard ? shardLength(all, this.shard, this.mode === 'train') : all;
    return this.opts.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** Position of the next batch to be delivered. */
  state(): LoaderState {
    return { ...this.pos };
  }

  /** Moves to a position (e.g. from a checkpoint); the next iteration starts there. */
  setState(s: LoaderState): void {
    if (
      !(
        Number.isInteger(s.epoch) &&
        s.epoch >= 0 &&
        Number.isInteger(s.step) &&
        s.step >= 0 &&
        s.step <= this.stepsPerEpoch
      )
    ) {
      throw new Error(
        `DataLoader.setState: invalid position ${JSON.stringify(s)} (steps per epoch: ${this.stepsPerEpoch})`,
      );
    }
    this.pos = { ...s };
  }

  /** Dataset indices of an epoch in delivery order (before dropLast); this rank's share when sharded. */
  epochOrder(epoch: number): Int32Array {
    const order = this.globalOrder(epoch);
    return this.shard ? shardOrder(order, this.shard, this.mode === 'train') : order;
  }

  private globalOrder(epoch: number): Int32Array {
    const n = this.dataset.samples.length;
    if (this.opts.sampler === 'sequential') return Int32Array.from({ length: n }, (_, i) => i);
    if (this.opts.sampler === 'shuffle') return new Rng(deriveSeed(this.seed, epoch, 0x5eed)).permutation(n);
    const rng = new Rng(deriveSeed(this.seed, epoch, 0xba1a));
    const classes = this.byClass.filter((c) => c && c.length > 0);
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = rng.choice(rng.choice(classes));
    return out;
  }

  /** Iterates the current epoch from the current step; afterwards the position is the next epoch's start. */
  [Symbol.asyncIterator](): AsyncIterator<Batch> {
    return this.iterateEpoch()[Symbol.asyncIterator]();
  }

  /** Iterates the current epoch from state().step (see setState). */
  async *iterateEpoch(): AsyncGenerator<Batch> {
    const { epoch, step: startStep } = this.pos;
    const order = this.epochOrder(epoch);
    const steps = this.stepsPerEpoch;
    const B = this.batchSize;
    const inflight: Promise<Batch>[] = [];
    let next = startStep;
    const ahead = Math.max(1, this.opts.prefetch);
    try {
      while (next < steps || inflight.length) {
        while (next < steps && inflight.length < ahead) {
          const s = next++;
          const ids = order.subarray(s * B, Math.min(order.length, (s + 1) * B));
          const p = this.loadBatch(epoch, s, ids, s * B);
          p.catch(() => undefined); // handled when awaited in order
          inflight.push(p);
        }
        const b = await inflight.shift()!;
        this.pos = b.step + 1 >= steps ? { epoch: epoch + 1, step: 0 } : { epoch, step: b.step + 1 };
        yield b;
        // The consumer asked for the next batch: with reuseBuffers, this one's buffer is free again.
        if (
          this.opts.reuseBuffers &&
          b.data.buffer instanceof SharedArrayBuffer &&
          this.freeBuffers.length <= ahead + 1
        )
          this.freeBuffers.push(b.data.buffer);
      }
    } finally {
      // A consumer that stops early leaves outstanding batches; they finish and are dropped.
      inflight.length = 0;
    }
  }

  /**
   * The seed of one sample's augmentation: from the loader's seed, the epoch, the sample's position in
   * the epoch's order and its dataset index. `processFile(path, pipeline, seed)` reproduces the sample.
   */
  sampleSeed(epoch: number, position: number, index: number): number {
    return deriveSeed(this.seed, epoch, position, index);
  }

  private async loadSample(
    epoch: number,
    position: number,
    index: number,
    slot: BatchSlot | null,
  ): Promise<SampleResult | null> {
    const s = this.dataset.samples[index]!;
    const path = resolveSamplePath(this.dataset, s);
    const seed = this.sampleSeed(epoch, position, index);
    const cached = this.cache.get(index);
    const wantPrefix = !cached && this.opts.cacheBytes > 0 && this.cacheUsed < this.opts.cacheBytes;
    if (this.opts.workers > 0) {
      this.pool ??= new WorkerPool(this.opts.workers, this.opts.perWorker, this.pipeline, this.prefixLen);
      const r = await this.pool.run({
        path,
        seed,
        wantPrefix,
        ...(cached ? { cached } : {}),
        ...(slot ? { into: slot } : {}),
      });
      if (r.error) {
        if (r.error.bad) return this.bad(path, r.error.reason as BadFileReason, r.error.message, epoch);
        throw new Error(`data worker failed on ${path}: ${r.error.message}`);
      }
      if (r.prefix) this.remember(index, r.prefix);
      return { data: r.inSlot ? null : r.data!, width: r.width!, height: r.height! };
    }
    // Main-thread path: the same code the workers run.
    try {
      const r = await processSample(this.pipeline, {
        path,
        seed,
        prefixLen: this.prefixLen,
        cached,
        wantPrefix,
        slot: slot ?? undefined,
      });
      if (r.prefix) this.remember(index, r.prefix);
      return { data: r.inSlot ? null : r.out.data, width: r.out.width, height: r.out.height };
    } catch (e) {
      if (e instanceof BadImageError) return this.bad(path, e.reason, e.message, epoch);
      throw e;
    }
  }

  /** Caches a sample's prefix image while the cache has room. */
  private remember(index: number, prefix: SharedImage): void {
    if (this.cache.has(index) || this.cacheUsed + prefix.buffer.byteLength > this.opts.cacheBytes) return;
    this.cache.set(index, prefix);
    this.cacheUsed += prefix.buffer.byteLength;
  }

  private bad(path: string, reason: BadFileReason, message: string, epoch: number): null {
    if (this.opts.onBadFile === 'fail') throw new BadImageError(path, reason, message);
    if (!this.badFiles.some((b) => b.path === path && b.epoch === epoch))
      this.badFiles.push({ path, reason, message, epoch });
    return null;
  }

  private async loadBatch(epoch: number, step: number, ids: Int32Array, firstPos: number): Promise<Batch> {
    const uint8 = this.pipeline.output === 'uint8';
    // With a fixed output size, samples are written straight into one shared batch buffer.
    const fixed = this.outputSize;
    const fixedPer = fixed ? fixed[0] * fixed[1] * 3 : 0;
    const sab = fixed ? this.batchBuffer(ids.length * fixedPer * (uint8 ? 1 : 4)) : null;
    const batchView = sab ? (uint8 ? new Uint8Array(sab) : new Float32Array(sab)) : null;
    const slotOf = (k: number): BatchSlot | null =>
      sab ? { buffer: sab, offset: k * fixedPer, length: fixedPer } : null;
    const results = await Promise.all(
      Array.from(ids, (idx, k) => this.loadSample(epoch, firstPos + k, idx, slotOf(k))),
    );
    const keep: number[] = [];
    results.forEach((r, k) => {
      if (r) keep.push(k);
    });
    const first = keep.length ? results[keep[0]!]! : null;
    const w = first?.width ?? 0,
      h = first?.height ?? 0;
    const per = w * h * 3;
    if (batchView && per !== fixedPer && keep.length)
      throw new Error(`internal: pipeline output ${w}x${h} differs from its fixed size ${fixed![1]}x${fixed![0]}`);
    const data = batchView
      ? batchView.subarray(0, keep.length * per)
      : uint8
        ? new Uint8Array(keep.length * per)
        : new Float32Array(keep.length * per);
    const labels = new Int32Array(keep.length);
    const indices = new Int32Array(keep.length);
    keep.forEach((k, j) => {
      const r = results[k]!;
      const idx = ids[k]!;
      if (r.width !== w || r.height !== h) {
        throw new Error(
          `pipeline output sizes differ within a batch: ${resolveSamplePath(this.dataset, this.dataset.samples[idx]!)} gave ${r.width}x${r.height}, expected ${w}x${h}; end the pipeline with a fixed-size crop or resize`,
        );
      }
      if (r.data) (data as Float32Array).set(r.data as Float32Array, j * per);
      else if (k !== j) batchView!.copyWithin(j * per, k * per, (k + 1) * per); // close the gap left by a bad file
      labels[j] = this.dataset.samples[idx]!.label;
      indices[j] = idx;
    });
    const shape: [number, number, number, number] = uint8 ? [keep.length, h, w, 3] : [keep.length, 3, h, w];
    return { data, shape, layout: uint8 ? 'NHWC' : 'NCHW', labels, indices, epoch, step };
  }

  /** A buffer for a batch: a recycled one of that size if there is one (reuseBuffers), else a new one. */
  private batchBuffer(bytes: number): SharedArrayBuffer {
    const i = this.freeBuffers.findIndex((b) => b.byteLength === bytes);
    return i >= 0 ? this.freeBuffers.splice(i, 1)[0]! : new SharedArrayBuffer(bytes);
  }

  /** Stops the worker threads. The loader can be iterated again afterwards (workers restart). */
  async close(): Promise<void> {
    const p = this.pool;
    this.pool = null;
    if (p) await p.close();
  }

  /** Cached prefix images and their bytes. */
  cacheInfo(): { entries: number; bytes: number } {
    return { entries: this.cache.size, bytes: this.cacheUsed };
  }
}
