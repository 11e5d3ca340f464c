// The one device module: what a device name means ('auto', 'cpu', 'cuda', 'cuda:N'), which device 'auto'
// picks, how a device is described, which dtype autocast uses on it, which c10d backend reduces its tensors,
// and waiting for its queued work. Every other file asks here instead of testing strings itself.
// The parsing half loads no addon (src/run's config schema uses the pattern); the half that asks libtorch
// (resolve, describe, synchronize) is bound by runtime.ts when the engine loads.

/** A concrete device: the CPU, the current GPU ('cuda') or GPU number N. */
export type Device = 'cpu' | 'cuda' | `cuda:${number}`;
/** What a user may write: a device, or 'auto' (a GPU when one is visible, else the CPU). */
export type DeviceSpec = Device | 'auto';
export type DeviceType = 'cpu' | 'cuda';

/** Accepted device names, in the config, every command's --device, and the library. */
export const DEVICE_PATTERN = /^(auto|cpu|cuda(:\d+)?)$/;
export const DEVICE_EXPECTED = "'auto', 'cpu', 'cuda' or 'cuda:N'";

/**
 * A device that cannot be used: a malformed name, or CUDA asked for where there is none. Its name is the
 * CLI's signal for a usage error (exit 2, one sentence, nothing done).
 */
export class DeviceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DeviceError';
  }
}

/** Whether `s` names a concrete device ('auto' is not one). */
export function isDevice(s: string): s is Device {
  return s !== 'auto' && DEVICE_PATTERN.test(s);
}

/** Checks a device name; throws DeviceError naming the accepted forms. */
export function parseDevice(s: string): DeviceSpec {
  if (!DEVICE_PATTERN.test(s)) throw new DeviceError(`device '${s}': expected ${DEVICE_EXPECTED}`);
  return s as DeviceSpec;
}

export function deviceType(d: Device): DeviceType {
  return d === 'cpu' ? 'cpu' : 'cuda';
}

export function isCuda(d: string): boolean {
  return d === 'cuda' || d.startsWith('cuda:');
}

/** The GPU number of a CUDA device ('cuda' is the current one: 0 unless changed), null for the CPU. */
export function deviceIndex(d: Device): number | null {
  if (d === 'cpu') return null;
  return d === 'cuda' ? 0 : Number(d.slice(5));
}

/** The device of one rank of a data-parallel job: 'cuda' means the GPU numbered LOCAL_RANK (as torchrun jobs use). */
export function rankDevice(d: Device, localRank: number): Device {
  return d === 'cuda' ? `cuda:${localRank}` : d;
}

/** The c10d backend for tensors on a device: NCCL for CUDA, Gloo for the CPU (as torch.distributed). */
export function backendForDevice(d: string): 'gloo' | 'nccl' {
  return isCuda(d) ? 'nccl' : 'gloo';
}

/**
 * The autocast dtype for a device: bfloat16 on the CPU (libtorch's CPU autocast has no float16), float16 on
 * CUDA (with a GradScaler), as torch.autocast's defaults.
 */
export function autocastDtype(d: Device): 'bfloat16' | 'float16' {
  return deviceType(d) === 'cpu' ? 'bfloat16' : 'float16';
}

// --- what libtorch says (bound by runtime.ts) ----------------------------------------------------

/** The engine's answers about CUDA; runtime.ts binds them when the addon loads. */
export interface DeviceRuntime {
  /** libtorch version, e.g. '2.14.1'. */
  libtorch: string;
  /** The addon was built against a CUDA libtorch. */
  cudaCompiled: boolean;
  /** ProcessGroupNCCL is compiled in. */
  nccl: boolean;
  /** Visible GPUs (0 without CUDA). */
  deviceCount(): number;
  deviceName(index: number): string;
  synchronize(index: number): void;
}

let bound: DeviceRuntime | null = null;

/** Called once by runtime.ts. */
export function bindDeviceRuntime(r: DeviceRuntime): void {
  bound = r;
}

function engine(): DeviceRuntime {
  if (!bound) throw new Error('goodsrec: the tensor engine is not loaded (import goodsrec or src/tensor first)');
  return bound;
}

/**
 * The device to run on: 'auto' is the first GPU when one is visible, else the CPU. CUDA where it cannot be
 * used throws a DeviceError whose one sentence says why: an addon built without CUDA, no visible GPU, or a
 * GPU number past the last.
 */
export function resolveDevice(spec: string): Device {
  const s = parseDevice(spec);
  const e = engine();
  const count = e.deviceCount();
  if (s === 'auto') return count > 0 ? 'cuda' : 'cpu';
  if (s === 'cpu') return s;
  if (!e.cudaCompiled)
    throw new DeviceError(
      `device ${s}: the native addon was built against libtorch ${e.libtorch} without CUDA; ` +
        'build the CUDA one with `bash scripts/setup-cuda.sh` (and GOODSREC_NATIVE), or use --device cpu',
    );
  if (count === 0)
    throw new DeviceError(
      `device ${s}: libtorch ${e.libtorch} has CUDA compiled in but sees no GPU (0 devices); use --device cpu`,
    );
  const index = deviceIndex(s)!;
  if (index >= count)
    throw new DeviceError(
      `device ${s}: there ${count === 1 ? 'is 1 GPU' : `are ${count} GPUs`} (cuda:0..${count - 1})`,
    );
  return s;
}

/**
 * Before a launcher starts `ranks` processes on this machine for `spec`: CUDA ranks each need their own GPU
 * and an NCCL build; throws a DeviceError at once instead of letting every rank fail the same way.
 */
export function checkLocalRanks(spec: string, ranks: number): void {
  const s = parseDevice(spec);
  if (!isCuda(s)) return;
  const d = resolveDevice(s);
  const e = engine();
  if (!e.nccl)
    throw new DeviceError(
      `--nproc-per-node ${ranks} --device ${d}: the native addon (libtorch ${e.libtorch}) has no NCCL; ` +
        'multi-GPU training needs the CUDA build (`bash scripts/setup-cuda.sh`)',
    );
  const count = e.deviceCount();
  if (d === 'cuda' && ranks > count)
    throw new DeviceError(
      `--nproc-per-node ${ranks} --device cuda: each rank needs its own GPU, and this machine has ${count}`,
    );
}

/** One line for logs and versions.json: 'cpu', or 'cuda:0 (NVIDIA H100 80GB HBM3)'. */
export function describeDevice(d: Device): string {
  if (d === 'cpu') return 'cpu';
  const index = deviceIndex(d)!;
  const name = engine().deviceName(index);
  return `cuda:${index}${name ? ` (${name})` : ''}`;
}

/** Waits until the work queued on the device is done (CUDA kernels run asynchronously); a no-op on the CPU. */
export function synchronize(d: Device): void {
  if (d !== 'cpu') engine().synchronize(deviceIndex(d)!);
}

/** What the engine knows about CUDA, for --version and versions.json. */
export function cudaSummary(): { cudaCompiled: boolean; cudaDevices: number } {
  const e = engine();
  return { cudaCompiled: e.cudaCompiled, cudaDevices: e.deviceCount() };
}
