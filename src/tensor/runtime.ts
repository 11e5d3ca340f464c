// Process-wide engine settings and facts: threads, seeds, devices, memory, grad mode.
import { availableParallelism, totalmem } from 'node:os';
import { call } from './native.js';
import { bindDeviceRuntime } from './device.js';
import type { OpResult } from './ops.js';

export interface MemoryInfo {
  /** Tensor handles alive (not disposed) made on this JS thread (main thread or worker). */
  tensors: number;
  /** Bytes of distinct CPU storages those handles keep alive. */
  bytes: number;
  /** Same, on CUDA devices. */
  cudaBytes: number;
  /** Handles alive in the whole process (all threads). */
  processTensors: number;
  /** Bytes of distinct CPU storages the whole process's handles keep alive. */
  processBytes: number;
  /** Process resident set size. */
  rss: number;
  /** Freed tensor bytes the caching CPU allocator keeps for reuse ('retain' policy), and its hits/misses. */
  cachedBytes: number;
  cacheHits: number;
  cacheMisses: number;
}

/**
 * Live tensors and their storage bytes, for leak checks. Counts follow
 * handles: storage held only by an autograd graph (saved for backward) is not
 * counted until backward frees it.
 */
export function memory(): MemoryInfo {
  const m = call('memory', false);
  const p = call('memory', true);
  return { ...m, processTensors: p.tensors, processBytes: p.bytes, rss: process.memoryUsage.rss() };
}

/**
 * Hands the blocks the caching CPU allocator keeps ('retain' policy) back to malloc and returns their bytes;
 * with a GPU in use, also empties libtorch's CUDA caching allocator (torch.cuda.empty_cache()).
 */
export function releaseCachedMemory(): number {
  return call('releaseCachedMemory');
}

export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`Expected a positive integer for threads but received ${n}`);
  call('setNumThreads', n);
}
export function getNumThreads(): number {
  return call('getNumThreads');
}

/** Seeds libtorch's generators (init, dropout, rand*). */
export function manualSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0)
    throw new RangeError(`Expected a non-negative integer seed but received ${seed}`);
  call('manualSeed', seed);
}

export const cuda = {
  isAvailable(): boolean {
    return call('cudaIsAvailable');
  },
  deviceCount(): number {
    return call('cudaDeviceCount');
  },
  /**
   * cuDNN autotuning (torch.backends.cudnn.benchmark): for the fixed shapes of a training run each
   * convolution times its algorithms once and keeps the fastest. Returns the previous setting.
   */
  setCudnnBenchmark(enabled: boolean): boolean {
    return call('cudnnBenchmark', enabled);
  },
};

export type BuildInfo = OpResult<'buildInfo'>;
export function buildInfo(): BuildInfo {
  return call('buildInfo');
}

{
  const b = buildInfo();
  bindDeviceRuntime({
    libtorch: b.torchVersion,
    cudaCompiled: b.cudaCompiled,
    nccl: b.nccl,
    deviceCount: () => cuda.deviceCount(),
    deviceName: (i) => call('cudaDeviceName', i),
    synchronize: (i) => call('cudaSynchronize', i),
  });
}

export function isGradEnabled(): boolean {
  return call('gradEnabled');
}

function withGradMode<T>(enabled: boolean, fn: () => T): T {
  const prev = isGradEnabled();
  call('setGradEnabled', enabled);
  try {
    const r = fn();
    if (r instanceof Promise)
      throw new Error(
        'noGrad()/enableGrad(): the function must be synchronous (grad mode is per thread and would leak across awaits)',
      );
    return r;
  } finally {
    call('setGradEnabled', prev);
  }
}
/** Runs fn without recording operations for autograd. */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn);
}
export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn);
}

/**
 * How the process's allocator treats freed tensor memory. 'retain' (the default): freed tensor blocks of 64 KiB
 * and more stay in the process, in exact-size free lists of a caching CPU allocator installed into libtorch,
 * and are reused by the next step; on glibc, malloc also neither mmaps large blocks nor trims. Without it
 * ('system'), glibc unmaps blocks over 128 KiB-32 MiB, and a worker thread's arena drops whole 64 MiB heaps
 * once empty, so each training step page-faults its activations in afresh (ResNet-50, batch 32, 160 px:
 * 300-700k faults and about 2x the CPU time per step). Peak RSS is the run's high-water mark and stays there;
 * the cache is bounded by GOODSREC_CPU_CACHE_MB (default 40% of RAM). GOODSREC_MALLOC=system opts out.
 */
export type MallocPolicy = 'retain' | 'system';
let mallocPolicyInEffect: MallocPolicy = 'system';
export function setMallocPolicy(policy: MallocPolicy): MallocPolicy {
  if (policy !== 'retain' && policy !== 'system')
    throw new RangeError(`Expected 'retain' or 'system' for the malloc policy but received ${String(policy)}`);
  // glibc's settings cannot be returned to their dynamic defaults once changed, so 'system' only applies before 'retain'.
  if (policy === 'retain' && call('mallocPolicy', 'retain', cpuCacheBudget()) === true) mallocPolicyInEffect = 'retain';
  return mallocPolicyInEffect;
}
export function getMallocPolicy(): MallocPolicy {
  return mallocPolicyInEffect;
}
function cpuCacheBudget(): number {
  const env = process.env.GOODSREC_CPU_CACHE_MB;
  if (env === undefined || env === '') return Math.floor(totalmem() * 0.4);
  const mb = Number(env);
  if (!Number.isInteger(mb) || mb < 0)
    throw new RangeError(`GOODSREC_CPU_CACHE_MB must be a whole number of MiB >= 0, not '${env}'`);
  return mb * 1024 * 1024;
}
{
  const env = process.env.GOODSREC_MALLOC;
  if (env !== undefined && env !== 'retain' && env !== 'system')
    throw new RangeError(`GOODSREC_MALLOC must be 'retain' or 'system', not '${env}'`);
  if (env !== 'system') setMallocPolicy('retain');
}

// Use all cores by default: libtorch's own default is 1 thread on these VMs.
const envThreads = Number(process.env.GOODSREC_THREADS ?? '');
setNumThreads(Number.isInteger(envThreads) && envThreads > 0 ? envThreads : availableParallelism());
