// The native op table: one declaration per GR_OP binding of native/*.cc (name, arguments in
// call order with their kinds, result). The binding's TypeScript types come from it (call()
// in native.ts), the ONNX exporter and the FLOP counter read arguments by these names, and
// test/native-ops.test.ts checks that the C++ argument readers match it op by op.
import type { Handle } from './handle.js';

/** What one argument is on the JS side; the C++ reader of each kind is in native/common.h. */
export interface ArgKinds {
  tensor: Handle; // T(i)
  'tensor?': Handle | null; // OT(i)
  'tensor[]': readonly Handle[]; // TL(i)
  float: number; // D(i)
  'float?': number | null; // OD(i)
  int: number; // I(i)
  'int?': number | null; // OI(i)
  'int[]': readonly number[]; // IL(i)
  bool: boolean; // B(i)
  string: string; // S(i)
  scalar: number | boolean; // SC(i)
  'scalar?': number | null; // SC(i) guarded by an info[i] type test
  dtype: number; // DT(i): a code from dtypeCodes
  'dtype?': number | null; // ODT(i)
  'device?': string | null; // gr::argDevice / argOptions: null is the CPU
  bytes: ArrayBufferView | ArrayBuffer; // read through info[i] directly
  external: Handle; // a native object (process group, gradient hooks): group(info, i) or info[i]
}
export type ArgKind = keyof ArgKinds;

/** What an op returns to JS. */
export interface ResultKinds {
  tensor: Handle; // RET
  'tensor?': Handle | undefined; // RET or RETV
  'tensor[]': Handle[]; // RETL
  pair: [Handle, Handle]; // RET2 (values, indices)
  void: undefined; // RETV
  bool: boolean;
  number: number;
  item: number | boolean;
  string: string;
  'int[]': number[];
  buffer: ArrayBuffer;
  memory: {
    tensors: number;
    bytes: number;
    cudaBytes: number;
    cachedBytes: number;
    cacheHits: number;
    cacheMisses: number;
  };
  buildInfo: {
    torchVersion: string;
    parallelInfo: string;
    /** A GPU is usable (libtorch's hasCUDA: CUDA compiled in and at least one device visible). */
    cuda: boolean;
    /** The addon was built against a CUDA libtorch (GOODSREC_CUDA), whether or not a GPU is visible. */
    cudaCompiled: boolean;
    /** ProcessGroupNCCL is compiled in (GOODSREC_NCCL). */
    nccl: boolean;
    cudaDevices: number;
    mkldnn: boolean;
  };
  autocastState: { enabled: boolean; dtype: number };
  external: Handle;
  'string?': string | null;
  distInfo: { rank: number; worldSize: number; backend: string; torchVersion: string };
}
export type ResultKind = keyof ResultKinds;

/** One argument: "name: kind". */
export type ArgDecl = `${string}: ${ArgKind}`;

export interface OpDecl<R extends ResultKind = ResultKind, A extends readonly ArgDecl[] = readonly ArgDecl[]> {
  readonly result: R;
  readonly args: A;
}

function op<R extends ResultKind, const A extends readonly ArgDecl[]>(result: R, ...args: A): OpDecl<R, A> {
  return { result, args };
}

const U = 'self: tensor'; // the first tensor of most ops
const O = 'other: tensor';

export const OP_TABLE = {
  // --- creation, read-back (tensor_core.cc) ---------------------------------------------
  fromBuffer: op('tensor', 'bytes: bytes', 'shape: int[]', 'dtype: dtype', 'device: device?'),
  toBuffer: op('buffer', U),
  item: op('item', U),
  empty: op('tensor', 'shape: int[]', 'dtype: dtype', 'device: device?'),
  zeros: op('tensor', 'shape: int[]', 'dtype: dtype', 'device: device?'),
  ones: op('tensor', 'shape: int[]', 'dtype: dtype', 'device: device?'),
  full: op('tensor', 'shape: int[]', 'value: scalar', 'dtype: dtype', 'device: device?'),
  arange: op('tensor', 'start: scalar', 'end: scalar', 'step: scalar', 'dtype: dtype', 'device: device?'),
  linspace: op('tensor', 'start: scalar', 'end: scalar', 'steps: int', 'dtype: dtype', 'device: device?'),
  rand: op('tensor', 'shape: int[]', 'dtype: dtype', 'device: device?'),
  randn: op('tensor', 'shape: int[]', 'dtype: dtype', 'device: device?'),
  randint: op('tensor', 'low: int', 'high: int', 'shape: int[]', 'dtype: dtype', 'device: device?'),
  randperm: op('tensor', 'n: int', 'dtype: dtype', 'device: device?'),
  bernoulli: op('tensor', 'probs: tensor'),
  eye: op('tensor', 'n: int', 'dtype: dtype', 'device: device?'),

  // --- metadata, lifetime, conversion ----------------------------------------------------
  shape: op('int[]', U),
  strides: op('int[]', U),
  dtype: op('number', U),
  device: op('string', U),
  isContiguous: op('bool', U, 'memoryFormat: int'),
  requiresGrad: op('bool', U),
  isLeaf: op('bool', U),
  storageOffset: op('number', U),
  sameStorage: op('bool', U, O),
  dispose: op('void', U),
  isDisposed: op('bool', U),
  to: op('tensor', U, 'dtype: dtype?', 'device: device?', 'copy: bool', 'nonBlocking: bool'),
  pinMemory: op('tensor', U),
  isPinned: op('bool', U),
  clone: op('tensor', U, 'memoryFormat: int'),
  contiguous: op('tensor', U, 'memoryFormat: int'),
  detach: op('tensor', U),
  alias: op('tensor', U),

  // --- autograd, process-wide settings ---------------------------------------------------
  setRequiresGrad: op('void', U, 'requiresGrad: bool'),
  backward: op('void', U, 'gradient: tensor?', 'retainGraph: bool'),
  grad: op('tensor?', U),
  setGrad: op('void', U, 'grad: tensor?'),
  retainGrad: op('void', U),
  gradEnabled: op('bool'),
  setGradEnabled: op('void', 'enabled: bool'),
  mallocPolicy: op('bool', 'mode: string', 'cacheBytes: int'),
  releaseCachedMemory: op('number'),
  // c10d (native/dist.cc): TCPStore rendezvous and ProcessGroupGloo / ProcessGroupNCCL collectives.
  distInit: op(
    'external',
    'host: string',
    'port: int',
    'rank: int',
    'worldSize: int',
    'timeoutMs: int',
    'prefix: string',
    'backend: string',
  ),
  distDestroy: op('void', 'group: external'),
  distAllreduce: op('void', 'group: external', 'tensor: tensor', 'op: string', 'timeoutMs: int'),
  distAllreduceSum: op('tensor', 'group: external', 'tensor: tensor', 'timeoutMs: int'),
  distAllreduceBuckets: op(
    'void',
    'group: external',
    'tensors: tensor[]',
    'bucketSizes: int[]',
    'scale: float',
    'timeoutMs: int',
  ),
  distOverlapCreate: op(
    'external',
    'group: external',
    'params: tensor[]',
    'bucketSizes: int[]',
    'scale: float',
    'timeoutMs: int',
  ),
  distOverlapArm: op('void', 'overlap: external'),
  distOverlapFinish: op('number', 'overlap: external'),
  distBroadcast: op('void', 'group: external', 'tensors: tensor[]', 'root: int', 'timeoutMs: int'),
  distBarrier: op('void', 'group: external', 'timeoutMs: int'),
  distStoreSet: op('void', 'group: external', 'key: string', 'value: string'),
  distStoreGet: op('string?', 'group: external', 'key: string'),
  distStoreWait: op('string', 'group: external', 'key: string', 'timeoutMs: int'),
  distInfo: op('distInfo', 'group: external'),
  setNumThreads: op('void', 'threads: int'),
  getNumThreads: op('number'),
  manualSeed: op('void', 'seed: int'),
  cudaIsAvailable: op('bool'),
  cudaDeviceCount: op('number'),
  cudaSynchronize: op('void', 'device: int'),
  cudnnBenchmark: op('bool', 'enabled: bool'),
  cudaDeviceName: op('string', 'device: int'),
  memory: op('memory', 'processWide: bool'),
  buildInfo: op('buildInfo'),
  setAutocast: op('autocastState', 'deviceType: string', 'enabled: bool', 'dtype: dtype'),
  autocastEnter: op('void'),
  autocastExit: op('void'),

  // --- arithmetic, comparisons, unary math (ops_math.cc) -----------------------------------
  add: op('tensor', U, O, 'alpha: scalar'),
  addScalar: op('tensor', U, 'other: scalar', 'alpha: scalar'),
  sub: op('tensor', U, O, 'alpha: scalar'),
  subScalar: op('tensor', U, 'other: scalar', 'alpha: scalar'),
  rsubScalar: op('tensor', U, 'other: scalar', 'alpha: scalar'),
  mul: op('tensor', U, O),
  mulScalar: op('tensor', U, 'other: scalar'),
  div: op('tensor', U, O),
  divScalar: op('tensor', U, 'other: scalar'),
  floorDivide: op('tensor', U, O),
  remainder: op('tensor', U, O),
  pow: op('tensor', U, O),
  powScalar: op('tensor', U, 'other: scalar'),
  rpowScalar: op('tensor', 'exponent: tensor', 'base: scalar'),
  maximum: op('tensor', U, O),
  minimum: op('tensor', U, O),
  atan2: op('tensor', U, O),
  eq: op('tensor', U, O),
  ne: op('tensor', U, O),
  lt: op('tensor', U, O),
  le: op('tensor', U, O),
  gt: op('tensor', U, O),
  ge: op('tensor', U, O),
  eqScalar: op('tensor', U, 'other: scalar'),
  neScalar: op('tensor', U, 'other: scalar'),
  ltScalar: op('tensor', U, 'other: scalar'),
  leScalar: op('tensor', U, 'other: scalar'),
  gtScalar: op('tensor', U, 'other: scalar'),
  geScalar: op('tensor', U, 'other: scalar'),
  logicalAnd: op('tensor', U, O),
  logicalOr: op('tensor', U, O),
  logicalXor: op('tensor', U, O),
  logicalNot: op('tensor', U),
  allclose: op('bool', U, O, 'rtol: float', 'atol: float'),
  equal: op('bool', U, O),
  neg: op('tensor', U),
  abs: op('tensor', U),
  sign: op('tensor', U),
  exp: op('tensor', U),
  expm1: op('tensor', U),
  log: op('tensor', U),
  log1p: op('tensor', U),
  log2: op('tensor', U),
  sqrt: op('tensor', U),
  rsqrt: op('tensor', U),
  square: op('tensor', U),
  reciprocal: op('tensor', U),
  sin: op('tensor', U),
  cos: op('tensor', U),
  erf: op('tensor', U),
  floor: op('tensor', U),
  ceil: op('tensor', U),
  round: op('tensor', U),
  trunc: op('tensor', U),
  isnan: op('tensor', U),
  isinf: op('tensor', U),
  isfinite: op('tensor', U),
  clamp: op('tensor', U, 'min: scalar?', 'max: scalar?'),
  clampTensor: op('tensor', U, 'min: tensor?', 'max: tensor?'),
  where: op('tensor', 'condition: tensor', U, O),
  maskedFill: op('tensor', U, 'mask: tensor', 'value: scalar'),
  lerp: op('tensor', U, 'end: tensor', 'weight: scalar'),
  matmul: op('tensor', U, O),
  mm: op('tensor', U, O),
  bmm: op('tensor', U, O),
  linear: op('tensor', 'input: tensor', 'weight: tensor', 'bias: tensor?'),
  outer: op('tensor', U, O),
  einsum: op('tensor', 'equation: string', 'operands: tensor[]'),
  // In place: the first argument is updated, nothing is returned.
  add_: op('void', U, O, 'alpha: scalar'),
  addScalar_: op('void', U, 'other: scalar'),
  mul_: op('void', U, O),
  mulScalar_: op('void', U, 'other: scalar'),
  div_: op('void', U, O),
  divScalar_: op('void', U, 'other: scalar'),
  addcmul_: op('void', U, 'tensor1: tensor', 'tensor2: tensor', 'value: scalar'),
  addcdiv_: op('void', U, 'tensor1: tensor', 'tensor2: tensor', 'value: scalar'),
  lerp_: op('void', U, 'end: tensor', 'weight: scalar'),
  copy_: op('void', U, 'src: tensor'),
  zero_: op('void', U),
  fill_: op('void', U, 'value: scalar'),
  sqrt_: op('void', U),
  clampMin_: op('void', U, 'min: scalar'),
  normal_: op('void', U, 'mean: float', 'std: float'),
  uniform_: op('void', U, 'from: float', 'to: float'),
  bernoulli_: op('void', U, 'p: float'),
  unscaleAndCheck: op('bool', 'grads: tensor[]', 'invScale: float'),
  allFinite: op('bool', 'tensors: tensor[]'),

  // --- neural-network functionals (ops_nn.cc) ------------------------------------------------
  conv2d: op(
    'tensor',
    'input: tensor',
    'weight: tensor',
    'bias: tensor?',
    'stride: int[]',
    'padding: int[]',
    'dilation: int[]',
    'groups: int',
  ),
  convTranspose2d: op(
    'tensor',
    'input: tensor',
    'weight: tensor',
    'bias: tensor?',
    'stride: int[]',
    'padding: int[]',
    'outputPadding: int[]',
    'groups: int',
    'dilation: int[]',
  ),
  batchNorm: op(
    'tensor',
    'input: tensor',
    'weight: tensor?',
    'bias: tensor?',
    'runningMean: tensor?',
    'runningVar: tensor?',
    'training: bool',
    'momentum: float',
    'eps: float',
  ),
  layerNorm: op('tensor', 'input: tensor', 'normalizedShape: int[]', 'weight: tensor?', 'bias: tensor?', 'eps: float'),
  groupNorm: op('tensor', 'input: tensor', 'numGroups: int', 'weight: tensor?', 'bias: tensor?', 'eps: float'),
  relu: op('tensor', U),
  relu_: op('void', U),
  hardtanh: op('tensor', U, 'min: scalar', 'max: scalar'),
  leakyRelu: op('tensor', U, 'negativeSlope: scalar'),
  elu: op('tensor', U, 'alpha: scalar'),
  silu: op('tensor', U),
  mish: op('tensor', U),
  gelu: op('tensor', U, 'approximate: string'),
  sigmoid: op('tensor', U),
  hardsigmoid: op('tensor', U),
  hardswish: op('tensor', U),
  tanh: op('tensor', U),
  softplus: op('tensor', U, 'beta: scalar', 'threshold: scalar'),
  softmax: op('tensor', U, 'dim: int', 'dtype: dtype?'),
  logSoftmax: op('tensor', U, 'dim: int', 'dtype: dtype?'),
  maxPool2d: op(
    'tensor',
    U,
    'kernelSize: int[]',
    'stride: int[]',
    'padding: int[]',
    'dilation: int[]',
    'ceilMode: bool',
  ),
  avgPool2d: op(
    'tensor',
    U,
    'kernelSize: int[]',
    'stride: int[]',
    'padding: int[]',
    'ceilMode: bool',
    'countIncludePad: bool',
    'divisorOverride: int?',
  ),
  adaptiveAvgPool2d: op('tensor', U, 'outputSize: int[]'),
  adaptiveMaxPool2d: op('tensor', U, 'outputSize: int[]'),
  dropout: op('tensor', U, 'p: float', 'training: bool'),
  // reduction: 0 none, 1 mean, 2 sum (at::Reduction).
  crossEntropy: op(
    'tensor',
    'logits: tensor',
    'target: tensor',
    'weight: tensor?',
    'reduction: int',
    'ignoreIndex: int',
    'labelSmoothing: float',
  ),
  nllLoss: op('tensor', 'logProbs: tensor', 'target: tensor', 'weight: tensor?', 'reduction: int', 'ignoreIndex: int'),
  klDiv: op('tensor', 'input: tensor', 'target: tensor', 'reduction: int', 'logTarget: bool'),
  mseLoss: op('tensor', 'input: tensor', 'target: tensor', 'reduction: int'),
  bceWithLogits: op(
    'tensor',
    'input: tensor',
    'target: tensor',
    'weight: tensor?',
    'posWeight: tensor?',
    'reduction: int',
  ),
  oneHot: op('tensor', 'indices: tensor', 'numClasses: int'),
  embedding: op('tensor', 'weight: tensor', 'indices: tensor'),
  // The scale factors the user gave, if any: PyTorch maps coordinates with 1/scale then.
  upsampleNearest2d: op('tensor', U, 'size: int[]', 'scaleH: float?', 'scaleW: float?'),
  upsampleBilinear2d: op('tensor', U, 'size: int[]', 'alignCorners: bool', 'scaleH: float?', 'scaleW: float?'),
  upsampleBicubic2d: op('tensor', U, 'size: int[]', 'alignCorners: bool', 'scaleH: float?', 'scaleW: float?'),

  // --- views, joins, indexing, padding (ops_shape.cc) ----------------------------------------
  reshape: op('tensor', U, 'shape: int[]'),
  view: op('tensor', U, 'shape: int[]'),
  permute: op('tensor', U, 'dims: int[]'),
  transpose: op('tensor', U, 'dim0: int', 'dim1: int'),
  flatten: op('tensor', U, 'startDim: int', 'endDim: int'),
  squeezeAll: op('tensor', U),
  squeeze: op('tensor', U, 'dim: int'),
  unsqueeze: op('tensor', U, 'dim: int'),
  expand: op('tensor', U, 'shape: int[]'),
  repeat: op('tensor', U, 'repeats: int[]'),
  cat: op('tensor', 'tensors: tensor[]', 'dim: int'),
  stack: op('tensor', 'tensors: tensor[]', 'dim: int'),
  split: op('tensor[]', U, 'splitSize: int', 'dim: int'),
  splitWithSizes: op('tensor[]', U, 'splitSizes: int[]', 'dim: int'),
  chunk: op('tensor[]', U, 'chunks: int', 'dim: int'),
  unbind: op('tensor[]', U, 'dim: int'),
  narrow: op('tensor', U, 'dim: int', 'start: int', 'length: int'),
  select: op('tensor', U, 'dim: int', 'index: int'),
  slice: op('tensor', U, 'dim: int', 'start: int?', 'end: int?', 'step: int'),
  indexSelect: op('tensor', U, 'dim: int', 'index: tensor'),
  index: op('tensor', U, 'index: tensor'),
  gather: op('tensor', U, 'dim: int', 'index: tensor'),
  scatter: op('tensor', U, 'dim: int', 'index: tensor', 'src: tensor'),
  scatterScalar: op('tensor', U, 'dim: int', 'index: tensor', 'value: scalar'),
  scatterAdd: op('tensor', U, 'dim: int', 'index: tensor', 'src: tensor'),
  maskedSelect: op('tensor', U, 'mask: tensor'),
  nonzero: op('tensor', U),
  roll: op('tensor', U, 'shifts: int[]', 'dims: int[]'),
  flip: op('tensor', U, 'dims: int[]'),
  tril: op('tensor', U, 'diagonal: int'),
  triu: op('tensor', U, 'diagonal: int'),
  constantPad: op('tensor', U, 'pad: int[]', 'value: scalar'),
  reflectionPad2d: op('tensor', U, 'pad: int[]'),
  replicationPad2d: op('tensor', U, 'pad: int[]'),

  // --- reductions, sorting, scans (ops_reduce.cc) --------------------------------------------
  sumAll: op('tensor', U, 'dtype: dtype?'),
  sum: op('tensor', U, 'dims: int[]', 'keepdim: bool', 'dtype: dtype?'),
  meanAll: op('tensor', U),
  mean: op('tensor', U, 'dims: int[]', 'keepdim: bool'),
  prodAll: op('tensor', U),
  varAll: op('tensor', U, 'unbiased: bool'),
  var: op('tensor', U, 'dims: int[]', 'unbiased: bool', 'keepdim: bool'),
  stdAll: op('tensor', U, 'unbiased: bool'),
  std: op('tensor', U, 'dims: int[]', 'unbiased: bool', 'keepdim: bool'),
  maxAll: op('tensor', U),
  minAll: op('tensor', U),
  maxDim: op('pair', U, 'dim: int', 'keepdim: bool'),
  minDim: op('pair', U, 'dim: int', 'keepdim: bool'),
  amax: op('tensor', U, 'dims: int[]', 'keepdim: bool'),
  amin: op('tensor', U, 'dims: int[]', 'keepdim: bool'),
  argmax: op('tensor', U, 'dim: int?', 'keepdim: bool'),
  argmin: op('tensor', U, 'dim: int?', 'keepdim: bool'),
  topk: op('pair', U, 'k: int', 'dim: int', 'largest: bool', 'sorted: bool'),
  sort: op('pair', U, 'dim: int', 'descending: bool'),
  argsort: op('tensor', U, 'dim: int', 'descending: bool'),
  cumsum: op('tensor', U, 'dim: int'),
  logsumexp: op('tensor', U, 'dims: int[]', 'keepdim: bool'),
  norm: op('tensor', U, 'p: scalar', 'dims: int[]', 'keepdim: bool'),
  allAll: op('tensor', U),
  anyAll: op('tensor', U),
  countNonzero: op('tensor', U, 'dims: int[]'),
} as const satisfies Record<string, OpDecl>;

export type OpTable = typeof OP_TABLE;
export type OpName = keyof OpTable;

type KindOf<D> = D extends `${string}: ${infer K extends ArgKind}` ? K : never;
type NameOf<D> = D extends `${infer N}: ${ArgKind}` ? N : never;

/** The positional arguments of op K, typed by the table. */
export type OpArgs<K extends OpName> = ArgTypes<OpTable[K]['args']>;
type ArgTypes<A extends readonly ArgDecl[]> = { -readonly [I in keyof A]: ArgKinds[KindOf<A[I]>] };
/** The ops whose result is R (e.g. 'tensor'). */
export type OpsReturning<R extends ResultKind> = { [K in OpName]: OpTable[K]['result'] extends R ? K : never }[OpName];
/** What op K returns. */
export type OpResult<K extends OpName> = ResultKinds[OpTable[K]['result']];
/** The arguments of op K by name (the ONNX exporter and the FLOP counter read them so). */
export type NamedArgs<K extends OpName> = {
  [D in OpTable[K]['args'][number] as NameOf<D>]: ArgKinds[KindOf<D>];
};

export interface ParsedArg {
  name: string;
  kind: ArgKind;
}

const parsed = new Map<string, ParsedArg[]>();
/** The declared arguments of an op, in call order. */
export function opArgs(op: OpName): readonly ParsedArg[] {
  let p = parsed.get(op);
  if (!p) {
    p = (OP_TABLE[op].args as readonly ArgDecl[]).map((d) => {
      const i = d.indexOf(': ');
      return { name: d.slice(0, i), kind: d.slice(i + 2) as ArgKind };
    });
    parsed.set(op, p);
  }
  return p;
}

export function isOpName(name: string): name is OpName {
  return Object.hasOwn(OP_TABLE, name);
}

/** An observed call's positional arguments as a record keyed by the declared names. */
export function namedArgs<K extends OpName>(op: K, args: readonly unknown[]): NamedArgs<K> {
  const out: Record<string, unknown> = {};
  opArgs(op).forEach((a, i) => {
    out[a.name] = args[i];
  });
  return out as NamedArgs<K>;
}
