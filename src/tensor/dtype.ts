// Data types, their native codes and matching typed arrays.
import { native } from './native.js';

export type DType =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'bfloat16'
  | 'int64'
  | 'int32'
  | 'int16'
  | 'int8'
  | 'uint8'
  | 'bool';

export const DTYPES: readonly DType[] = [
  'float32',
  'float64',
  'float16',
  'bfloat16',
  'int64',
  'int32',
  'int16',
  'int8',
  'uint8',
  'bool',
];

const codeOf = new Map<DType, number>();
const dtypeOf = new Map<number, DType>();
for (const d of DTYPES) {
  const code = native.dtypeCodes[d];
  if (code === undefined) throw new Error(`goodsrec: native addon lacks dtype ${d}`);
  codeOf.set(d, code);
  dtypeOf.set(code, d);
}

export function dtypeCode(d: DType): number {
  const c = codeOf.get(d);
  if (c === undefined) throw new TypeError(`Expected a dtype (${DTYPES.join(', ')}) but received ${String(d)}`);
  return c;
}

export function dtypeFromCode(code: number): DType {
  const d = dtypeOf.get(code);
  if (d === undefined) throw new Error(`goodsrec: tensor has an unsupported native dtype code ${code}`);
  return d;
}

/** The typed array a dtype reads back as. float16/bfloat16 come back as raw bits (Uint16Array). */
export interface TypedArrayOf {
  float32: Float32Array;
  float64: Float64Array;
  float16: Uint16Array;
  bfloat16: Uint16Array;
  int64: BigInt64Array;
  int32: Int32Array;
  int16: Int16Array;
  int8: Int8Array;
  uint8: Uint8Array;
  bool: Uint8Array;
}
export type AnyTypedArray = TypedArrayOf[DType];

export function bytesPerElement(d: DType): number {
  switch (d) {
    case 'float64':
    case 'int64':
      return 8;
    case 'float32':
    case 'int32':
      return 4;
    case 'float16':
    case 'bfloat16':
    case 'int16':
      return 2;
    default:
      return 1;
  }
}

export function typedArrayFor<D extends DType>(d: D, buffer: ArrayBuffer): TypedArrayOf[D] {
  const views: { [K in DType]: (b: ArrayBuffer) => TypedArrayOf[K] } = {
    float32: (b) => new Float32Array(b),
    float64: (b) => new Float64Array(b),
    float16: (b) => new Uint16Array(b),
    bfloat16: (b) => new Uint16Array(b),
    int64: (b) => new BigInt64Array(b),
    int32: (b) => new Int32Array(b),
    int16: (b) => new Int16Array(b),
    int8: (b) => new Int8Array(b),
    uint8: (b) => new Uint8Array(b),
    bool: (b) => new Uint8Array(b),
  };
  return views[d](buffer);
}

/** The dtype a typed array is read as when no dtype is given. */
export function dtypeOfArray(a: ArrayBufferView): DType {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Float64Array) return 'float64';
  if (a instanceof BigInt64Array) return 'int64';
  if (a instanceof Int32Array) return 'int32';
  if (a instanceof Int16Array) return 'int16';
  if (a instanceof Int8Array) return 'int8';
  if (a instanceof Uint8Array || a instanceof Uint8ClampedArray) return 'uint8';
  throw new TypeError(
    `Expected Float32Array, Float64Array, BigInt64Array, Int32Array, Int16Array, Int8Array or Uint8Array but received ${a.constructor.name}`,
  );
}

export function isFloating(d: DType): boolean {
  return d === 'float32' || d === 'float64' || d === 'float16' || d === 'bfloat16';
}
