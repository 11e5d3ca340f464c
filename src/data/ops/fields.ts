/**
 * Field types and checks shared by the op files: each check throws naming the field and what it
 * accepts ("Expected ... for pipeline.ops[i].size but received ...").
 */
import type { Rgb } from '../pil-pixels.js';

/** A size: one number (square, or the shorter side for resize 'shorter') or [height, width]. */
export type Size = number | [number, number];
/** Padding colour: black, the dataset / normalisation mean, or explicit 8-bit RGB. */
export type FillSpec = 'black' | 'mean' | [number, number, number];
export type Triple = [number, number, number];

export function invalid(name: string, expected: string, actual: unknown): Error {
  return new Error(`Expected ${expected} for ${name} but received ${JSON.stringify(actual)} of type ${typeof actual}`);
}
export const isPosInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;
export const isTriple = (v: unknown): v is Triple =>
  Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x));
const isRange = (v: unknown): v is [number, number] =>
  Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number' && Number.isFinite(x)) && v[0] <= v[1];

export function checkSize(name: string, v: unknown): void {
  if (!(isPosInt(v) || (Array.isArray(v) && v.length === 2 && v.every(isPosInt))))
    throw invalid(name, 'a positive integer or [height, width]', v);
}
export function checkFill(name: string, v: unknown): void {
  if (v === undefined || v === 'black' || v === 'mean') return;
  if (!isTriple(v) || v.some((x) => x < 0 || x > 255)) throw invalid(name, "'black', 'mean' or [r, g, b] in 0..255", v);
}
export function checkInterpolation(name: string, v: unknown): void {
  if (v !== undefined && v !== 'bilinear' && v !== 'bicubic') throw invalid(name, "'bilinear' or 'bicubic'", v);
}
export function checkProb(name: string, v: unknown): void {
  if (v !== undefined && !(typeof v === 'number' && v >= 0 && v <= 1))
    throw invalid(name, 'a probability in [0, 1]', v);
}
/** An optional crop-area fraction range within (0, 1]. */
export function checkScale(name: string, v: unknown): void {
  if (v !== undefined && !(isRange(v) && v[0] > 0 && v[1] <= 1)) throw invalid(name, '[min, max] within (0, 1]', v);
}
/** An optional aspect-ratio range > 0. */
export function checkRatio(name: string, v: unknown): void {
  if (v !== undefined && !(isRange(v) && v[0] > 0)) throw invalid(name, '[min, max] > 0', v);
}
/** An optional integer range >= 1. */
export function checkCount(name: string, v: unknown): void {
  if (v !== undefined && !(isRange(v) && v[0] >= 1 && v.every(Number.isInteger)))
    throw invalid(name, '[min, max] integers >= 1', v);
}
/** An optional value among `values`. */
export function checkOneOf(name: string, v: unknown, values: readonly string[]): void {
  if (v === undefined || (typeof v === 'string' && values.includes(v))) return;
  throw invalid(name, names(values.map((x) => `'${x}'`)), v);
}

/** 'a', 'a or b', 'a, b or c'. */
export function names(items: readonly string[], last = 'or'): string {
  return items.length < 2 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} ${last} ${items.at(-1)}`;
}

/** [height, width] of a Size. */
export const hw = (s: Size): [number, number] => (typeof s === 'number' ? [s, s] : s);

/** The 8-bit colour of a fill (`dflt` when absent); 'mean' must have been resolved (resolvePipeline). */
export function fillRgb(f: FillSpec | undefined, dflt: Rgb): Rgb {
  if (f === undefined) return dflt;
  if (f === 'black') return [0, 0, 0];
  if (f === 'mean') throw new Error("pipeline: fill 'mean' is unresolved; call resolvePipeline first");
  return f;
}
