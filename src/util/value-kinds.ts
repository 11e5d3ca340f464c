// The kinds of value a setting takes (integer or number with bounds, enum, boolean, text, path, list,
// null, one of several), shared by the command-line options (src/cli/options.ts) and the run config
// (src/run/config-schema.ts): one definition of each kind, its check, its words ("an integer >= 1") and
// its TypeScript type.

/** `min`/`max` are inclusive bounds. */
export interface IntegerKind {
  type: 'integer';
  min?: number;
  max?: number;
}
/** `min`/`max` are inclusive bounds, `above`/`below` exclusive. */
export interface NumberKind {
  type: 'number';
  min?: number;
  max?: number;
  above?: number;
  below?: number;
}
export interface EnumKind<V extends string = string> {
  type: 'enum';
  values: readonly V[];
}
/** true or false. */
export interface BooleanKind {
  type: 'boolean';
}
/** Text; `expected` words what the pattern accepts. */
export interface StringKind {
  type: 'string';
  nonEmpty?: boolean;
  pattern?: RegExp;
  expected?: string;
}
/** A path (never empty); with `exists` it must exist, and be a file or folder, where it is checked (the CLI). */
export interface PathKind {
  type: 'path';
  exists?: 'file' | 'dir' | 'any';
}
export type ElementKind = IntegerKind | NumberKind | EnumKind;
/** A list of one element kind: `length` items exactly (a tuple), or `minItems` or more. */
export interface ListKind {
  type: 'list';
  of: ElementKind;
  minItems?: number;
  length?: number;
}
export interface NullKind {
  type: 'null';
}
/** A value of any of the kinds (e.g. null or a number, 'dataset' or a list of 3 numbers). */
export interface EitherKind {
  type: 'either';
  of: readonly ValueKind[];
}
export type ValueKind =
  | IntegerKind
  | NumberKind
  | EnumKind
  | BooleanKind
  | StringKind
  | PathKind
  | ListKind
  | NullKind
  | EitherKind;

type Tuple<E, N extends number, Acc extends E[] = []> = Acc['length'] extends N ? Acc : Tuple<E, N, [...Acc, E]>;
/** The TypeScript type of a kind's values. */
export type KindValue<K> = K extends { type: 'integer' | 'number' }
  ? number
  : K extends { type: 'enum'; values: readonly (infer V)[] }
    ? V
    : K extends { type: 'boolean' }
      ? boolean
      : K extends { type: 'string' | 'path' }
        ? string
        : K extends { type: 'null' }
          ? null
          : K extends { type: 'list'; of: infer E; length: infer N extends number }
            ? Tuple<KindValue<E>, N>
            : K extends { type: 'list'; of: infer E }
              ? KindValue<E>[]
              : K extends { type: 'either'; of: readonly (infer A)[] }
                ? KindValue<A>
                : never;

// Builders, so a table of kinds reads as one line each; `const` keeps the literal types KindValue needs.
export const int = <const B extends Omit<IntegerKind, 'type'>>(b: B = {} as B) => ({ type: 'integer', ...b }) as const;
export const num = <const B extends Omit<NumberKind, 'type'>>(b: B = {} as B) => ({ type: 'number', ...b }) as const;
export const oneOf = <const V extends string>(values: readonly V[]) => ({ type: 'enum', values }) as const;
export const bool = { type: 'boolean' } as const;
export const str = <const B extends Omit<StringKind, 'type'>>(b: B = {} as B) => ({ type: 'string', ...b }) as const;
export const path = { type: 'path' } as const;
export const listOf = <const E extends ElementKind, const B extends Omit<ListKind, 'type' | 'of'>>(
  of: E,
  b: B = {} as B,
) => ({ type: 'list', of, ...b }) as const;
export const either = <const A extends readonly ValueKind[]>(...of: A) => ({ type: 'either', of }) as const;
export const nullable = <const K extends ValueKind>(k: K) => either({ type: 'null' } as const, k);

/** A bound in words: pi/2 rather than its 16 digits. */
function bound(n: number): string {
  const k = [1, 2, 3, 4, 6].find((d) => n === Math.PI / d);
  return k === undefined ? String(n) : k === 1 ? 'pi' : `pi/${k}`;
}

function bounds(s: { min?: number; max?: number; above?: number; below?: number }): string {
  const parts: string[] = [];
  if (s.above !== undefined) parts.push(`> ${bound(s.above)}`);
  if (s.min !== undefined) parts.push(`>= ${bound(s.min)}`);
  if (s.below !== undefined) parts.push(`< ${bound(s.below)}`);
  if (s.max !== undefined) parts.push(`<= ${bound(s.max)}`);
  return parts.length ? ' ' + parts.join(' and ') : '';
}

const orList = (words: readonly string[]): string => words.join(', ').replace(/, ([^,]*)$/, ' or $1');

/** What a list's elements are, in the plural: "integers >= 16", "'flip' or 'zoom'". */
export function elementsAccepted(s: ListKind): string {
  return s.of.type === 'enum' ? accepts(s.of) : `${s.of.type}s${bounds(s.of)}`;
}

/** What a kind accepts, in words (errors and --help): "an integer >= 1", "'sgd' or 'adamw'", "true or false". */
export function accepts(s: ValueKind): string {
  switch (s.type) {
    case 'integer':
      return s.min !== undefined && s.min === s.max ? String(s.min) : `an integer${bounds(s)}`;
    case 'number':
      return `a number${bounds(s)}`;
    case 'enum':
      return orList(s.values.map((v) => `'${v}'`));
    case 'boolean':
      return 'true or false';
    case 'string':
      return s.expected ?? (s.nonEmpty ? 'a non-empty string' : 'a string');
    case 'path':
      return s.exists === 'dir'
        ? 'an existing folder'
        : s.exists === 'file'
          ? 'an existing file'
          : s.exists
            ? 'an existing path'
            : 'a path';
    case 'list': {
      const n = s.length ?? (s.minItems !== undefined && s.minItems > 1 ? `${s.minItems} or more` : undefined);
      return `a list of ${n !== undefined ? `${n} ` : ''}${elementsAccepted(s)}`;
    }
    case 'null':
      return 'null';
    case 'either':
      return orList(s.of.map(accepts));
  }
}

function inBounds(s: { min?: number; max?: number; above?: number; below?: number }, n: number): boolean {
  return (
    (s.min === undefined || n >= s.min) &&
    (s.max === undefined || n <= s.max) &&
    (s.above === undefined || n > s.above) &&
    (s.below === undefined || n < s.below)
  );
}

/** Whether a (JSON) value is of the kind. Existence of a path is not checked here (see PathKind). */
export function isOfKind(s: ValueKind, v: unknown): boolean {
  switch (s.type) {
    case 'integer':
      return Number.isInteger(v) && inBounds(s, v as number);
    case 'number':
      return typeof v === 'number' && Number.isFinite(v) && inBounds(s, v);
    case 'enum':
      return typeof v === 'string' && s.values.includes(v);
    case 'boolean':
      return typeof v === 'boolean';
    case 'string':
      return typeof v === 'string' && !(s.nonEmpty && v === '') && (!s.pattern || s.pattern.test(v));
    case 'path':
      return typeof v === 'string' && v !== '';
    case 'list':
      return (
        Array.isArray(v) &&
        (s.length === undefined || v.length === s.length) &&
        v.length >= (s.minItems ?? 0) &&
        v.every((x) => isOfKind(s.of, x))
      );
    case 'null':
      return v === null;
    case 'either':
      return s.of.some((k) => isOfKind(k, v));
  }
}
