// Neural-network functionals (torch.nn.functional): the ops the model zoo and
// the recipe need. Argument checks and PyTorch's defaults live here.
import { call } from './native.js';
import type { OpArgs, OpsReturning } from './ops.js';
import { dtypeCode, type DType } from './dtype.js';
import { type Tensor, wrap, type Scalar } from './tensor.js';
import type { Handle } from './native.js';

function op<K extends OpsReturning<'tensor'>>(name: K, ...args: OpArgs<K>): Tensor {
  return wrap(call(name, ...args) as Handle);
}
function pair(v: number | readonly [number, number], what: string): number[] {
  const p = typeof v === 'number' ? [v, v] : [...v];
  if (p.length !== 2 || p.some((x) => !Number.isInteger(x)))
    throw new TypeError(`Expected an integer or a pair of integers for ${what} but received ${JSON.stringify(v)}`);
  return p;
}
function requireRank(x: Tensor, rank: number, fn: string): void {
  if (x.ndim !== rank)
    throw new RangeError(`Error in ${fn}: expected a ${rank}-d input but received shape [${x.shape.join(', ')}]`);
}

export type Reduction = 'none' | 'mean' | 'sum';
const REDUCTION: Record<Reduction, number> = { none: 0, mean: 1, sum: 2 };
function reductionCode(r: Reduction): number {
  const c = REDUCTION[r];
  if (c === undefined) throw new TypeError(`Expected 'none', 'mean' or 'sum' for reduction but received ${String(r)}`);
  return c;
}

export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
  groups?: number;
}
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, o: Conv2dOptions = {}): Tensor {
  return op(
    'conv2d',
    x.handle,
    weight.handle,
    bias?.handle ?? null,
    pair(o.stride ?? 1, 'stride'),
    pair(o.padding ?? 0, 'padding'),
    pair(o.dilation ?? 1, 'dilation'),
    o.groups ?? 1,
  );
}
export interface ConvTranspose2dOptions extends Conv2dOptions {
  outputPadding?: number | [number, number];
}
export function convTranspose2d(
  x: Tensor,
  weight: Tensor,
  bias?: Tensor | null,
  o: ConvTranspose2dOptions = {},
): Tensor {
  return op(
    'convTranspose2d',
    x.handle,
    weight.handle,
    bias?.handle ?? null,
    pair(o.stride ?? 1, 'stride'),
    pair(o.padding ?? 0, 'padding'),
    pair(o.outputPadding ?? 0, 'outputPadding'),
    o.groups ?? 1,
    pair(o.dilation ?? 1, 'dilation'),
  );
}
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  return op('linear', x.handle, weight.handle, bias?.handle ?? null);
}

export interface BatchNormOptions {
  weight?: Tensor | null;
  bias?: Tensor | null;
  training?: boolean;
  momentum?: number;
  eps?: number;
}
/** Batch norm; in training mode running stats (when given) are updated in place, like PyTorch. */
export function batchNorm(
  x: Tensor,
  runningMean: Tensor | null,
  runningVar: Tensor | null,
  o: BatchNormOptions = {},
): Tensor {
  return op(
    'batchNorm',
    x.handle,
    o.weight?.handle ?? null,
    o.bias?.handle ?? null,
    runningMean?.handle ?? null,
    runningVar?.handle ?? null,
    o.training ?? false,
    o.momentum ?? 0.1,
    o.eps ?? 1e-5,
  );
}
export function layerNorm(
  x: Tensor,
  normalizedShape: readonly number[],
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-5,
): Tensor {
  return op('layerNorm', x.handle, [...normalizedShape], weight?.handle ?? null, bias?.handle ?? null, eps);
}
export function groupNorm(
  x: Tensor,
  numGroups: number,
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-5,
): Tensor {
  return op('groupNorm', x.handle, numGroups, weight?.handle ?? null, bias?.handle ?? null, eps);
}

export function relu(x: Tensor): Tensor {
  return op('relu', x.handle);
}
export function relu6(x: Tensor): Tensor {
  return op('hardtanh', x.handle, 0, 6);
}
export function leakyRelu(x: Tensor, negativeSlope = 0.01): Tensor {
  return op('leakyRelu', x.handle, negativeSlope);
}
export function elu(x: Tensor, alpha = 1): Tensor {
  return op('elu', x.handle, alpha);
}
export function silu(x: Tensor): Tensor {
  return op('silu', x.handle);
}
export function mish(x: Tensor): Tensor {
  return op('mish', x.handle);
}
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  return op('gelu', x.handle, approximate);
}
export function sigmoid(x: Tensor): Tensor {
  return op('sigmoid', x.handle);
}
export function hardsigmoid(x: Tensor): Tensor {
  return op('hardsigmoid', x.handle);
}
export function hardswish(x: Tensor): Tensor {
  return op('hardswish', x.handle);
}
export function tanh(x: Tensor): Tensor {
  return op('tanh', x.handle);
}
export function softplus(x: Tensor, beta = 1, threshold = 20): Tensor {
  return op('softplus', x.handle, beta, threshold);
}
export function softmax(x: Tensor, dim: number, dtype?: DType): Tensor {
  return op('softmax', x.handle, dim, dtype ? dtypeCode(dtype) : null);
}
export function logSoftmax(x: Tensor, dim: number, dtype?: DType): Tensor {
  return op('logSoftmax', x.handle, dim, dtype ? dtypeCode(dtype) : null);
}

export interface PoolOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  ceilMode?: boolean;
}
export function maxPool2d(
  x: Tensor,
  kernelSize: number | [number, number],
  o: PoolOptions & { dilation?: number | [number, number] } = {},
): Tensor {
  return op(
    'maxPool2d',
    x.handle,
    pair(kernelSize, 'kernelSize'),
    pair(o.stride ?? kernelSize, 'stride'),
    pair(o.padding ?? 0, 'padding'),
    pair(o.dilation ?? 1, 'dilation'),
    o.ceilMode ?? false,
  );
}
export function avgPool2d(
  x: Tensor,
  kernelSize: number | [number, number],
  o: PoolOptions & { countIncludePad?: boolean; divisorOverride?: number } = {},
): Tensor {
  return op(
    'avgPool2d',
    x.handle,
    pair(kernelSize, 'kernelSize'),
    pair(o.stride ?? kernelSize, 'stride'),
    pair(o.padding ?? 0, 'padding'),
    o.ceilMode ?? false,
    o.countIncludePad ?? true,
    o.divisorOverride ?? null,
  );
}
export function adaptiveAvgPool2d(x: Tensor, outputSize: number | [number, number]): Tensor {
  return op('adaptiveAvgPool2d', x.handle, pair(outputSize, 'outputSize'));
}
export function adaptiveMaxPool2d(x: Tensor, outputSize: number | [number, number]): Tensor {
  return op('adaptiveMaxPool2d', x.handle, pair(outputSize, 'outputSize'));
}

export function dropout(x: Tensor, p = 0.5, training = true): Tensor {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`Error in dropout: p must be in [0, 1] but received ${p}`);
  return op('dropout', x.handle, p, training);
}
/** Stochastic depth (timm's drop_path): drops whole samples of a residual branch, rescales the rest. */
export function dropPath(x: Tensor, p = 0, training = true): Tensor {
  if (p === 0 || !training) return x;
  if (!(p > 0 && p < 1)) throw new RangeError(`Error in dropPath: p must be in [0, 1) but received ${p}`);
  const keep = 1 - p;
  const shape = [x.shape[0]!, ...x.shape.slice(1).map(() => 1)];
  const mask = wrap(call('empty', shape, dtypeCode(x.dtype), x.device));
  call('bernoulli_', mask.handle, keep);
  mask.div_(keep);
  const out = x.mul(mask);
  mask.dispose();
  return out;
}

export interface CrossEntropyOptions {
  weight?: Tensor | null;
  reduction?: Reduction;
  ignoreIndex?: number;
  labelSmoothing?: number;
}
/** Cross entropy on logits [N, C] (or [N, C, ...]) with class-index targets, PyTorch semantics. */
export function crossEntropy(logits: Tensor, target: Tensor, o: CrossEntropyOptions = {}): Tensor {
  const ls = o.labelSmoothing ?? 0;
  if (!(ls >= 0 && ls <= 1))
    throw new RangeError(`Error in crossEntropy: labelSmoothing must be in [0, 1] but received ${ls}`);
  return op(
    'crossEntropy',
    logits.handle,
    target.handle,
    o.weight?.handle ?? null,
    reductionCode(o.reduction ?? 'mean'),
    o.ignoreIndex ?? -100,
    ls,
  );
}
/** Cross entropy against soft targets (probabilities), as after mixup: mean over the batch of -sum(t * log_softmax(x)). */
export function softTargetCrossEntropy(logits: Tensor, target: Tensor): Tensor {
  const logp = logSoftmax(logits, -1);
  const prod = target.mul(logp);
  const perSample = prod.sum(-1);
  const loss = perSample.mean().neg();
  logp.dispose();
  prod.dispose();
  perSample.dispose();
  return loss;
}
export function nllLoss(logProbs: Tensor, target: Tensor, o: Omit<CrossEntropyOptions, 'labelSmoothing'> = {}): Tensor {
  return op(
    'nllLoss',
    logProbs.handle,
    target.handle,
    o.weight?.handle ?? null,
    reductionCode(o.reduction ?? 'mean'),
    o.ignoreIndex ?? -100,
  );
}
export function klDiv(
  input: Tensor,
  target: Tensor,
  reduction: Reduction | 'batchmean' = 'mean',
  logTarget = false,
): Tensor {
  if (reduction === 'batchmean') {
    const s = op('klDiv', input.handle, target.handle, REDUCTION.sum, logTarget);
    const r = s.div(input.shape[0] ?? 1);
    s.dispose();
    return r;
  }
  return op('klDiv', input.handle, target.handle, reductionCode(reduction), logTarget);
}
export function mseLoss(input: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  return op('mseLoss', input.handle, target.handle, reductionCode(reduction));
}
export function binaryCrossEntropyWithLogits(
  input: Tensor,
  target: Tensor,
  o: { weight?: Tensor; posWeight?: Tensor; reduction?: Reduction } = {},
): Tensor {
  return op(
    'bceWithLogits',
    input.handle,
    target.handle,
    o.weight?.handle ?? null,
    o.posWeight?.handle ?? null,
    reductionCode(o.reduction ?? 'mean'),
  );
}
export function oneHot(indices: Tensor, numClasses = -1): Tensor {
  return op('oneHot', indices.handle, numClasses);
}
export function embedding(indices: Tensor, weight: Tensor): Tensor {
  return op('embedding', weight.handle, indices.handle);
}

export interface InterpolateOptions {
  /** Output size (H, W); give either size or scaleFactor. */
  size?: number | [number, number];
  /** Output = floor(input * scaleFactor); coordinates map with 1/scaleFactor, like PyTorch. */
  scaleFactor?: number | [number, number];
  mode?: 'nearest' | 'bilinear' | 'bicubic';
  alignCorners?: boolean;
}
export function interpolate(x: Tensor, o: InterpolateOptions): Tensor {
  requireRank(x, 4, 'interpolate');
  if ((o.size === undefined) === (o.scaleFactor === undefined))
    throw new TypeError('Error in interpolate: give exactly one of size and scaleFactor');
  let size: number[];
  let scales: [number | null, number | null] = [null, null];
  if (o.size !== undefined) {
    size = pair(o.size, 'size');
  } else {
    const sf = typeof o.scaleFactor === 'number' ? [o.scaleFactor, o.scaleFactor] : [...o.scaleFactor!];
    if (sf.length !== 2 || sf.some((v) => !(v > 0)))
      throw new RangeError(
        `Error in interpolate: scaleFactor must be positive but received ${JSON.stringify(o.scaleFactor)}`,
      );
    size = [Math.floor(x.shape[2]! * sf[0]!), Math.floor(x.shape[3]! * sf[1]!)];
    scales = [sf[0]!, sf[1]!];
  }
  const mode = o.mode ?? 'nearest';
  if (mode === 'nearest') {
    if (o.alignCorners !== undefined)
      throw new TypeError("Error in interpolate: alignCorners only applies to 'bilinear' and 'bicubic'");
    return op('upsampleNearest2d', x.handle, size, ...scales);
  }
  if (mode === 'bilinear') return op('upsampleBilinear2d', x.handle, size, o.alignCorners ?? false, ...scales);
  if (mode === 'bicubic') return op('upsampleBicubic2d', x.handle, size, o.alignCorners ?? false, ...scales);
  throw new TypeError(`Expected 'nearest', 'bilinear' or 'bicubic' for mode but received ${String(mode)}`);
}

/** Pads the last dimensions; pad lists (left, right, top, bottom, ...) like F.pad. */
export function pad(
  x: Tensor,
  padding: readonly number[],
  mode: 'constant' | 'reflect' | 'replicate' = 'constant',
  value: Scalar = 0,
): Tensor {
  if (padding.length % 2 !== 0)
    throw new RangeError(`Error in pad: padding must have an even length but received ${padding.length}`);
  if (mode === 'constant') return op('constantPad', x.handle, [...padding], value);
  if (padding.length !== 4 || x.ndim !== 4)
    throw new RangeError(`Error in pad: '${mode}' padding takes a 4-d input and 4 pad values`);
  return op(mode === 'reflect' ? 'reflectionPad2d' : 'replicationPad2d', x.handle, [...padding]);
}

export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) throw new RangeError('Error in cat: expected a non-empty list of tensors');
  return op(
    'cat',
    tensors.map((t) => t.handle),
    dim,
  );
}
export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) throw new RangeError('Error in stack: expected a non-empty list of tensors');
  return op(
    'stack',
    tensors.map((t) => t.handle),
    dim,
  );
}
export function where(condition: Tensor, a: Tensor, b: Tensor): Tensor {
  return op('where', condition.handle, a.handle, b.handle);
}
export function einsum(equation: string, ...operands: Tensor[]): Tensor {
  return op(
    'einsum',
    equation,
    operands.map((t) => t.handle),
  );
}
export function bernoulli(probs: Tensor): Tensor {
  return op('bernoulli', probs.handle);
}
