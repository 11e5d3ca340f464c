/**
 * Element types of weight files, named the way the goodsrec tensor engine names them, with the
 * spellings used on disk by safetensors (`F32`) and by PyTorch pickles (`torch.FloatStorage`).
 */

export type DType =
  | 'float32'
  | 'float16'
  | 'bfloat16'
  | 'float64'
  | 'int64'
  | 'int32'
  | 'int16'
  | 'int8'
  | 'uint8'
  | 'bool';

/** A tensor as stored in a weight file: raw little-endian bytes in row-major (C contiguous) order. */
export interface RawTensor {
  dtype: DType;
  shape: number[];
  /** Little-endian element bytes, row-major; length is numel(shape) * itemSize(dtype). */
  data: Uint8Array;
}

export const DTYPES: readonly DType[] = [
  'float32',
  'float16',
  'bfloat16',
  'float64',
  'int64',
  'int32',
  'int16',
  'int8',
  'uint8',
  'bool',
];

const ITEM_SIZE: Record<DType, number> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  float64: 8,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

export function isDType(s: unknown): s is DType {
  return typeof s === 'string' && Object.hasOwn(ITEM_SIZE, s);
}

/** Bytes per element. */
export function itemSize(dtype: DType): number {
  return ITEM_SIZE[dtype];
}

/** Number of elements of a shape (1 for a scalar `[]`). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** safetensors dtype codes, per the format's spec. */
const SAFETENSORS_OF: Record<DType, string> = {
  float32: 'F32',
  float16: 'F16',
  bfloat16: 'BF16',
  float64: 'F64',
  int64: 'I64',
  int32: 'I32',
  int16: 'I16',
  int8: 'I8',
  uint8: 'U8',
  bool: 'BOOL',
};
const DTYPE_OF_SAFETENSORS = new Map<string, DType>(Object.entries(SAFETENSORS_OF).map(([k, v]) => [v, k as DType]));

export function toSafetensorsDType(dtype: DType): string {
  return SAFETENSORS_OF[dtype];
}

/** goodsrec dtype of a safetensors code, or undefined for codes we don't support (U16, F8_E4M3, C64...). */
export function fromSafetensorsDType(code: string): DType | undefined {
  return DTYPE_OF_SAFETENSORS.get(code);
}

/** Storage classes of `torch` (`torch.FloatStorage` etc.) as they appear in a pickle's persistent ids. */
const DTYPE_OF_TORCH_STORAGE = new Map<string, DType>([
  ['FloatStorage', 'float32'],
  ['HalfStorage', 'float16'],
  ['BFloat16Storage', 'bfloat16'],
  ['DoubleStorage', 'float64'],
  ['LongStorage', 'int64'],
  ['IntStorage', 'int32'],
  ['ShortStorage', 'int16'],
  ['CharStorage', 'int8'],
  ['ByteStorage', 'uint8'],
  ['BoolStorage', 'bool'],
  // An untyped storage counts bytes; torch.load views it as uint8 as well.
  ['UntypedStorage', 'uint8'],
]);

export function fromTorchStorageName(name: string): DType | undefined {
  return DTYPE_OF_TORCH_STORAGE.get(name);
}

/** `torch.float32` and friends (as `_rebuild_tensor_v3` receives them). */
const DTYPE_OF_TORCH_DTYPE = new Map<string, DType>([
  ['float32', 'float32'],
  ['float', 'float32'],
  ['float16', 'float16'],
  ['half', 'float16'],
  ['bfloat16', 'bfloat16'],
  ['float64', 'float64'],
  ['double', 'float64'],
  ['int64', 'int64'],
  ['long', 'int64'],
  ['int32', 'int32'],
  ['int', 'int32'],
  ['int16', 'int16'],
  ['short', 'int16'],
  ['int8', 'int8'],
  ['uint8', 'uint8'],
  ['bool', 'bool'],
]);

export function fromTorchDTypeName(name: string): DType | undefined {
  return DTYPE_OF_TORCH_DTYPE.get(name);
}
