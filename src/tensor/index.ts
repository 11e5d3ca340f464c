// goodsrec's tensor engine: libtorch through a Node-API addon.
export { Tensor, type Device, type MemoryFormat, type Scalar, type ValuesIndices } from './tensor.js';
export { type DType, DTYPES, isFloating, bytesPerElement, type TypedArrayOf } from './dtype.js';
export {
  tensor,
  scalar,
  empty,
  zeros,
  ones,
  full,
  rand,
  randn,
  randint,
  randperm,
  arange,
  linspace,
  eye,
  zerosLike,
  onesLike,
  fullLike,
  emptyLike,
  randLike,
  randnLike,
  type CreateOptions,
} from './creation.js';
export { tidy, keep, scopeDepth } from './scope.js';
export {
  memory,
  setNumThreads,
  getNumThreads,
  manualSeed,
  cuda,
  buildInfo,
  noGrad,
  enableGrad,
  isGradEnabled,
  setMallocPolicy,
  getMallocPolicy,
  releaseCachedMemory,
  type MallocPolicy,
  type MemoryInfo,
  type BuildInfo,
} from './runtime.js';
export { autocast, GradScaler, allFinite, type AutocastDevice, type GradScalerOptions } from './autocast.js';
export {
  backendForDevice,
  type DeviceSpec,
  type DeviceType,
  DeviceError,
  DEVICE_PATTERN,
  DEVICE_EXPECTED,
  isDevice,
  isCuda,
  parseDevice,
  resolveDevice,
  describeDevice,
  deviceType,
  deviceIndex,
  rankDevice,
  autocastDtype,
  synchronize,
  cudaSummary,
  checkLocalRanks,
} from './device.js';
export { batchToDevice, DevicePrefetcher, type Prefetched, type ToDeviceOptions } from './transfer.js';
export * as F from './functional.js';
export { cat, stack, where, einsum } from './functional.js';
export { fromRaw, toRaw } from './raw.js';
export {
  ProcessGroup,
  CollectiveError,
  type Backend,
  type GradientOverlap,
  type ProcessGroupOptions,
  type ReduceOp,
} from './process-group.js';
