// Bridges between engine tensors and the raw byte tensors of weight files (src/io).
import type { RawTensor } from '../io/dtype.js';
import { call } from './native.js';
import { dtypeCode } from './dtype.js';
import { type Tensor, wrap, type Device } from './tensor.js';

/** A tensor with the raw tensor's values (one copy into libtorch). */
export function fromRaw(raw: RawTensor, device?: Device): Tensor {
  return wrap(call('fromBuffer', raw.data, [...raw.shape], dtypeCode(raw.dtype), device ?? null));
}

/** The tensor's values as raw little-endian bytes, row-major, on the CPU. */
export function toRaw(t: Tensor): RawTensor {
  const buf = call('toBuffer', t.handle);
  return { dtype: t.dtype, shape: [...t.shape], data: new Uint8Array(buf) };
}
