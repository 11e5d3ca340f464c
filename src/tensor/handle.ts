// What a native tensor is to TypeScript, in a file of its own so the op table (ops.ts) and the addon
// module (native.ts) can both name it without importing each other.

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
