// A process group on libtorch's c10d: TCPStore rendezvous + ProcessGroupGloo (CPU tensors) or
// ProcessGroupNCCL (CUDA tensors; only when the addon was built against a libtorch with NCCL).
// Every call blocks its thread until the collective is done or its timeout
// passes (run training in a worker thread, as the trainer does).
import { call, type Handle } from './native.js';
import { wrap, type Tensor } from './tensor.js';
import { backendForDevice, cudaSummary, isCuda, resolveDevice } from './device.js';

/** c10d backends: Gloo for CPU tensors, NCCL for CUDA tensors (as torch.distributed). */
export type Backend = 'gloo' | 'nccl';

export interface ProcessGroupOptions {
  /** Address of rank 0, which hosts the TCPStore (MASTER_ADDR). */
  masterAddr: string;
  /** Port of the TCPStore on rank 0 (MASTER_PORT). */
  masterPort: number;
  rank: number;
  worldSize: number;
  /** Rendezvous and per-collective timeout (ms): a dead or hung peer surfaces as an error after it. */
  timeoutMs: number;
  /** Key prefix in the store (separates several groups over one store). Default 'goodsrec'. */
  prefix?: string;
  /** Device of the tensors this group reduces; picks the backend (default 'cpu': Gloo). */
  device?: string;
  /** Overrides the backend chosen from `device`. */
  backend?: Backend;
}

export type ReduceOp = 'sum' | 'max' | 'min';

/** Raised when a collective fails: a peer died, hung past the timeout, or the rendezvous did not complete. */
export class CollectiveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CollectiveError';
  }
}

function checked<R>(what: string, fn: () => R): R {
  try {
    return fn();
  } catch (e) {
    const m = (e as Error).message;
    throw new CollectiveError(m.startsWith(`${what}: `) ? m : `${what}: ${m}`);
  }
}

/** See ProcessGroup.overlapGradients. */
export interface GradientOverlap {
  /** The next backward launches the all-reduces (call before it). */
  arm(): void;
  /** After backward: waits for every bucket, writes the means into the gradients; returns the buckets launched. */
  finish(): number;
}

export class ProcessGroup {
  private handle: Handle | null;
  readonly rank: number;
  readonly worldSize: number;
  readonly timeoutMs: number;
  readonly backend: Backend;

  private constructor(handle: Handle, o: ProcessGroupOptions, backend: Backend) {
    this.handle = handle;
    this.backend = backend;
    this.rank = o.rank;
    this.worldSize = o.worldSize;
    this.timeoutMs = o.timeoutMs;
  }

  /** Joins the group: returns once all worldSize ranks have connected (or throws after timeoutMs). */
  static init(o: ProcessGroupOptions): ProcessGroup {
    if (!(Number.isInteger(o.worldSize) && o.worldSize >= 1))
      throw new RangeError(`worldSize must be an integer >= 1, got ${o.worldSize}`);
    if (!(Number.isInteger(o.rank) && o.rank >= 0 && o.rank < o.worldSize)) {
      throw new RangeError(`rank must be an integer in [0, ${o.worldSize}), got ${o.rank}`);
    }
    if (!(Number.isInteger(o.masterPort) && o.masterPort > 0 && o.masterPort < 65536))
      throw new RangeError(`masterPort must be 1..65535, got ${o.masterPort}`);
    const device = o.device ?? 'cpu';
    const backend = o.backend ?? backendForDevice(device);
    // An NCCL build without the GPU: refuse now (DeviceError) instead of failing inside the rendezvous.
    if (backend === 'nccl' && isCuda(device) && cudaSummary().cudaCompiled) resolveDevice(device);
    let h: Handle;
    try {
      const prefix = o.prefix ?? 'goodsrec';
      h = call('distInit', o.masterAddr, o.masterPort, o.rank, o.worldSize, o.timeoutMs, prefix, backend) as Handle;
    } catch (e) {
      const m = (e as Error).message;
      if (/NCCL backend is not in this build/.test(m)) {
        throw new Error(`data-parallel training on device ${device} needs the NCCL backend: ${m}`);
      }
      const who = `rendezvous with ${o.masterAddr}:${o.masterPort} as rank ${o.rank} of ${o.worldSize}`;
      throw new CollectiveError(`${who}: ${m}`);
    }
    return new ProcessGroup(h, o, backend);
  }

  private get h(): Handle {
    if (this.handle === null) throw new Error('the process group was destroyed');
    return this.handle;
  }

  /** In-place reduction of one tensor across ranks. */
  allreduce(t: Tensor, op: ReduceOp = 'sum', timeoutMs = this.timeoutMs): void {
    checked('allreduce', () => call('distAllreduce', this.h, t.handle, op, timeoutMs));
  }

  /**
   * The sum of `t` over ranks as a new tensor, differentiable: its backward sums the gradient over ranks
   * (torch.distributed.nn.functional.all_reduce). Every rank must run the same forward and backward.
   */
  allreduceSum(t: Tensor, timeoutMs = this.timeoutMs): Tensor {
    return wrap(checked('allreduce', () => call('distAllreduceSum', this.h, t.handle, timeoutMs) as Handle));
  }

  /**
   * Sums `tensors` across ranks in place, `bucketSizes[i]` tensors per flat bucket, each tensor multiplied by
   * `scale` first (1/worldSize averages, as DDP does). All buckets are in flight together.
   */
  allreduceBuckets(
    tensors: readonly Tensor[],
    bucketSizes: readonly number[],
    scale = 1,
    timeoutMs = this.timeoutMs,
  ): void {
    checked('gradient all-reduce', () =>
      call(
        'distAllreduceBuckets',
        this.h,
        tensors.map((t) => t.handle),
        [...bucketSizes],
        scale,
        timeoutMs,
      ),
    );
  }

  /**
   * Gradient all-reduce overlapped with backward (DDP's Reducer): hooks on the grad accumulators of `params`
   * (leaves that require grad) launch each bucket's all-reduce as soon as its gradients are accumulated.
   */
  overlapGradients(
    params: readonly Tensor[],
    bucketSizes: readonly number[],
    scale: number,
    timeoutMs = this.timeoutMs,
  ): GradientOverlap {
    const h = checked(
      'gradient hooks',
      () =>
        call(
          'distOverlapCreate',
          this.h,
          params.map((t) => t.handle),
          [...bucketSizes],
          scale,
          timeoutMs,
        ) as Handle,
    );
    return {
      arm: () => {
        call('distOverlapArm', h);
      },
      finish: () => checked('gradient all-reduce', () => call('distOverlapFinish', h) as number),
    };
  }

  /** Copies root's values into every rank's tensors (one coalesced buffer). */
  broadcast(tensors: readonly Tensor[], root = 0, timeoutMs = this.timeoutMs): void {
    if (tensors.length === 0) return;
    checked('broadcast', () =>
      call(
        'distBroadcast',
        this.h,
        tensors.map((t) => t.handle),
        root,
        timeoutMs,
      ),
    );
  }

  barrier(timeoutMs = this.timeoutMs): void {
    checked('barrier', () => call('distBarrier', this.h, timeoutMs));
  }

  /** Key/value in the rendezvous store (shared by all ranks). */
  storeSet(key: string, value: string): void {
    checked('store set', () => call('distStoreSet', this.h, key, value));
  }

  /** The value, or null when the key is not set yet (does not wait). */
  storeGet(key: string): string | null {
    return checked('store get', () => call('distStoreGet', this.h, key) as string | null);
  }

  /** Waits up to timeoutMs for the key, then returns its value. */
  storeWait(key: string, timeoutMs = this.timeoutMs): string {
    return checked(`waiting for '${key}' in the store`, () => call('distStoreWait', this.h, key, timeoutMs) as string);
  }

  /** Leaves the group (closes the connections now rather than at garbage collection). */
  destroy(): void {
    if (this.handle === null) return;
    call('distDestroy', this.handle);
    this.handle = null;
  }
}
