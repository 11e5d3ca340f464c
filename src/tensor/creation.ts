// Creating tensors: from typed arrays or nested arrays, and the factories.
import { call } from './native.js';
import { type DType, dtypeCode, dtypeOfArray, bytesPerElement } from './dtype.js';
import { type Tensor, wrap, assertShape, type Device, type Scalar } from './tensor.js';

export interface CreateOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

function finish(t: Tensor, o: CreateOptions): Tensor {
  if (o.requiresGrad) t.setRequiresGrad(true);
  return t;
}

function opts(o: CreateOptions, fallback: DType = 'float32'): [number, string | null] {
  return [dtypeCode(o.dtype ?? fallback), o.device ?? null];
}

function inferShape(data: unknown): number[] {
  const shape: number[] = [];
  let cur: unknown = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    cur = cur[0];
  }
  return shape;
}

function convertArray(flat: number[], dtype: DType): ArrayBufferView {
  switch (dtype) {
    case 'float32':
      return Float32Array.from(flat);
    case 'float64':
      return Float64Array.from(flat);
    case 'int64':
      return BigInt64Array.from(flat, (v) => BigInt(Math.trunc(v)));
    case 'int32':
      return Int32Array.from(flat);
    case 'int16':
      return Int16Array.from(flat);
    case 'int8':
      return Int8Array.from(flat);
    case 'uint8':
      return Uint8Array.from(flat);
    case 'bool':
      return Uint8Array.from(flat, (v) => (v ? 1 : 0));
    default:
      return Float32Array.from(flat); // float16/bfloat16: created as float32 then cast
  }
}

/**
 * Creates a tensor (copying the data). `data` is a typed array with `shape`,
 * a nested number array, or a single number.
 */
export function tensor(
  data: ArrayBufferView | number | boolean | readonly unknown[],
  shape?: readonly number[],
  options: CreateOptions = {},
): Tensor {
  if (ArrayBuffer.isView(data)) {
    // Raw bits: Uint8Array as bool, Uint16Array as float16/bfloat16.
    const raw =
      (options.dtype === 'bool' && data instanceof Uint8Array) ||
      ((options.dtype === 'float16' || options.dtype === 'bfloat16') && data instanceof Uint16Array);
    const srcDtype = raw ? options.dtype! : dtypeOfArray(data);
    const n = data.byteLength / bytesPerElement(srcDtype);
    const s = shape ? assertShape(shape, 'shape') : [n];
    const expected = s.reduce((a, b) => a * b, 1);
    if (expected !== n)
      throw new RangeError(`Error in tensor: shape [${s.join(', ')}] needs ${expected} values but the array has ${n}`);
    const t = wrap(call('fromBuffer', data, s, dtypeCode(srcDtype), options.device ?? null));
    if (options.dtype && options.dtype !== srcDtype) {
      const c = t.to({ dtype: options.dtype });
      t.dispose();
      return finish(c, options);
    }
    return finish(t, options);
  }
  const nested = typeof data === 'number' || typeof data === 'boolean' ? [] : inferShape(data);
  const flat =
    typeof data === 'number' || typeof data === 'boolean'
      ? [Number(data)]
      : ((data as unknown[]).flat(Infinity) as number[]);
  if (flat.some((v) => typeof v !== 'number' && typeof v !== 'boolean'))
    throw new TypeError('Error in tensor: nested arrays must hold numbers or booleans');
  const dtype = options.dtype ?? (typeof data === 'boolean' ? 'bool' : 'float32');
  const s = shape ? assertShape(shape, 'shape') : nested;
  return tensor(convertArray(flat.map(Number), dtype), s, { ...options, dtype });
}

export function scalar(value: number, options: CreateOptions = {}): Tensor {
  return tensor(value, [], options);
}

function factory(
  name: 'empty' | 'zeros' | 'ones' | 'rand' | 'randn',
  shape: readonly number[],
  o: CreateOptions,
): Tensor {
  const [d, dev] = opts(o);
  return finish(wrap(call(name, assertShape(shape, 'shape'), d, dev)), o);
}

export function empty(shape: readonly number[], o: CreateOptions = {}): Tensor {
  return factory('empty', shape, o);
}
export function zeros(shape: readonly number[], o: CreateOptions = {}): Tensor {
  return factory('zeros', shape, o);
}
export function ones(shape: readonly number[], o: CreateOptions = {}): Tensor {
  return factory('ones', shape, o);
}
export function full(shape: readonly number[], value: Scalar, o: CreateOptions = {}): Tensor {
  const withDtype: CreateOptions = { dtype: o.dtype ?? (typeof value === 'boolean' ? 'bool' : 'float32'), ...o };
  const [d, dev] = opts(withDtype);
  return finish(wrap(call('full', assertShape(shape, 'shape'), value, d, dev)), withDtype);
}
/** Uniform [0, 1). */
export function rand(shape: readonly number[], o: CreateOptions = {}): Tensor {
  return factory('rand', shape, o);
}
/** Standard normal. */
export function randn(shape: readonly number[], o: CreateOptions = {}): Tensor {
  return factory('randn', shape, o);
}

/** Integers uniform in [low, high). */
export function randint(low: number, high: number, shape: readonly number[], o: CreateOptions = {}): Tensor {
  const [d, dev] = opts(o, 'int64');
  return finish(wrap(call('randint', low, high, assertShape(shape, 'shape'), d, dev)), o);
}
export function randperm(n: number, o: CreateOptions = {}): Tensor {
  const [d, dev] = opts(o, 'int64');
  return wrap(call('randperm', n, d, dev));
}
/** Values from start to end (exclusive) by step; integer dtype when all three are integers, like PyTorch. */
export function arange(start: number, end?: number, step = 1, o: CreateOptions = {}): Tensor {
  const [s, e] = end === undefined ? [0, start] : [start, end];
  if (step === 0) throw new RangeError('Error in arange: step must be non-zero');
  const intLike = Number.isInteger(s) && Number.isInteger(e) && Number.isInteger(step);
  const [d, dev] = opts(o, intLike ? 'int64' : 'float32');
  return finish(wrap(call('arange', s, e, step, d, dev)), o);
}
export function linspace(start: number, end: number, steps: number, o: CreateOptions = {}): Tensor {
  const [d, dev] = opts(o);
  return finish(wrap(call('linspace', start, end, steps, d, dev)), o);
}
export function eye(n: number, o: CreateOptions = {}): Tensor {
  const [d, dev] = opts(o);
  return finish(wrap(call('eye', n, d, dev)), o);
}

function likeOptions(t: Tensor, o: CreateOptions): CreateOptions {
  return {
    dtype: o.dtype ?? t.dtype,
    device: o.device ?? (t.device as Device),
    ...(o.requiresGrad ? { requiresGrad: true } : {}),
  };
}
export function zerosLike(t: Tensor, o: CreateOptions = {}): Tensor {
  return zeros(t.shape, likeOptions(t, o));
}
export function onesLike(t: Tensor, o: CreateOptions = {}): Tensor {
  return ones(t.shape, likeOptions(t, o));
}
export function fullLike(t: Tensor, value: Scalar, o: CreateOptions = {}): Tensor {
  return full(t.shape, value, likeOptions(t, o));
}
export function emptyLike(t: Tensor, o: CreateOptions = {}): Tensor {
  return empty(t.shape, likeOptions(t, o));
}
export function randLike(t: Tensor, o: CreateOptions = {}): Tensor {
  return rand(t.shape, likeOptions(t, o));
}
export function randnLike(t: Tensor, o: CreateOptions = {}): Tensor {
  return randn(t.shape, likeOptions(t, o));
}
