// Loads the libtorch addon. Everything else in goodsrec talks to libtorch
// through the typed wrappers in this folder, never through this module.
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OP_TABLE, opArgs, isOpName, type OpArgs, type OpName, type OpResult } from './ops.js';

/** Opaque handle of one native tensor. */
export interface Handle {
  readonly __tensorHandle: unique symbol;
}

export type NativeArg =
  | Handle
  | readonly Handle[]
  | number
  | readonly number[]
  | string
  | boolean
  | null
  | undefined
  | ArrayBufferView
  | ArrayBuffer;

type OpFunctions = { readonly [K in OpName]: (...args: OpArgs<K>) => OpResult<K> };

/** The libtorch the addon was compiled against and the one this process loaded. */
export interface LibtorchVersions {
  compiled: string;
  runtime: string;
  library: string;
}

/** The addon's exports: every op of the table (src/tensor/ops.ts), typed by it. */
export interface NativeBinding extends OpFunctions {
  readonly dtypeCodes: Record<string, number>;
  readonly libtorch: LibtorchVersions;
}

function packageRoot(): string {
  // dist/src/tensor/native.js or src/tensor/native.ts -> package root
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'binding.gyp'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('goodsrec: cannot find the package root (binding.gyp) above ' + fileURLToPath(import.meta.url));
}

function load(): NativeBinding {
  // libgomp reads this when the addon loads: spin-waiting threads make every
  // step 5-10x slower when data loading or other processes share the cores.
  process.env.OMP_WAIT_POLICY ??= 'PASSIVE';
  const root = packageRoot();
  // GOODSREC_ADDON_DIR (e.g. the sanitizer build, scripts/fuzz) is the only place looked in when set.
  const dir = process.env.GOODSREC_ADDON_DIR;
  const candidates = (
    dir
      ? [join(dir, 'goodsrec_native.node')]
      : [
          process.env.GOODSREC_NATIVE,
          join(root, 'build', 'Release', 'goodsrec_native.node'),
          join(root, 'build', 'Debug', 'goodsrec_native.node'),
        ]
  ).filter((p): p is string => typeof p === 'string');
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(
      'goodsrec: the native addon is not built (looked in ' +
        candidates.join(', ') +
        ').\n' +
        'Run `npm run setup` (installs libtorch-dev when missing and builds the addon), or `npm run build:native` ' +
        'if libtorch is already installed (see README: libtorch discovery).',
    );
  }
  const require = createRequire(import.meta.url);
  let binding: NativeBinding;
  try {
    binding = require(found) as NativeBinding;
  } catch (e) {
    const why = (e as Error).message;
    const compiled = compiledLibtorch(found);
    // Another libtorch lacks symbols this one had, or none is found: the loader's own words, after ours.
    if (compiled && /undefined symbol|libtorch|libc10/.test(why)) {
      throw new Error(
        `goodsrec: the native addon ${found} was compiled against libtorch ${compiled}, ` +
          `but the libtorch this process loads does not match it (${loaderReason(why)}); rebuild the addon with ` +
          '`npm run build:native` (or point LIBTORCH / the library path at the libtorch it was built with).',
      );
    }
    throw new Error(
      `goodsrec: failed to load the native addon ${found}: ${why}\n` +
        'If libtorch moved or was upgraded, rebuild with `npm run build:native`.',
    );
  }
  const mismatch = libtorchMismatch(binding.libtorch, found);
  if (mismatch) throw new Error(mismatch);
  const exported = binding as unknown as Record<string, unknown>;
  const missing = Object.keys(OP_TABLE).filter((op) => typeof exported[op] !== 'function');
  if (missing.length > 0) {
    throw new Error(
      `goodsrec: the native addon ${found} lacks ${missing.length} op(s) of src/tensor/ops.ts ` +
        `(${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}): it is older than the code; ` +
        'rebuild it with `npm run build:native`.',
    );
  }
  return binding;
}

/** The dynamic loader's reason without the file paths it repeats. */
function loaderReason(message: string): string {
  const m = /undefined symbol: \S+|[^\s:]+: cannot open shared object file/.exec(message);
  return m ? m[0] : message.split(': ').slice(-1)[0]!;
}

/** "1.13.0+cpu" -> "1.13.0": local build suffixes do not change the ABI. */
function releaseOf(version: string): string {
  return version.split('+')[0]!.trim();
}

/**
 * The one-sentence error when the addon was compiled against another libtorch than the one the
 * process loaded (null when they agree). Exported for its test.
 */
export function libtorchMismatch(v: LibtorchVersions | undefined, addon: string): string | null {
  if (!v) {
    return (
      `goodsrec: the native addon ${addon} predates the libtorch version check; ` +
      'rebuild it with `npm run build:native`.'
    );
  }
  if (v.runtime === 'unknown' || releaseOf(v.compiled) === releaseOf(v.runtime)) return null;
  return (
    `goodsrec: the native addon ${addon} was compiled against libtorch ${v.compiled}, but this process loaded ` +
    `libtorch ${v.runtime} from ${v.library}; rebuild the addon with \`npm run build:native\` ` +
    '(or point LIBTORCH / the library path at the libtorch it was built with).'
  );
}

/** The libtorch version recorded in an addon file (a marker string native/addon.cc embeds), for load errors. */
export function compiledLibtorch(addonFile: string): string | null {
  try {
    const m = /GOODSREC_LIBTORCH_VERSION=([^;\0]+);/.exec(readFileSync(addonFile).toString('latin1'));
    return m ? m[1]! : null;
  } catch {
    return null;
  }
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
