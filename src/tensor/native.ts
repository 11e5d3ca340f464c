// Loads the libtorch addon. Everything else in goodsrec talks to libtorch
// through the typed wrappers in this folder, never through this module.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Opaque handle of one native tensor. */
export interface Handle { readonly __tensorHandle: unique symbol }

export type NativeArg =
  | Handle | Handle[] | number | number[] | string | boolean | null | undefined | ArrayBufferView | ArrayBuffer;

export interface NativeBinding {
  readonly dtypeCodes: Record<string, number>;
  readonly [op: string]: unknown;
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
  const candidates = [
    process.env.GOODSREC_NATIVE,
    join(root, 'build', 'Release', 'goodsrec_native.node'),
    join(root, 'build', 'Debug', 'goodsrec_native.node'),
  ].filter((p): p is string => typeof p === 'string');
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(
      'goodsrec: the native addon is not built (looked in ' + candidates.join(', ') + ').\n' +
      'Run `npm run setup` (installs libtorch-dev when missing and builds the addon), or `npm run build:native` ' +
      'if libtorch is already installed (see README: libtorch discovery).');
  }
  const require = createRequire(import.meta.url);
  try {
    return require(found) as NativeBinding;
  } catch (e) {
    throw new Error(`goodsrec: failed to load the native addon ${found}: ${(e as Error).message}\n` +
      'If libtorch moved or was upgraded, rebuild with `npm run build:native`.');
  }
}

export const native: NativeBinding = load();

type NativeFn = (...args: NativeArg[]) => unknown;

/** Observer of every native call (the ONNX exporter's tracer); sees the op, its arguments and its result. */
export type CallHook = (op: string, args: readonly NativeArg[], result: unknown) => void;
let callHook: CallHook | null = null;

/** Installs (or with null removes) the call observer; returns the previous one. Costs one null check when off. */
export function setCallHook(hook: CallHook | null): CallHook | null {
  const prev = callHook;
  callHook = hook;
  return prev;
}

/** Calls one native op by name. Internal to src/tensor. */
export function call(op: string, ...args: NativeArg[]): unknown {
  const fn = native[op] as NativeFn | undefined;
  if (typeof fn !== 'function') throw new Error(`goodsrec: native op '${op}' is missing from the addon (rebuild it)`);
  const result = fn(...args);
  if (callHook !== null) callHook(op, args, result);
  return result;
}
