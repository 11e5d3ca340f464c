// Data-parallel training with PyTorch DDP's semantics over a c10d process group:
// rank 0's weights and buffers are broadcast at start, buffers again before every
// forward (DDP's broadcast_buffers=True), and gradients are averaged by bucketed
// all-reduce (buckets in reverse parameter order, 1 MiB first then 25 MiB, as DDP).
// With overlap (default), hooks on the grad accumulators start each bucket's all-reduce
// during backward, as DDP's Reducer; without, all buckets go right after backward.
import * as T from '../tensor/index.js';

export interface DataParallelOptions {
  /** Bucket size in MiB (DDP's bucket_cap_mb). Default 25. */
  bucketCapMB?: number;
  /** Size of the first bucket in MiB (DDP: 1). */
  firstBucketCapMB?: number;
  /** Broadcast rank 0's buffers (BatchNorm statistics) before every forward. Default true, as DDP. */
  broadcastBuffers?: boolean;
  /** Start bucket all-reduces during backward (autograd hooks). Default true. */
  overlap?: boolean;
}

export interface ParamSet {
  parameters(): T.Tensor[];
  buffers(): T.Tensor[];
}

/** Splits tensors (in the given order) into buckets of at most capBytes (one tensor may exceed it alone). */
export function bucketSizes(bytes: readonly number[], firstCapBytes: number, capBytes: number): number[] {
  const sizes: number[] = [];
  let count = 0;
  let filled = 0;
  for (const b of bytes) {
    const cap = sizes.length === 0 ? firstCapBytes : capBytes;
    if (count > 0 && filled + b > cap) {
      sizes.push(count);
      count = 0;
      filled = 0;
    }
    count++;
    filled += b;
  }
  if (count > 0) sizes.push(count);
  return sizes;
}

export class DataParallel {
  readonly pg: T.ProcessGroup;
  /** Trainable parameters in all-reduce order (reverse registration order, as DDP). */
  private readonly params: T.Tensor[];
  private readonly buffers: T.Tensor[];
  readonly buckets: number[];
  /** Gradient bytes all-reduced per optimizer step. */
  readonly bytesPerStep: number;
  private readonly broadcastBuffersEachStep: boolean;
  private readonly overlap: T.GradientOverlap | null;
  private armed = false;
  /** Buckets whose all-reduce started during the last backward (overlap). */
  lastEarlyBuckets = 0;

  constructor(pg: T.ProcessGroup, model: ParamSet, o: DataParallelOptions = {}) {
    this.pg = pg;
    this.params = model
      .parameters()
      .filter((p) => p.requiresGrad)
      .reverse();
    this.buffers = model.buffers().filter((b) => T.isFloating(b.dtype) || b.dtype === 'int64');
    const bytes = this.params.map((p) => p.numel * T.bytesPerElement(p.dtype));
    const mib = 1024 * 1024;
    this.buckets = bucketSizes(bytes, (o.firstBucketCapMB ?? 1) * mib, (o.bucketCapMB ?? 25) * mib);
    this.bytesPerStep = bytes.reduce((a, b) => a + b, 0);
    this.broadcastBuffersEachStep = o.broadcastBuffers ?? true;
    this.overlap =
      (o.overlap ?? true) && pg.worldSize > 1 ? pg.overlapGradients(this.params, this.buckets, 1 / pg.worldSize) : null;
  }

  get worldSize(): number {
    return this.pg.worldSize;
  }
  get rank(): number {
    return this.pg.rank;
  }

  /** Makes every rank start from rank 0's parameters and buffers. */
  broadcastState(): void {
    T.noGrad(() => this.pg.broadcast([...this.params, ...this.buffers], 0));
  }

  /** Before each forward in training mode: rank 0's buffers (BatchNorm running statistics) everywhere. */
  beforeForward(): void {
    if (this.broadcastBuffersEachStep && this.buffers.length > 0 && this.pg.worldSize > 1) {
      T.noGrad(() => this.pg.broadcast(this.buffers, 0));
    }
  }

  /** Before a backward whose gradients will be averaged: their all-reduce starts during it (overlap). */
  beforeBackward(): void {
    if (this.overlap) {
      this.overlap.arm();
      this.armed = true;
    }
  }

  /**
   * After backward: every gradient becomes the mean over ranks. A parameter without a gradient is an error,
   * as in DDP without find_unused_parameters (the ranks' buckets would disagree).
   */
  averageGradients(): void {
    if (this.pg.worldSize === 1) return;
    if (this.armed) {
      this.armed = false;
      this.lastEarlyBuckets = this.overlap!.finish();
      return;
    }
    T.tidy(() => {
      const grads = this.params.map((p, i) => {
        const g = p.grad;
        if (g === undefined) {
          throw new Error(
            `data-parallel: parameter ${this.params.length - 1 - i} (registration order) has no gradient after ` +
              'backward; every trainable parameter must take part in the loss',
          );
        }
        return g;
      });
      this.pg.allreduceBuckets(grads, this.buckets, 1 / this.pg.worldSize);
    });
  }
}
