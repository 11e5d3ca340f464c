// The Tensor class: a typed handle to one libtorch tensor. Shape logic,
// defaults and argument checks live here; the native side only calls ATen.
import { call, type Handle } from './native.js';
import type { OpArgs, OpsReturning } from './ops.js';
import { type DType, dtypeCode, dtypeFromCode, typedArrayFor, type TypedArrayOf } from './dtype.js';
import { markScoped, track, keep as keepInScope, type ScopedResource } from './scope.js';

import { isDevice, type Device } from './device.js';

export type { Device };
export type MemoryFormat = 'contiguous' | 'channelsLast' | 'preserve';
export type Scalar = number | boolean;

const MEMORY_FORMAT_CODE: Record<MemoryFormat, number> = { contiguous: 0, channelsLast: 1, preserve: 2 };

export function memoryFormatCode(m: MemoryFormat): number {
  const c = MEMORY_FORMAT_CODE[m];
  if (c === undefined)
    throw new TypeError(
      `Expected 'contiguous', 'channelsLast' or 'preserve' for memoryFormat but received ${String(m)}`,
    );
  return c;
}

/** Wraps a native result handle into a Tensor owned by the current scope. */
export function wrap(h: Handle): Tensor {
  return new Tensor(h);
}

function op<K extends OpsReturning<'tensor'>>(name: K, ...args: OpArgs<K>): Tensor {
  return new Tensor(call(name, ...args) as Handle);
}

function opList<K extends OpsReturning<'tensor[]' | 'pair'>>(name: K, ...args: OpArgs<K>): Tensor[] {
  return (call(name, ...args) as Handle[]).map((h) => new Tensor(h));
}

function toDims(dims: number | readonly number[] | undefined): number[] | undefined {
  if (dims === undefined) return undefined;
  return typeof dims === 'number' ? [dims] : [...dims];
}

export function assertShape(shape: readonly number[], what: string): number[] {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new TypeError(`Expected an array of non-negative integers for ${what} but received ${JSON.stringify(shape)}`);
  }
  return [...shape];
}

export interface ValuesIndices {
  values: Tensor;
  indices: Tensor;
}

export class Tensor implements ScopedResource {
  /** @internal */
  readonly handle: Handle;
  private cachedShape: number[] | undefined;
  private disposed = false;

  /** @internal Use the creation functions (tensor, zeros, ...) instead. */
  constructor(handle: Handle) {
    this.handle = handle;
    track(this);
  }

  // --- lifetime ---------------------------------------------------------------------

  /** Frees the native tensor now. Safe to call twice. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    call('dispose', this.handle);
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Exempts this tensor from every tidy() scope: free it with dispose(). */
  keep(): this {
    return keepInScope(this);
  }

  // --- metadata ---------------------------------------------------------------------

  get shape(): readonly number[] {
    this.cachedShape ??= call('shape', this.handle);
    return this.cachedShape;
  }
  get ndim(): number {
    return this.shape.length;
  }
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  get dtype(): DType {
    return dtypeFromCode(call('dtype', this.handle));
  }
  get device(): string {
    return call('device', this.handle);
  }
  get strides(): readonly number[] {
    return call('strides', this.handle);
  }
  get requiresGrad(): boolean {
    return call('requiresGrad', this.handle);
  }
  get isLeaf(): boolean {
    return call('isLeaf', this.handle);
  }
  size(dim: number): number {
    const n = this.ndim;
    const d = dim < 0 ? dim + n : dim;
    if (d < 0 || d >= n) throw new RangeError(`Error in size: dim ${dim} out of range for a ${n}-d tensor`);
    return this.shape[d]!;
  }
  isContiguous(memoryFormat: MemoryFormat = 'contiguous'): boolean {
    return call('isContiguous', this.handle, memoryFormatCode(memoryFormat));
  }
  toString(): string {
    return this.disposed
      ? 'Tensor(disposed)'
      : `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, device=${this.device})`;
  }

  // --- reading values -------------------------------------------------------------------

  /** Copies the values out (row-major). float16/bfloat16 come back as raw 16-bit patterns. */
  data<D extends DType = DType>(): TypedArrayOf[D] {
    return typedArrayFor(this.dtype, call('toBuffer', this.handle)) as TypedArrayOf[D];
  }
  /** Values as plain numbers (row-major); float16/bfloat16 are converted through float32. */
  toArray(): number[] {
    const d = this.dtype;
    if (d === 'float16' || d === 'bfloat16') {
      const f = this.to({ dtype: 'float32' });
      try {
        return Array.from(f.data<'float32'>());
      } finally {
        f.dispose();
      }
    }
    const v = this.data();
    return v instanceof BigInt64Array ? Array.from(v, (x) => Number(x)) : Array.from(v as ArrayLike<number>);
  }
  /** The value of a one-element tensor. */
  item(): number {
    const v = call('item', this.handle);
    return typeof v === 'boolean' ? Number(v) : (v as number);
  }

  // --- conversion -------------------------------------------------------------------------

  /**
   * A copy on another device or in another dtype (the tensor itself when nothing changes, unless copy).
   * nonBlocking: from pinned host memory to a GPU, the copy is queued on the current stream and the call
   * returns at once, so the host prepares the next batch while it runs (as PyTorch's non_blocking=True).
   */
  to(target: Device | DType | { dtype?: DType; device?: Device; copy?: boolean; nonBlocking?: boolean }): Tensor {
    const spec = typeof target === 'string' ? (isDevice(target) ? { device: target } : { dtype: target }) : target;
    return op(
      'to',
      this.handle,
      spec.dtype === undefined ? null : dtypeCode(spec.dtype),
      spec.device ?? null,
      spec.copy ?? false,
      spec.nonBlocking ?? false,
    );
  }
  /** A copy in page-locked host memory, which a GPU copies from asynchronously (needs a visible GPU). */
  pinMemory(): Tensor {
    return op('pinMemory', this.handle);
  }
  isPinned(): boolean {
    return call('isPinned', this.handle);
  }
  cpu(): Tensor {
    return this.to({ device: 'cpu' });
  }
  float(): Tensor {
    return this.to({ dtype: 'float32' });
  }
  long(): Tensor {
    return this.to({ dtype: 'int64' });
  }
  clone(memoryFormat: MemoryFormat = 'preserve'): Tensor {
    return op('clone', this.handle, memoryFormatCode(memoryFormat));
  }
  contiguous(memoryFormat: MemoryFormat = 'contiguous'): Tensor {
    return op('contiguous', this.handle, memoryFormatCode(memoryFormat));
  }
  detach(): Tensor {
    return op('detach', this.handle);
  }

  // --- autograd ---------------------------------------------------------------------------

  setRequiresGrad(flag = true): this {
    call('setRequiresGrad', this.handle, flag);
    return this;
  }
  /** The accumulated gradient, as a new handle the caller owns (undefined when none). */
  get grad(): Tensor | undefined {
    const h = call('grad', this.handle);
    return h === undefined ? undefined : new Tensor(h as Handle);
  }
  set grad(g: Tensor | undefined) {
    call('setGrad', this.handle, g?.handle ?? null);
  }
  /** Drops the gradient (PyTorch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    call('setGrad', this.handle, null);
  }
  retainGrad(): this {
    call('retainGrad', this.handle);
    return this;
  }
  backward(gradient?: Tensor, options: { retainGraph?: boolean } = {}): void {
    call('backward', this.handle, gradient?.handle ?? null, options.retainGraph ?? false);
  }

  // --- arithmetic (broadcasting) -------------------------------------------------------------

  add(other: Tensor | Scalar, alpha: number = 1): Tensor {
    return typeof other === 'object'
      ? op('add', this.handle, other.handle, alpha)
      : op('addScalar', this.handle, other, alpha);
  }
  sub(other: Tensor | Scalar, alpha: number = 1): Tensor {
    return typeof other === 'object'
      ? op('sub', this.handle, other.handle, alpha)
      : op('subScalar', this.handle, other, alpha);
  }
  /** other - this */
  rsub(other: Scalar, alpha: number = 1): Tensor {
    return op('rsubScalar', this.handle, other, alpha);
  }
  mul(other: Tensor | Scalar): Tensor {
    return typeof other === 'object' ? op('mul', this.handle, other.handle) : op('mulScalar', this.handle, other);
  }
  div(other: Tensor | Scalar): Tensor {
    return typeof other === 'object' ? op('div', this.handle, other.handle) : op('divScalar', this.handle, other);
  }
  floorDivide(other: Tensor): Tensor {
    return op('floorDivide', this.handle, other.handle);
  }
  remainder(other: Tensor): Tensor {
    return op('remainder', this.handle, other.handle);
  }
  pow(exponent: Tensor | Scalar): Tensor {
    return typeof exponent === 'object'
      ? op('pow', this.handle, exponent.handle)
      : op('powScalar', this.handle, exponent);
  }
  maximum(other: Tensor): Tensor {
    return op('maximum', this.handle, other.handle);
  }
  minimum(other: Tensor): Tensor {
    return op('minimum', this.handle, other.handle);
  }
  neg(): Tensor {
    return op('neg', this.handle);
  }
  abs(): Tensor {
    return op('abs', this.handle);
  }
  sign(): Tensor {
    return op('sign', this.handle);
  }
  exp(): Tensor {
    return op('exp', this.handle);
  }
  expm1(): Tensor {
    return op('expm1', this.handle);
  }
  log(): Tensor {
    return op('log', this.handle);
  }
  log1p(): Tensor {
    return op('log1p', this.handle);
  }
  log2(): Tensor {
    return op('log2', this.handle);
  }
  sqrt(): Tensor {
    return op('sqrt', this.handle);
  }
  rsqrt(): Tensor {
    return op('rsqrt', this.handle);
  }
  square(): Tensor {
    return op('square', this.handle);
  }
  reciprocal(): Tensor {
    return op('reciprocal', this.handle);
  }
  sin(): Tensor {
    return op('sin', this.handle);
  }
  cos(): Tensor {
    return op('cos', this.handle);
  }
  erf(): Tensor {
    return op('erf', this.handle);
  }
  floor(): Tensor {
    return op('floor', this.handle);
  }
  ceil(): Tensor {
    return op('ceil', this.handle);
  }
  round(): Tensor {
    return op('round', this.handle);
  }
  trunc(): Tensor {
    return op('trunc', this.handle);
  }
  clamp(min?: number | null, max?: number | null): Tensor {
    if ((min === undefined || min === null) && (max === undefined || max === null)) {
      throw new TypeError('Error in clamp: at least one of min or max must be given');
    }
    return op('clamp', this.handle, min ?? null, max ?? null);
  }
  clampMin(min: number): Tensor {
    return this.clamp(min, null);
  }
  clampMax(max: number): Tensor {
    return this.clamp(null, max);
  }
  lerp(end: Tensor, weight: number): Tensor {
    return op('lerp', this.handle, end.handle, weight);
  }
  maskedFill(mask: Tensor, value: Scalar): Tensor {
    return op('maskedFill', this.handle, mask.handle, value);
  }

  // --- comparisons and logic ------------------------------------------------------------------

  private cmp(name: 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge', other: Tensor | Scalar): Tensor {
    return typeof other === 'object' ? op(name, this.handle, other.handle) : op(`${name}Scalar`, this.handle, other);
  }
  eq(other: Tensor | Scalar): Tensor {
    return this.cmp('eq', other);
  }
  ne(other: Tensor | Scalar): Tensor {
    return this.cmp('ne', other);
  }
  lt(other: Tensor | Scalar): Tensor {
    return this.cmp('lt', other);
  }
  le(other: Tensor | Scalar): Tensor {
    return this.cmp('le', other);
  }
  gt(other: Tensor | Scalar): Tensor {
    return this.cmp('gt', other);
  }
  ge(other: Tensor | Scalar): Tensor {
    return this.cmp('ge', other);
  }
  logicalAnd(other: Tensor): Tensor {
    return op('logicalAnd', this.handle, other.handle);
  }
  logicalOr(other: Tensor): Tensor {
    return op('logicalOr', this.handle, other.handle);
  }
  logicalXor(other: Tensor): Tensor {
    return op('logicalXor', this.handle, other.handle);
  }
  logicalNot(): Tensor {
    return op('logicalNot', this.handle);
  }
  isnan(): Tensor {
    return op('isnan', this.handle);
  }
  isinf(): Tensor {
    return op('isinf', this.handle);
  }
  isfinite(): Tensor {
    return op('isfinite', this.handle);
  }
  /** True when shapes and values are identical. */
  equal(other: Tensor): boolean {
    return call('equal', this.handle, other.handle);
  }
  allclose(other: Tensor, rtol = 1e-5, atol = 1e-8): boolean {
    return call('allclose', this.handle, other.handle, rtol, atol);
  }

  // --- activations (also in F) -------------------------------------------------------------------

  relu(): Tensor {
    return op('relu', this.handle);
  }
  sigmoid(): Tensor {
    return op('sigmoid', this.handle);
  }
  tanh(): Tensor {
    return op('tanh', this.handle);
  }
  softmax(dim: number, dtype?: DType): Tensor {
    return op('softmax', this.handle, dim, dtype ? dtypeCode(dtype) : null);
  }
  logSoftmax(dim: number, dtype?: DType): Tensor {
    return op('logSoftmax', this.handle, dim, dtype ? dtypeCode(dtype) : null);
  }

  // --- matrix products --------------------------------------------------------------------------

  matmul(other: Tensor): Tensor {
    return op('matmul', this.handle, other.handle);
  }
  mm(other: Tensor): Tensor {
    return op('mm', this.handle, other.handle);
  }
  bmm(other: Tensor): Tensor {
    return op('bmm', this.handle, other.handle);
  }
  outer(other: Tensor): Tensor {
    return op('outer', this.handle, other.handle);
  }

  // --- shape -----------------------------------------------------------------------------------

  reshape(shape: readonly number[]): Tensor {
    return op('reshape', this.handle, [...shape]);
  }
  view(shape: readonly number[]): Tensor {
    return op('view', this.handle, [...shape]);
  }
  permute(dims: readonly number[]): Tensor {
    return op('permute', this.handle, [...dims]);
  }
  transpose(dim0: number, dim1: number): Tensor {
    return op('transpose', this.handle, dim0, dim1);
  }
  /** Transpose of a 2-d tensor. */
  t(): Tensor {
    if (this.ndim !== 2) throw new RangeError(`Error in t: expected a 2-d tensor but received ${this.ndim}-d`);
    return this.transpose(0, 1);
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return op('flatten', this.handle, startDim, endDim);
  }
  squeeze(dim?: number): Tensor {
    return dim === undefined ? op('squeezeAll', this.handle) : op('squeeze', this.handle, dim);
  }
  unsqueeze(dim: number): Tensor {
    return op('unsqueeze', this.handle, dim);
  }
  expand(shape: readonly number[]): Tensor {
    return op('expand', this.handle, [...shape]);
  }
  expandAs(other: Tensor): Tensor {
    return this.expand(other.shape);
  }
  repeat(repeats: readonly number[]): Tensor {
    return op('repeat', this.handle, [...repeats]);
  }
  /** Splits into pieces of `size` (number) or of the given sizes (array) along dim. */
  split(sizeOrSizes: number | readonly number[], dim = 0): Tensor[] {
    return typeof sizeOrSizes === 'number'
      ? opList('split', this.handle, sizeOrSizes, dim)
      : opList('splitWithSizes', this.handle, [...sizeOrSizes], dim);
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return opList('chunk', this.handle, chunks, dim);
  }
  unbind(dim = 0): Tensor[] {
    return opList('unbind', this.handle, dim);
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return op('narrow', this.handle, dim, start, length);
  }
  select(dim: number, index: number): Tensor {
    return op('select', this.handle, dim, index);
  }
  slice(dim: number, start?: number, end?: number, step = 1): Tensor {
    return op('slice', this.handle, dim, start ?? null, end ?? null, step);
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return op('indexSelect', this.handle, dim, index.handle);
  }
  /** Advanced indexing on the first dimension: this[index] (long or bool index). */
  index(index: Tensor): Tensor {
    return op('index', this.handle, index.handle);
  }
  gather(dim: number, index: Tensor): Tensor {
    return op('gather', this.handle, dim, index.handle);
  }
  scatter(dim: number, index: Tensor, src: Tensor | Scalar): Tensor {
    return typeof src === 'object'
      ? op('scatter', this.handle, dim, index.handle, src.handle)
      : op('scatterScalar', this.handle, dim, index.handle, src);
  }
  scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor {
    return op('scatterAdd', this.handle, dim, index.handle, src.handle);
  }
  maskedSelect(mask: Tensor): Tensor {
    return op('maskedSelect', this.handle, mask.handle);
  }
  nonzero(): Tensor {
    return op('nonzero', this.handle);
  }
  flip(dims: number | readonly number[]): Tensor {
    return op('flip', this.handle, toDims(dims)!);
  }
  roll(shifts: number | readonly number[], dims: number | readonly number[]): Tensor {
    return op('roll', this.handle, toDims(shifts)!, toDims(dims)!);
  }
  tril(diagonal = 0): Tensor {
    return op('tril', this.handle, diagonal);
  }
  triu(diagonal = 0): Tensor {
    return op('triu', this.handle, diagonal);
  }

  // --- reductions --------------------------------------------------------------------------------

  sum(dims?: number | readonly number[], keepdim = false, dtype?: DType): Tensor {
    const dt = dtype ? dtypeCode(dtype) : null;
    return dims === undefined ? op('sumAll', this.handle, dt) : op('sum', this.handle, toDims(dims)!, keepdim, dt);
  }
  mean(dims?: number | readonly number[], keepdim = false): Tensor {
    return dims === undefined ? op('meanAll', this.handle) : op('mean', this.handle, toDims(dims)!, keepdim);
  }
  prod(): Tensor {
    return op('prodAll', this.handle);
  }
  /** Variance (unbiased by default, like PyTorch). */
  var(dims?: number | readonly number[], options: { unbiased?: boolean; keepdim?: boolean } = {}): Tensor {
    const unbiased = options.unbiased ?? true;
    return dims === undefined
      ? op('varAll', this.handle, unbiased)
      : op('var', this.handle, toDims(dims)!, unbiased, options.keepdim ?? false);
  }
  std(dims?: number | readonly number[], options: { unbiased?: boolean; keepdim?: boolean } = {}): Tensor {
    const unbiased = options.unbiased ?? true;
    return dims === undefined
      ? op('stdAll', this.handle, unbiased)
      : op('std', this.handle, toDims(dims)!, unbiased, options.keepdim ?? false);
  }
  /** Largest value of the whole tensor. */
  max(): Tensor {
    return op('maxAll', this.handle);
  }
  min(): Tensor {
    return op('minAll', this.handle);
  }
  /** Largest values along dim, with their indices. */
  maxDim(dim: number, keepdim = false): ValuesIndices {
    const [values, indices] = opList('maxDim', this.handle, dim, keepdim) as [Tensor, Tensor];
    return { values, indices };
  }
  minDim(dim: number, keepdim = false): ValuesIndices {
    const [values, indices] = opList('minDim', this.handle, dim, keepdim) as [Tensor, Tensor];
    return { values, indices };
  }
  amax(dims: number | readonly number[], keepdim = false): Tensor {
    return op('amax', this.handle, toDims(dims)!, keepdim);
  }
  amin(dims: number | readonly number[], keepdim = false): Tensor {
    return op('amin', this.handle, toDims(dims)!, keepdim);
  }
  argmax(dim?: number, keepdim = false): Tensor {
    return op('argmax', this.handle, dim ?? null, keepdim);
  }
  argmin(dim?: number, keepdim = false): Tensor {
    return op('argmin', this.handle, dim ?? null, keepdim);
  }
  topk(k: number, dim = -1, largest = true, sorted = true): ValuesIndices {
    const [values, indices] = opList('topk', this.handle, k, dim, largest, sorted) as [Tensor, Tensor];
    return { values, indices };
  }
  sort(dim = -1, descending = false): ValuesIndices {
    const [values, indices] = opList('sort', this.handle, dim, descending) as [Tensor, Tensor];
    return { values, indices };
  }
  argsort(dim = -1, descending = false): Tensor {
    return op('argsort', this.handle, dim, descending);
  }
  cumsum(dim: number): Tensor {
    return op('cumsum', this.handle, dim);
  }
  logsumexp(dims: number | readonly number[], keepdim = false): Tensor {
    return op('logsumexp', this.handle, toDims(dims)!, keepdim);
  }
  norm(p = 2, dims?: number | readonly number[], keepdim = false): Tensor {
    return op('norm', this.handle, p, toDims(dims) ?? [], keepdim);
  }
  all(): Tensor {
    return op('allAll', this.handle);
  }
  any(): Tensor {
    return op('anyAll', this.handle);
  }

  // --- in place (optimizers, weight loading; use under noGrad) -------------------------------------

  add_(other: Tensor | Scalar, alpha: number = 1): this {
    if (typeof other === 'object') call('add_', this.handle, other.handle, alpha);
    else call('addScalar_', this.handle, typeof other === 'number' ? other * alpha : other);
    return this;
  }
  mul_(other: Tensor | Scalar): this {
    if (typeof other === 'object') call('mul_', this.handle, other.handle);
    else call('mulScalar_', this.handle, other);
    return this;
  }
  div_(other: Tensor | Scalar): this {
    if (typeof other === 'object') call('div_', this.handle, other.handle);
    else call('divScalar_', this.handle, other);
    return this;
  }
  addcmul_(a: Tensor, b: Tensor, value = 1): this {
    call('addcmul_', this.handle, a.handle, b.handle, value);
    return this;
  }
  addcdiv_(a: Tensor, b: Tensor, value = 1): this {
    call('addcdiv_', this.handle, a.handle, b.handle, value);
    return this;
  }
  lerp_(end: Tensor, weight: number): this {
    call('lerp_', this.handle, end.handle, weight);
    return this;
  }
  copy_(src: Tensor): this {
    call('copy_', this.handle, src.handle);
    return this;
  }
  zero_(): this {
    call('zero_', this.handle);
    return this;
  }
  fill_(value: Scalar): this {
    call('fill_', this.handle, value);
    return this;
  }
  sqrt_(): this {
    call('sqrt_', this.handle);
    return this;
  }
  clampMin_(min: number): this {
    call('clampMin_', this.handle, min);
    return this;
  }
  relu_(): this {
    call('relu_', this.handle);
    return this;
  }
  normal_(mean = 0, std = 1): this {
    call('normal_', this.handle, mean, std);
    return this;
  }
  uniform_(from = 0, to = 1): this {
    call('uniform_', this.handle, from, to);
    return this;
  }
}
markScoped(Tensor);
