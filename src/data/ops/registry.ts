/**
 * The transform ops, one file each. Adding one: its file (an `OpSpec`), and its entry in `OP_LIST`
 * below; `TransformOp` and every dispatch follow from this list. The order is the one error messages
 * list them in.
 */
import { autoAugment } from './auto-augment.js';
import { centerCrop } from './center-crop.js';
import { colorJitter } from './color-jitter.js';
import { cutout } from './cutout.js';
import { hflip } from './hflip.js';
import { letterbox } from './letterbox.js';
import { normalize } from './normalize.js';
import type { OpOptions, OpSpec } from './op.js';
import { randAugment } from './rand-augment.js';
import { randomErasing } from './random-erasing.js';
import { randomResizedCrop } from './random-resized-crop.js';
import { resize } from './resize.js';

export const OP_LIST = [
  letterbox,
  resize,
  centerCrop,
  randomResizedCrop,
  hflip,
  colorJitter,
  autoAugment,
  randAugment,
  normalize,
  cutout,
  randomErasing,
] as const;

type OptionsOf<S> = S extends OpSpec<infer O> ? O : never;
/** One op of a pipeline config: the options of one of the registered ops. */
export type TransformOp = OptionsOf<(typeof OP_LIST)[number]>;
export type OpName = TransformOp['op'];

const BY_NAME: ReadonlyMap<string, OpSpec<TransformOp>> = new Map(OP_LIST.map((s) => [s.name, s]));

/** The spec of a registered op name; undefined for anything else. */
export function findOp(name: unknown): OpSpec<TransformOp> | undefined {
  return typeof name === 'string' ? BY_NAME.get(name) : undefined;
}

/** The spec of a (validated) op. */
export function opSpec(o: TransformOp): OpSpec<TransformOp> {
  const s = BY_NAME.get(o.op);
  if (!s) throw new Error(`pipeline: unknown op '${String(o.op)}'`);
  return s;
}

/**
 * What is wrong with a list of op specs as a registry (empty when nothing): a name used twice, not
 * exactly one 'normalize'-stage op, or an op allowed at eval time that the browser page could not run
 * as the server does (no browser version, draws from the rng, or comes after normalize, where the
 * page's pipeline has ended).
 */
export function registryProblems(specs: readonly OpSpec<OpOptions>[]): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const s of specs) {
    if (seen.has(s.name)) problems.push(`'${s.name}' is registered twice`);
    seen.add(s.name);
    if (!s.eval) continue;
    if (s.browser === 'server-only')
      problems.push(`'${s.name}' is allowed at eval time but is server-only: the browser page could not run it`);
    if (!s.deterministic) problems.push(`'${s.name}' is allowed at eval time but draws from the rng`);
    if (s.stage === 'normalized')
      problems.push(`'${s.name}' is allowed at eval time but comes after normalize, where the page stops`);
  }
  const norm = specs.filter((s) => s.stage === 'normalize').length;
  if (norm !== 1) problems.push(`${norm} ops have stage 'normalize' (the pipeline needs exactly one)`);
  return problems;
}
