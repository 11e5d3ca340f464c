// Records a model's real forward pass as an ONNX graph: every native call is
// observed (setCallHook in src/tensor/native.ts) and mapped to ONNX nodes by
// the table in ops.ts. Parameters and buffers become initializers named by
// their state-dict keys; dimension 0 stays symbolic ('batch').
import { call, setCallHook, type Handle, type NativeArg } from '../../tensor/native.js';
import { isOpName, namedArgs, type OpName } from '../../tensor/ops.js';
import * as T from '../../tensor/index.js';
import { dtypeCode, dtypeFromCode } from '../../tensor/dtype.js';
import type { Module } from '../../nn/module.js';
import { GraphBuilder } from './graph.js';
import { OPS, type OpContext, type OpHandler, type Value } from './ops.js';

/** An op the exporter cannot express, with the module whose forward called it. */
export class UnsupportedOpError extends Error {
  readonly op: string;
  readonly module: string;
  constructor(op: string, module: string, detail: string) {
    super(`ONNX export: native op '${op}' in module ${module} ${detail}`);
    this.name = 'UnsupportedOpError';
    this.op = op;
    this.module = module;
  }
}

/** A graph output: its name and dims without the batch dimension, e.g. [numClasses]. */
export interface TracedOutput {
  name: string;
  dims: number[];
}

export interface TraceResult {
  graph: GraphBuilder;
  input: string;
  output: string;
  /** Input dims without the batch dimension, e.g. [3, 224, 224]. */
  inputDims: number[];
  /** Output dims without the batch dimension, e.g. [numClasses]. */
  outputDims: number[];
  /** Every output, the first one being output/outputDims. */
  outputs: TracedOutput[];
}

/** What a traced forward returns: output name -> tensor (the first one is the graph's main output). */
export type TracedForward = (x: T.Tensor) => Record<string, T.Tensor>;

type HandleObj = Handle;

function isHandle(v: unknown): v is Handle {
  return (
    typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v) && !(v instanceof ArrayBuffer)
  );
}

/** Ops whose result reads a tensor's values: fine on constants, impossible on traced activations. */
const READS_VALUES = new Set<OpName>(['item', 'toBuffer', 'equal', 'allclose', 'nonzero', 'maskedSelect']);

/**
 * Runs model.forward(example) in eval mode under noGrad and returns the graph it
 * recorded. `example` must be [B, C, H, W] with B >= 2 so the batch dimension
 * can be told apart from the others. Initializers take their names from `names`
 * (default: the model's state dict); error messages name modules by their paths
 * under `labelled` (prefix -> module; default: the model itself).
 */
export function traceModel(
  model: Module,
  example: T.Tensor,
  names: ReadonlyMap<string, T.Tensor> = model.stateTensors(),
  labelled: ReadonlyMap<string, Module> = new Map([['', model]]),
  forward: TracedForward = (x) => ({ logits: model.forward(x) }),
): TraceResult {
  if (example.ndim < 1 || example.shape[0]! < 2)
    throw new RangeError(
      `traceModel: the example input needs a batch of at least 2, got [${example.shape.join(', ')}]`,
    );
  if (model.training) throw new Error('traceModel: put the model in eval mode first (model.eval())');
  const batch = example.shape[0]!;
  const g = new GraphBuilder();
  const values = new Map<HandleObj, Value>();
  const stateByHandle = new Map<HandleObj, { name: string; tensor: T.Tensor }>();
  for (const [name, t] of names) stateByHandle.set(t.handle as unknown as HandleObj, { name, tensor: t });
  const stack: string[] = [];
  let busy = false;
  let constCount = 0;

  const internal = <R>(fn: () => R): R => {
    const was = busy;
    busy = true;
    try {
      return fn();
    } finally {
      busy = was;
    }
  };
  const shapeOf = (h: HandleObj): number[] => internal(() => call('shape', h));
  const where = (): string => (stack.length ? stack[stack.length - 1]! : '<model>');

  // A tensor not computed from the input (parameter, buffer, constant made in forward) becomes an initializer.
  const constantOf = (h: HandleObj): Value =>
    internal(() => {
      const state = stateByHandle.get(h);
      const shape = shapeOf(h);
      const dtype = dtypeFromCode(call('dtype', h));
      let data: Float32Array | BigInt64Array;
      if (dtype === 'float32') data = new Float32Array(call('toBuffer', h));
      else if (dtype === 'int64') data = new BigInt64Array(call('toBuffer', h));
      else if (dtype === 'float16' || dtype === 'bfloat16' || dtype === 'float64') {
        const f = call('to', h, dtypeCode('float32'), null, true, false);
        data = new Float32Array(call('toBuffer', f));
        call('dispose', f);
      } else
        throw new UnsupportedOpError(
          'constant',
          where(),
          `uses a ${dtype} tensor (only float and int64 tensors export)`,
        );
      const name = g.initializer(state?.name ?? `const_${constCount++}`, shape, data);
      const v: Value = { name, shape, batched: false };
      values.set(h, v);
      return v;
    });

  const ctx: OpContext = {
    g,
    batch,
    value(a: NativeArg): Value {
      if (!isHandle(a)) throw new TypeError('expected a tensor argument');
      return values.get(a) ?? constantOf(a);
    },
    where,
  };

  const hook = (op: OpName, args: readonly NativeArg[], result: unknown): void => {
    if (busy) return;
    const tensorArgs: HandleObj[] = [];
    for (const a of args) {
      if (isHandle(a)) tensorArgs.push(a);
      else if (Array.isArray(a)) for (const x of a) if (isHandle(x)) tensorArgs.push(x);
    }
    const traced = tensorArgs.some((h) => values.has(h) && !stateByHandle.has(h));
    if (!traced) {
      // Computation on constants only (creation ops, metadata, frees): folded at export time.
      return;
    }
    if (READS_VALUES.has(op))
      throw new UnsupportedOpError(
        op,
        where(),
        'reads the values of an activation (data-dependent control flow cannot be exported)',
      );
    const inPlace = op.endsWith('_') && isHandle(args[0]);
    const resultHandles: HandleObj[] = isHandle(result)
      ? [result]
      : Array.isArray(result) && result.every(isHandle) && result.length > 0
        ? (result as HandleObj[])
        : [];
    if (!inPlace && resultHandles.length === 0) return; // metadata (shape, dtype, ...), dispose
    if (inPlace && !values.has(args[0] as HandleObj))
      throw new UnsupportedOpError(
        op,
        where(),
        'writes into a tensor that was not computed from the input (cannot be exported)',
      );
    const base = inPlace ? op.slice(0, -1) : op;
    // An in-place op's arguments carry the same names as its out-of-place op's.
    const handler = (OPS[op] ?? (isOpName(base) ? OPS[base] : undefined)) as OpHandler | undefined;
    if (!handler) throw new UnsupportedOpError(op, where(), 'has no ONNX mapping (add one in src/serve/onnx/ops.ts)');
    const outShapes = (inPlace ? [args[0] as HandleObj] : resultHandles).map(shapeOf);
    let out: Value[];
    try {
      out = internal(() => handler(ctx, namedArgs(op, args), outShapes));
    } catch (e) {
      if (e instanceof UnsupportedOpError) throw e;
      throw new UnsupportedOpError(op, where(), `cannot be exported: ${(e as Error).message}`);
    }
    if (inPlace) values.set(args[0] as HandleObj, out[0]!);
    else resultHandles.forEach((h, i) => values.set(h, out[i]!));
  };

  // Each module's forward pushes its state-dict path, so errors name the module.
  const restore: (() => void)[] = [];
  const modules = new Map<Module, string>(
    [...labelled].flatMap(([prefix, root]) =>
      root.namedModules().map(([n, m]): [Module, string] => [m, prefix && n ? `${prefix}.${n}` : prefix || n]),
    ),
  );
  if (!modules.has(model)) modules.set(model, '');
  for (const [m, name] of modules) {
    const own = Object.hasOwn(m, 'forward');
    const prev = m.forward;
    const label = `'${name || '<root>'}' (${m.constructor.name})`;
    Object.defineProperty(m, 'forward', {
      configurable: true,
      writable: true,
      value: function traced(x: T.Tensor): T.Tensor {
        stack.push(label);
        try {
          return prev.call(m, x);
        } finally {
          stack.pop();
        }
      },
    });
    restore.push(() => {
      if (own) Object.defineProperty(m, 'forward', { configurable: true, writable: true, value: prev });
      else delete (m as unknown as Record<string, unknown>).forward;
    });
  }

  const input = 'input';
  values.set(example.handle as unknown as HandleObj, { name: input, shape: [...example.shape], batched: true });
  const prevHook = setCallHook(hook);
  const outputs: TracedOutput[] = [];
  try {
    const ys = T.tidy(() => T.noGrad(() => forward(example)));
    try {
      for (const [name, y] of Object.entries(ys)) {
        const v = values.get(y.handle as unknown as HandleObj);
        if (!v) throw new Error(`traceModel: output '${name}' does not depend on the input`);
        if (!v.batched) throw new Error(`traceModel: output '${name}' lost the batch dimension`);
        outputs.push({ name: g.node('Identity', [v.name], {}, [name]), dims: v.shape.slice(1) });
      }
    } finally {
      for (const y of Object.values(ys)) y.dispose();
    }
    if (!outputs.length) throw new Error('traceModel: the forward returned no output');
  } finally {
    setCallHook(prevHook);
    for (const r of restore.reverse()) r();
  }
  return {
    graph: g,
    input,
    output: outputs[0]!.name,
    inputDims: example.shape.slice(1),
    outputDims: outputs[0]!.dims,
    outputs,
  };
}
