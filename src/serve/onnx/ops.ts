// Native op -> ONNX nodes, one entry per op of src/tensor; handlers read the call's
// arguments by the names the op table (src/tensor/ops.ts) declares. In-place
// variants (relu_, add_, ...) use the entry of their out-of-place op, whose
// arguments have the same names. Dimension 0 of the input is the batch: ops
// that would fix or mix it are rejected, reshapes keep it symbolic.
import type { Handle, NativeArg } from '../../tensor/native.js';
import type { NamedArgs, OpName } from '../../tensor/ops.js';
import type { Attrs, GraphBuilder } from './graph.js';
import { dtypeCode, dtypeFromCode } from '../../tensor/dtype.js';

/** A traced ONNX value: its name, the shape seen while tracing, and whether dim 0 is the batch. */
export interface Value {
  name: string;
  shape: number[];
  batched: boolean;
}

export interface OpContext {
  g: GraphBuilder;
  /** Batch size of the example input. */
  batch: number;
  /** The ONNX value of a tensor argument (parameters and constants become initializers). */
  value(a: NativeArg): Value;
  /** The module being traced, for messages. */
  where(): string;
}

/** Maps one native call (its arguments by name); outShapes: the native results' shapes. One Value per result. */
export type OpHandler<K extends OpName = OpName> = (c: OpContext, args: NamedArgs<K>, outShapes: number[][]) => Value[];
/** At most one handler per op of the table. */
export type OpHandlers = { readonly [K in OpName]?: OpHandler<K> };

type Self = { self: Handle };

const num = (a: NativeArg, what: string): number => {
  if (typeof a === 'number') return a;
  if (typeof a === 'boolean') return a ? 1 : 0;
  throw new TypeError(`expected a number for ${what}`);
};
const nums = (a: NativeArg, what: string): number[] => {
  if (Array.isArray(a) && a.every((x) => typeof x === 'number')) return a as number[];
  throw new TypeError(`expected a list of numbers for ${what}`);
};
const isNull = (a: NativeArg): boolean => a === null || a === undefined;
const normDim = (d: number, rank: number): number => (d < 0 ? d + rank : d);

/** The result of a node: shape from the native result, batched when any input is. */
function out(name: string, shape: number[], ...inputs: Value[]): Value {
  return { name, shape, batched: inputs.some((v) => v.batched) };
}

function noBatchAxis(v: Value, axes: readonly number[], what: string): void {
  if (v.batched && axes.some((a) => normDim(a, v.shape.length) === 0))
    throw new Error(`${what} over the batch dimension cannot be exported with a dynamic batch`);
}

/** Reshape to `shape` (the traced output shape) keeping dim 0 symbolic when it is the batch. */
function reshapeTo(c: OpContext, x: Value, shape: readonly number[]): Value {
  const target = [...shape];
  let batched = false;
  if (x.batched) {
    if (target[0] !== c.batch) throw new Error(`reshape to [${shape.join(', ')}] moves the batch dimension`);
    target[0] = 0; // ONNX Reshape: 0 copies the input's dimension
    batched = true;
  }
  return { name: c.g.node('Reshape', [x.name, c.g.ints(target, 'shape')]), shape: [...shape], batched };
}

const unary =
  (opType: string) =>
  (c: OpContext, a: Self, s: number[][]): Value[] => {
    const x = c.value(a.self);
    return [out(c.g.node(opType, [x.name]), s[0]!, x)];
  };

const alias = (c: OpContext, a: Self, s: number[][]): Value[] => {
  const x = c.value(a.self);
  return [{ ...x, shape: s[0]! }];
};

/** a op (b * alpha) for tensor b. */
type BinaryArgs = Self & { other: Handle; alpha?: number | boolean };
const binary =
  (opType: string) =>
  (c: OpContext, a: BinaryArgs, s: number[][]): Value[] => {
    const x = c.value(a.self);
    const y = c.value(a.other);
    const alpha = a.alpha === undefined ? 1 : num(a.alpha, 'alpha');
    const yn = alpha === 1 ? y.name : c.g.node('Mul', [y.name, c.g.scalar(alpha)]);
    return [out(c.g.node(opType, [x.name, yn]), s[0]!, x, y)];
  };

/** a op (s * alpha) for a scalar s. */
type ScalarArgs = Self & { other: number | boolean; alpha?: number | boolean };
const binaryScalar =
  (opType: string) =>
  (c: OpContext, a: ScalarArgs, s: number[][]): Value[] => {
    const x = c.value(a.self);
    const alpha = a.alpha === undefined ? 1 : num(a.alpha, 'alpha');
    return [out(c.g.node(opType, [x.name, c.g.scalar(num(a.other, 'scalar') * alpha)]), s[0]!, x)];
  };

function gelu(c: OpContext, x: Value, approximate: string): string {
  const g = c.g;
  if (approximate === 'tanh') {
    // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    const x3 = g.node('Mul', [g.node('Mul', [x.name, x.name]), x.name]);
    const inner = g.node('Mul', [
      g.node('Add', [x.name, g.node('Mul', [x3, g.scalar(0.044715)])]),
      g.scalar(Math.sqrt(2 / Math.PI)),
    ]);
    return g.node('Mul', [
      g.node('Mul', [x.name, g.scalar(0.5)]),
      g.node('Add', [g.node('Tanh', [inner]), g.scalar(1)]),
    ]);
  }
  const erf = g.node('Erf', [g.node('Div', [x.name, g.scalar(Math.SQRT2)])]);
  return g.node('Mul', [g.node('Mul', [x.name, g.scalar(0.5)]), g.node('Add', [erf, g.scalar(1)])]);
}

function pool2dAttrs(
  k: number[],
  s: number[],
  p: number[],
): { kernel_shape: number[]; strides: number[]; pads: number[] } {
  return { kernel_shape: k, strides: s, pads: [p[0]!, p[1]!, p[0]!, p[1]!] };
}

function adaptivePool(kind: 'Average' | 'Max'): OpHandler<'adaptiveAvgPool2d' | 'adaptiveMaxPool2d'> {
  return (c, a, s) => {
    const x = c.value(a.self);
    const [oh, ow] = nums(a.outputSize, 'outputSize') as [number, number];
    const [h, w] = x.shape.slice(2) as [number, number];
    if (oh === 1 && ow === 1)
      return [out(c.g.node(kind === 'Average' ? 'GlobalAveragePool' : 'GlobalMaxPool', [x.name]), s[0]!, x)];
    if (h % oh !== 0 || w % ow !== 0)
      throw new Error(
        `adaptive pooling from ${h}x${w} to ${oh}x${ow} has uneven windows (export at an input size divisible by the output size)`,
      );
    const k = [h / oh, w / ow];
    return [
      out(
        c.g.node(kind === 'Average' ? 'AveragePool' : 'MaxPool', [x.name], { kernel_shape: k, strides: k }),
        s[0]!,
        x,
      ),
    ];
  };
}

function reduce(opType: 'ReduceMean' | 'ReduceMax' | 'ReduceMin' | 'ReduceSum' | 'ReduceL1' | 'ReduceL2') {
  return (c: OpContext, a: Self & { dims: readonly number[]; keepdim: boolean }, s: number[][]): Value[] => {
    const x = c.value(a.self);
    const axes = nums(a.dims, 'dims').map((d) => normDim(d, x.shape.length));
    noBatchAxis(x, axes, opType);
    if (!axes.length) throw new Error(`${opType} over every dimension (the batch included)`);
    const keepdims = a.keepdim ? 1 : 0;
    // ReduceSum takes axes as an input since opset 13, the others until opset 18 as an attribute.
    const name =
      opType === 'ReduceSum'
        ? c.g.node(opType, [x.name, c.g.ints(axes, 'axes')], { keepdims })
        : c.g.node(opType, [x.name], { axes, keepdims });
    return [out(name, s[0]!, x)];
  };
}

function resize(mode: 'nearest' | 'linear' | 'cubic') {
  return (c: OpContext, a: Self & { size: readonly number[]; alignCorners?: boolean }, s: number[][]): Value[] => {
    const x = c.value(a.self);
    const alignCorners = mode !== 'nearest' && a.alignCorners === true;
    const [oh, ow] = nums(a.size, 'size');
    const [h, w] = x.shape.slice(2) as [number, number];
    const scales = c.g.initializer(c.g.fresh('scales'), [4], Float32Array.of(1, 1, oh! / h, ow! / w));
    const attrs: Attrs =
      mode === 'nearest'
        ? { mode, coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' }
        : {
            mode,
            coordinate_transformation_mode: alignCorners ? 'align_corners' : 'pytorch_half_pixel',
            ...(mode === 'cubic' ? { cubic_coeff_a: { float: -0.75 } } : {}),
          };
    return [out(c.g.node('Resize', [x.name, '', scales], attrs), s[0]!, x)];
  };
}

function slice(c: OpContext, x: Value, dim: number, start: number, end: number, step: number, shape: number[]): Value {
  const d = normDim(dim, x.shape.length);
  noBatchAxis(x, [d], 'slice');
  const g = c.g;
  return out(
    g.node('Slice', [
      x.name,
      g.ints([start], 'starts'),
      g.ints([end], 'ends'),
      g.ints([d], 'axes'),
      g.ints([step], 'steps'),
    ]),
    shape,
    x,
  );
}

/** Split along dim into pieces whose sizes come from the native results. */
const splitOp = (c: OpContext, a: Self & { dim: number }, s: number[][]): Value[] => {
  const x = c.value(a.self);
  const d = normDim(num(a.dim, 'dim'), x.shape.length);
  noBatchAxis(x, [d], 'split');
  const squeeze = s.every((sh) => sh.length === x.shape.length - 1); // unbind
  const sizes = squeeze ? s.map(() => 1) : s.map((sh) => sh[d]!);
  const outs = s.map(() => c.g.fresh('split'));
  c.g.node('Split', [x.name, c.g.ints(sizes, 'split')], { axis: d }, outs);
  return outs.map((n, i) => out(squeeze ? c.g.node('Squeeze', [n, c.g.ints([d], 'axes')]) : n, s[i]!, x));
};

export const OPS: OpHandlers = {
  // --- convolution, linear, normalisation --------------------------------------------
  conv2d: (c, a, s) => {
    const [x, w] = [c.value(a.input), c.value(a.weight)];
    const inputs = [x.name, w.name];
    if (!isNull(a.bias)) inputs.push(c.value(a.bias).name);
    const p = nums(a.padding, 'padding');
    return [
      out(
        c.g.node('Conv', inputs, {
          kernel_shape: w.shape.slice(2),
          strides: nums(a.stride, 'stride'),
          pads: [p[0]!, p[1]!, p[0]!, p[1]!],
          dilations: nums(a.dilation, 'dilation'),
          group: num(a.groups, 'groups'),
        }),
        s[0]!,
        x,
      ),
    ];
  },
  convTranspose2d: (c, a, s) => {
    const [x, w] = [c.value(a.input), c.value(a.weight)];
    const inputs = [x.name, w.name];
    if (!isNull(a.bias)) inputs.push(c.value(a.bias).name);
    const p = nums(a.padding, 'padding');
    return [
      out(
        c.g.node('ConvTranspose', inputs, {
          kernel_shape: w.shape.slice(2),
          strides: nums(a.stride, 'stride'),
          pads: [p[0]!, p[1]!, p[0]!, p[1]!],
          output_padding: nums(a.outputPadding, 'outputPadding'),
          group: num(a.groups, 'groups'),
          dilations: nums(a.dilation, 'dilation'),
        }),
        s[0]!,
        x,
      ),
    ];
  },
  linear: (c, a, s) => {
    const [x, w] = [c.value(a.input), c.value(a.weight)];
    const b = isNull(a.bias) ? null : c.value(a.bias);
    if (x.shape.length === 2) {
      return [out(c.g.node('Gemm', b ? [x.name, w.name, b.name] : [x.name, w.name], { transB: 1 }), s[0]!, x)];
    }
    const mm = c.g.node('MatMul', [x.name, c.g.node('Transpose', [w.name], { perm: [1, 0] })]);
    return [out(b ? c.g.node('Add', [mm, b.name]) : mm, s[0]!, x)];
  },
  batchNorm: (c, a, s) => {
    if (a.training === true) throw new Error('batch norm in training mode (call model.eval() before exporting)');
    const x = c.value(a.input);
    if (isNull(a.runningMean) || isNull(a.runningVar)) throw new Error('batch norm without running statistics');
    const ch = x.shape[1]!;
    const weight = isNull(a.weight)
      ? c.g.initializer(c.g.fresh('bn_ones'), [ch], new Float32Array(ch).fill(1))
      : c.value(a.weight).name;
    const bias = isNull(a.bias)
      ? c.g.initializer(c.g.fresh('bn_zeros'), [ch], new Float32Array(ch))
      : c.value(a.bias).name;
    return [
      out(
        c.g.node(
          'BatchNormalization',
          [x.name, weight, bias, c.value(a.runningMean).name, c.value(a.runningVar).name],
          { epsilon: { float: num(a.eps, 'eps') } },
        ),
        s[0]!,
        x,
      ),
    ];
  },
  layerNorm: (c, a, s) => {
    const x = c.value(a.input);
    const shape = nums(a.normalizedShape, 'normalizedShape');
    const n = shape.reduce((p, q) => p * q, 1);
    const weight = isNull(a.weight)
      ? c.g.initializer(c.g.fresh('ln_ones'), shape, new Float32Array(n).fill(1))
      : c.value(a.weight).name;
    const inputs = [x.name, weight];
    if (!isNull(a.bias)) inputs.push(c.value(a.bias).name);
    return [
      out(
        c.g.node('LayerNormalization', inputs, { axis: -shape.length, epsilon: { float: num(a.eps, 'eps') } }),
        s[0]!,
        x,
      ),
    ];
  },
  groupNorm: (c, a, s) => {
    // (x - mean) / sqrt(var + eps) per (sample, group), then the per-channel affine.
    const x = c.value(a.input);
    const groups = num(a.numGroups, 'numGroups');
    const g = c.g;
    const ch = x.shape[1]!;
    const grouped = g.node('Reshape', [x.name, g.ints([0, groups, -1], 'shape')]);
    const mean = g.node('ReduceMean', [grouped], { axes: [2], keepdims: 1 });
    const d = g.node('Sub', [grouped, mean]);
    const v = g.node('ReduceMean', [g.node('Mul', [d, d])], { axes: [2], keepdims: 1 });
    const nrm = g.node('Div', [d, g.node('Sqrt', [g.node('Add', [v, g.scalar(num(a.eps, 'eps'))])])]);
    let y = g.node('Reshape', [nrm, g.ints([0, ...x.shape.slice(1)], 'shape')]);
    const perChannel = [ch, ...x.shape.slice(2).map(() => 1)];
    if (!isNull(a.weight))
      y = g.node('Mul', [y, g.node('Reshape', [c.value(a.weight).name, g.ints(perChannel, 'shape')])]);
    if (!isNull(a.bias)) y = g.node('Add', [y, g.node('Reshape', [c.value(a.bias).name, g.ints(perChannel, 'shape')])]);
    return [out(y, s[0]!, x)];
  },

  // --- activations ----------------------------------------------------------------------
  relu: unary('Relu'),
  sigmoid: unary('Sigmoid'),
  tanh: unary('Tanh'),
  hardswish: unary('HardSwish'),
  hardsigmoid: (c, a, s) => {
    const x = c.value(a.self);
    return [out(c.g.node('HardSigmoid', [x.name], { alpha: { float: 1 / 6 }, beta: { float: 0.5 } }), s[0]!, x)];
  },
  hardtanh: (c, a, s) => {
    const x = c.value(a.self);
    return [out(c.g.node('Clip', [x.name, c.g.scalar(num(a.min, 'min')), c.g.scalar(num(a.max, 'max'))]), s[0]!, x)];
  },
  leakyRelu: (c, a, s) => {
    const x = c.value(a.self);
    return [
      out(c.g.node('LeakyRelu', [x.name], { alpha: { float: num(a.negativeSlope, 'negativeSlope') } }), s[0]!, x),
    ];
  },
  elu: (c, a, s) => {
    const x = c.value(a.self);
    return [out(c.g.node('Elu', [x.name], { alpha: { float: num(a.alpha, 'alpha') } }), s[0]!, x)];
  },
  silu: (c, a, s) => {
    const x = c.value(a.self);
    return [out(c.g.node('Mul', [x.name, c.g.node('Sigmoid', [x.name])]), s[0]!, x)];
  },
  mish: (c, a, s) => {
    const x = c.value(a.self);
    return [out(c.g.node('Mul', [x.name, c.g.node('Tanh', [c.g.node('Softplus', [x.name])])]), s[0]!, x)];
  },
  softplus: (c, a, s) => {
    const x = c.value(a.self);
    const beta = num(a.beta, 'beta');
    const y =
      beta === 1
        ? c.g.node('Softplus', [x.name])
        : c.g.node('Div', [c.g.node('Softplus', [c.g.node('Mul', [x.name, c.g.scalar(beta)])]), c.g.scalar(beta)]);
    return [out(y, s[0]!, x)];
  },
  gelu: (c, a, s) => {
    const x = c.value(a.self);
    return [out(gelu(c, x, typeof a.approximate === 'string' ? a.approximate : 'none'), s[0]!, x)];
  },
  softmax: (c, a, s) => {
    const x = c.value(a.self);
    const d = normDim(num(a.dim, 'dim'), x.shape.length);
    noBatchAxis(x, [d], 'softmax');
    return [out(c.g.node('Softmax', [x.name], { axis: d }), s[0]!, x)];
  },
  logSoftmax: (c, a, s) => {
    const x = c.value(a.self);
    const d = normDim(num(a.dim, 'dim'), x.shape.length);
    noBatchAxis(x, [d], 'logSoftmax');
    return [out(c.g.node('LogSoftmax', [x.name], { axis: d }), s[0]!, x)];
  },
  dropout: (c, a, s) => {
    if (a.training === true && num(a.p, 'p') > 0)
      throw new Error('dropout in training mode (call model.eval() before exporting)');
    return alias(c, a, s);
  },

  // --- pooling ---------------------------------------------------------------------------
  maxPool2d: (c, a, s) => {
    const x = c.value(a.self);
    return [
      out(
        c.g.node('MaxPool', [x.name], {
          ...pool2dAttrs(nums(a.kernelSize, 'kernelSize'), nums(a.stride, 'stride'), nums(a.padding, 'padding')),
          dilations: nums(a.dilation, 'dilation'),
          ceil_mode: a.ceilMode ? 1 : 0,
        }),
        s[0]!,
        x,
      ),
    ];
  },
  avgPool2d: (c, a, s) => {
    if (!isNull(a.divisorOverride)) throw new Error('avg pooling with divisorOverride has no ONNX equivalent');
    const x = c.value(a.self);
    return [
      out(
        c.g.node('AveragePool', [x.name], {
          ...pool2dAttrs(nums(a.kernelSize, 'kernelSize'), nums(a.stride, 'stride'), nums(a.padding, 'padding')),
          ceil_mode: a.ceilMode ? 1 : 0,
          count_include_pad: a.countIncludePad ? 1 : 0,
        }),
        s[0]!,
        x,
      ),
    ];
  },
  adaptiveAvgPool2d: adaptivePool('Average'),
  adaptiveMaxPool2d: adaptivePool('Max'),
  upsampleNearest2d: resize('nearest'),
  upsampleBilinear2d: resize('linear'),
  upsampleBicubic2d: resize('cubic'),

  // --- arithmetic ---------------------------------------------------------------------------
  add: binary('Add'),
  sub: binary('Sub'),
  mul: binary('Mul'),
  div: binary('Div'),
  pow: binary('Pow'),
  maximum: binary('Max'),
  minimum: binary('Min'),
  addScalar: binaryScalar('Add'),
  subScalar: binaryScalar('Sub'),
  mulScalar: binaryScalar('Mul'),
  divScalar: binaryScalar('Div'),
  powScalar: binaryScalar('Pow'),
  rsubScalar: (c, a, s) => {
    const x = c.value(a.self);
    const alpha = num(a.alpha, 'alpha');
    const xs = alpha === 1 ? x.name : c.g.node('Mul', [x.name, c.g.scalar(alpha)]);
    return [out(c.g.node('Sub', [c.g.scalar(num(a.other, 'scalar')), xs]), s[0]!, x)];
  },
  neg: unary('Neg'),
  abs: unary('Abs'),
  exp: unary('Exp'),
  log: unary('Log'),
  sqrt: unary('Sqrt'),
  reciprocal: unary('Reciprocal'),
  erf: unary('Erf'),
  sin: unary('Sin'),
  cos: unary('Cos'),
  floor: unary('Floor'),
  ceil: unary('Ceil'),
  sign: unary('Sign'),
  rsqrt: (c, a, s) => {
    const x = c.value(a.self);
    return [out(c.g.node('Reciprocal', [c.g.node('Sqrt', [x.name])]), s[0]!, x)];
  },
  square: (c, a, s) => {
    const x = c.value(a.self);
    return [out(c.g.node('Mul', [x.name, x.name]), s[0]!, x)];
  },
  clamp: (c, a, s) => {
    const x = c.value(a.self);
    const lo = isNull(a.min) ? '' : c.g.scalar(num(a.min, 'min'));
    const hi = isNull(a.max) ? '' : c.g.scalar(num(a.max, 'max'));
    return [out(c.g.node('Clip', hi ? [x.name, lo, hi] : [x.name, lo]), s[0]!, x)];
  },
  clampMin_: (c, a, s) => {
    const x = c.value(a.self);
    return [out(c.g.node('Clip', [x.name, c.g.scalar(num(a.min, 'min'))]), s[0]!, x)];
  },
  matmul: binary('MatMul'),
  mm: binary('MatMul'),
  bmm: binary('MatMul'),

  // --- shape ----------------------------------------------------------------------------------
  reshape: (c, a, s) => [reshapeTo(c, c.value(a.self), s[0]!)],
  view: (c, a, s) => [reshapeTo(c, c.value(a.self), s[0]!)],
  flatten: (c, a, s) => {
    const x = c.value(a.self);
    const start = normDim(num(a.startDim, 'startDim'), x.shape.length);
    const end = normDim(num(a.endDim, 'endDim'), x.shape.length);
    if (start === 1 && end === x.shape.length - 1) return [out(c.g.node('Flatten', [x.name], { axis: 1 }), s[0]!, x)];
    return [reshapeTo(c, x, s[0]!)];
  },
  permute: (c, a, s) => {
    const x = c.value(a.self);
    const perm = nums(a.dims, 'dims').map((d) => normDim(d, x.shape.length));
    if (x.batched && perm[0] !== 0) throw new Error('permute moves the batch dimension');
    return [out(c.g.node('Transpose', [x.name], { perm }), s[0]!, x)];
  },
  transpose: (c, a, s) => {
    const x = c.value(a.self);
    const r = x.shape.length;
    const [d0, d1] = [normDim(num(a.dim0, 'dim0'), r), normDim(num(a.dim1, 'dim1'), r)];
    noBatchAxis(x, [d0, d1], 'transpose');
    const perm = Array.from({ length: r }, (_, i) => (i === d0 ? d1 : i === d1 ? d0 : i));
    return [out(c.g.node('Transpose', [x.name], { perm }), s[0]!, x)];
  },
  unsqueeze: (c, a, s) => {
    const x = c.value(a.self);
    const d = normDim(num(a.dim, 'dim'), x.shape.length + 1);
    if (x.batched && d === 0) throw new Error('unsqueeze before the batch dimension');
    return [out(c.g.node('Unsqueeze', [x.name, c.g.ints([d], 'axes')]), s[0]!, x)];
  },
  squeeze: (c, a, s) => {
    const x = c.value(a.self);
    const d = normDim(num(a.dim, 'dim'), x.shape.length);
    if (x.shape[d] !== 1) return alias(c, a, s);
    return [out(c.g.node('Squeeze', [x.name, c.g.ints([d], 'axes')]), s[0]!, x)];
  },
  squeezeAll: (c, a, s) => {
    const x = c.value(a.self);
    const axes = x.shape.map((n, i) => (n === 1 ? i : -1)).filter((i) => i >= 0);
    if (axes.length === 0) return alias(c, a, s);
    return [out(c.g.node('Squeeze', [x.name, c.g.ints(axes, 'axes')]), s[0]!, x)];
  },
  expand: (c, a, s) => {
    const x = c.value(a.self);
    const target = s[0]!;
    const offset = target.length - x.shape.length;
    // 1 wherever the input already has the size: Expand broadcasts, so the batch stays dynamic.
    const shape = target.map((n, i) => (i >= offset && x.shape[i - offset] === n ? 1 : n));
    if (x.batched && offset !== 0) throw new Error('expand adds dimensions before the batch');
    return [out(c.g.node('Expand', [x.name, c.g.ints(shape, 'shape')]), target, x)];
  },
  contiguous: alias,
  clone: alias,
  detach: alias,
  to: (c, a, s) => {
    // The graph is float32 end to end: only no-op conversions (.float(), .cpu()) are allowed.
    if (!isNull(a.dtype) && a.dtype !== dtypeCode('float32'))
      throw new Error(`conversion to ${dtypeFromCode(num(a.dtype, 'dtype'))} (the exported graph is float32)`);
    return alias(c, a, s);
  },
  cat: (c, a, s) => {
    const xs = (a.tensors as NativeArg[]).map((h) => c.value(h));
    const d = normDim(num(a.dim, 'dim'), xs[0]!.shape.length);
    if (xs.some((x) => x.batched)) noBatchAxis(xs.find((x) => x.batched)!, [d], 'cat');
    return [
      out(
        c.g.node(
          'Concat',
          xs.map((x) => x.name),
          { axis: d },
        ),
        s[0]!,
        ...xs,
      ),
    ];
  },
  stack: (c, a, s) => {
    const xs = (a.tensors as NativeArg[]).map((h) => c.value(h));
    const d = normDim(num(a.dim, 'dim'), xs[0]!.shape.length + 1);
    if (xs.some((x) => x.batched) && d === 0) throw new Error('stack over the batch dimension');
    const axes = c.g.ints([d], 'axes');
    return [
      out(
        c.g.node(
          'Concat',
          xs.map((x) => c.g.node('Unsqueeze', [x.name, axes])),
          { axis: d },
        ),
        s[0]!,
        ...xs,
      ),
    ];
  },
  constantPad: (c, a, s) => {
    const x = c.value(a.self);
    const p = nums(a.pad, 'padding');
    const r = x.shape.length;
    const begin = new Array<number>(r).fill(0);
    const end = new Array<number>(r).fill(0);
    for (let i = 0; i < p.length / 2; i++) {
      begin[r - 1 - i] = p[2 * i]!;
      end[r - 1 - i] = p[2 * i + 1]!;
    }
    if (x.batched && (begin[0] !== 0 || end[0] !== 0)) throw new Error('padding the batch dimension');
    return [
      out(
        c.g.node('Pad', [x.name, c.g.ints([...begin, ...end], 'pads'), c.g.scalar(num(a.value, 'value'))], {
          mode: 'constant',
        }),
        s[0]!,
        x,
      ),
    ];
  },

  // --- reductions -------------------------------------------------------------------------
  mean: reduce('ReduceMean'),
  sum: reduce('ReduceSum'),
  amax: reduce('ReduceMax'),
  amin: reduce('ReduceMin'),
  // norm(x, p, dims, keepdim): the L2 norm gallery embeddings are normalised by, and L1.
  norm: (c, a, s) => {
    const p = num(a.p, 'p');
    if (p !== 1 && p !== 2) throw new Error(`norm with p = ${p} (only 1 and 2 export)`);
    return reduce(p === 2 ? 'ReduceL2' : 'ReduceL1')(c, a, s);
  },

  // --- indexing ------------------------------------------------------------------------------
  slice: (c, a, s) => {
    const x = c.value(a.self);
    const start = isNull(a.start) ? 0 : num(a.start, 'start');
    const end = isNull(a.end) ? Number.MAX_SAFE_INTEGER : num(a.end, 'end');
    return [slice(c, x, num(a.dim, 'dim'), start, end, num(a.step, 'step'), s[0]!)];
  },
  narrow: (c, a, s) => {
    const x = c.value(a.self);
    const start = num(a.start, 'start');
    return [slice(c, x, num(a.dim, 'dim'), start, start + num(a.length, 'length'), 1, s[0]!)];
  },
  select: (c, a, s) => {
    const x = c.value(a.self);
    const d = normDim(num(a.dim, 'dim'), x.shape.length);
    noBatchAxis(x, [d], 'select');
    const idx = c.g.initializer(c.g.fresh('index'), [], BigInt64Array.of(BigInt(num(a.index, 'index'))));
    return [out(c.g.node('Gather', [x.name, idx], { axis: d }), s[0]!, x)];
  },
  flip: (c, a, s) => {
    // Slice with step -1 over each flipped axis.
    const x = c.value(a.self);
    const axes = nums(a.dims, 'dims').map((d) => normDim(d, x.shape.length));
    noBatchAxis(x, axes, 'flip');
    const g = c.g;
    const name = g.node('Slice', [
      x.name,
      g.ints(
        axes.map(() => -1),
        'starts',
      ),
      g.ints(
        axes.map(() => Number.MIN_SAFE_INTEGER),
        'ends',
      ),
      g.ints(axes, 'axes'),
      g.ints(
        axes.map(() => -1),
        'steps',
      ),
    ]);
    return [out(name, s[0]!, x)];
  },
  split: splitOp,
  splitWithSizes: splitOp,
  chunk: splitOp,
  unbind: splitOp,
};
