// The libtorch addon (found and loaded by src/util/addon.ts). Everything else in goodsrec talks to
// libtorch through the typed wrappers in this folder, never through this module.
import { loadAddon, type LibtorchVersions } from '../util/addon.js';
import type { NativeArg } from './handle.js';
import { OP_TABLE, opArgs, isOpName, type OpArgs, type OpName, type OpResult } from './ops.js';

export type { Handle, NativeArg } from './handle.js';

type OpFunctions = { readonly [K in OpName]: (...args: OpArgs<K>) => OpResult<K> };

export type { LibtorchVersions };

/** The addon's exports: every op of the table (src/tensor/ops.ts), typed by it. */
export interface NativeBinding extends OpFunctions {
  readonly dtypeCodes: Record<string, number>;
  readonly libtorch: LibtorchVersions;
}

function load(): NativeBinding {
  // libgomp reads this when the addon loads: spin-waiting threads make every
  // step 5-10x slower when data loading or other processes share the cores.
  process.env.OMP_WAIT_POLICY ??= 'PASSIVE';
  const { exports: binding, file } = loadAddon<NativeBinding>('native');
  const exported = binding as unknown as Record<string, unknown>;
  const missing = Object.keys(OP_TABLE).filter((op) => typeof exported[op] !== 'function');
  if (missing.length > 0) {
    throw new Error(
      `goodsrec: the native addon ${file} lacks ${missing.length} op(s) of src/tensor/ops.ts ` +
        `(${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}): it is older than the code; ` +
        'rebuild it with `npm run build:native`.',
    );
  }
  return binding;
}

export const native: NativeBinding = load();

/** Observer of every native call (the ONNX exporter's tracer); sees the op, its arguments and its result. */
export type CallHook = (op: OpName, args: readonly NativeArg[], result: unknown) => void;
let callHook: CallHook | null = null;

/** Installs (or with null removes) the call observer; returns the previous one. Costs one null check when off. */
export function setCallHook(hook: CallHook | null): CallHook | null {
  const prev = callHook;
  callHook = hook;
  return prev;
}

/** Calls one native op by name with the arguments its declaration in ops.ts gives. Internal to src/tensor. */
export function call<K extends OpName>(op: K, ...args: OpArgs<K>): OpResult<K> {
  const fn = native[op] as (...a: readonly unknown[]) => OpResult<K>;
  let result: OpResult<K>;
  try {
    result = fn(...args);
  } catch (e) {
    throw nameArgument(op, e);
  }
  if (callHook !== null) callHook(op, args as readonly NativeArg[], result);
  return result;
}

/** Adds the declared argument name to the addon's "op: argument 3 must be ..." messages. */
function nameArgument(op: OpName, e: unknown): unknown {
  if (!(e instanceof Error)) return e;
  const m = /^(\w+): argument (\d+) /.exec(e.message);
  if (!m || m[1] !== op) return e;
  const arg = opArgs(op)[Number(m[2])];
  if (!arg) return e;
  const named = new (e.constructor as ErrorConstructor)(
    e.message.replace(m[0], `${op}: argument ${m[2]} (${arg.name}: ${arg.kind}) `),
    { cause: e },
  );
  return named;
}

export { isOpName };
