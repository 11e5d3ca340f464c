// Attention modules chosen by name (timm's create_attn): blocks call
// createAttn(name, channels) and keep the result in a slot named `se`
// whichever module fills it, so state-dict keys don't depend on the choice.
import type { Module } from '../module.js';

/** Builds an attention module for `channels` channels; extra options come from the block. */
export type AttnFactory = (channels: number, options?: Readonly<Record<string, number | string | boolean>>) => Module;

const ATTN = new Map<string, AttnFactory>();

/** Makes an attention type available to createAttn (the model zoo registers 'se', 'cbam', ...). */
export function registerAttn(name: string, factory: AttnFactory): void {
  if (ATTN.has(name)) process.emitWarning(`registerAttn: '${name}' registered twice; the later factory wins`);
  ATTN.set(name, factory);
}

export function listAttn(): string[] {
  return [...ATTN.keys()].sort();
}

/** The attention module for a name, or null for no attention (null, undefined, '' or 'none'). */
export function createAttn(
  name: string | null | undefined,
  channels: number,
  options?: Readonly<Record<string, number | string | boolean>>,
): Module | null {
  if (name === null || name === undefined || name === '' || name === 'none') return null;
  const f = ATTN.get(name);
  if (!f)
    throw new TypeError(
      `Expected an attention layer name (${['none', ...listAttn()].join(', ')}) but received '${name}'`,
    );
  return f(channels, options);
}
