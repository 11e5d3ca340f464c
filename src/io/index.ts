/**
 * Weight files: safetensors read/write and PyTorch torch.save checkpoints (read), on raw bytes,
 * independent of the tensor engine.
 */
export { type DType, type RawTensor, DTYPES, isDType, itemSize, numel } from './dtype.js';
export { WeightFileError, type WeightFileErrorCode } from './errors.js';
export {
  SafetensorsReader,
  type SafetensorsTensorInfo,
  type LazyRawTensor,
  type TensorSource,
  type TensorMap,
  MAX_HEADER_BYTES,
  readSafetensors,
  readSafetensorsSync,
  writeSafetensors,
  writeSafetensorsSync,
} from './safetensors.js';
export { PthCheckpoint, PthTensor, TorchStorage, flattenTensors, readPth, readPthSync } from './pth.js';
export {
  PyDict,
  PyTuple,
  PySet,
  PyOpaque,
  type PyValue,
  type PyKey,
  unpickle,
  type UnpickleOptions,
} from './pickle.js';
export {
  extractStateDict,
  loadStateDictFile,
  loadStateDictFileSync,
  detectWeightFormat,
  detectWeightFormatSync,
  type WeightFileFormat,
  WRAPPER_KEYS,
} from './state-dict.js';
