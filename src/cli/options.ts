// One option schema for every goodsrec command: typed declarations, one parser of the raw arguments
// (unknown options are errors with a did-you-mean), one validation of each value, and the citty
// command built from them (citty renders --help and dispatches subcommands).
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { defineCommand, type ArgsDef, type CommandDef } from 'citty';
import { CONFIG_SCHEMA, DEVICE_KIND } from '../run/config-schema.js';
import { closestNames } from '../util/did-you-mean.js';
import {
  accepts as kindAccepts,
  elementsAccepted,
  isOfKind,
  type BooleanKind,
  type ElementKind,
  type EnumKind,
  type IntegerKind,
  type KindValue,
  type ListKind,
  type NumberKind,
  type PathKind,
  type StringKind,
} from '../util/value-kinds.js';
import { recoverDirAtomic } from '../util/atomic.js';
import { EXIT, reportError, UsageError, type ExitCode } from './errors.js';

/** `required`: the command cannot run without it (a usage error names it). */
interface Described {
  description: string;
  required?: boolean;
  /** The config option the flag sets (train's config flags): errors and --help name it. */
  configKey?: string;
}
export interface IntegerOption extends IntegerKind, Described {
  default?: number;
}
export interface NumberOption extends NumberKind, Described {
  default?: number;
}
export interface EnumOption<V extends string = string> extends EnumKind<V>, Described {
  default?: V;
}
/** A flag: `--name` sets it, `--no-name` clears it. */
export interface BooleanOption extends BooleanKind, Described {
  default?: boolean;
}
/** Free text; `repeatable` collects every occurrence into a list. */
export interface StringOption extends StringKind, Described {
  default?: string;
  repeatable?: boolean;
}
export interface PathOption extends PathKind, Described {}
/** Comma-separated values of one element kind. */
export interface ListOption extends ListKind, Described {}

export type OptionSpec =
  | IntegerOption
  | NumberOption
  | EnumOption
  | BooleanOption
  | StringOption
  | PathOption
  | ListOption;

export interface PositionalSpec extends Described {
  /** The remaining positionals as a list (the last positional only). */
  variadic?: boolean;
  required?: boolean;
  /** Must exist on disk. */
  exists?: 'file' | 'dir' | 'any';
}

type ValueOf<S> = S extends { repeatable: true } ? string[] : KindValue<S>;
type Always<S> = S extends { default: unknown } | { type: 'boolean' } | { repeatable: true } | { required: true }
  ? true
  : false;
export type OptionValues<O> = {
  -readonly [K in keyof O]: Always<O[K]> extends true ? ValueOf<O[K]> : ValueOf<O[K]> | undefined;
};
export type PositionalValues<P> = {
  -readonly [K in keyof P]: P[K] extends { variadic: true }
    ? string[]
    : P[K] extends { required: true }
      ? string
      : string | undefined;
};

/** `--device`: the same choices and default in every command (and the config's `device`). */
export const deviceOption = {
  ...DEVICE_KIND,
  default: 'auto',
  description: CONFIG_SCHEMA.device.doc,
} as const satisfies StringOption;

/**
 * `--max-pixels`: the decompression-bomb limit of every command that decodes images (checked from the
 * header before any pixel is allocated; it also bounds the letterbox canvas, the longer side squared).
 */
export const maxPixelsOption = {
  ...CONFIG_SCHEMA['data.maxPixels'].kind,
  default: CONFIG_SCHEMA['data.maxPixels'].default,
  description: CONFIG_SCHEMA['data.maxPixels'].doc,
} as const satisfies IntegerOption;

/** What an option accepts, in words: used by errors and --help. */
export function accepts(s: OptionSpec | ElementKind): string {
  if (s.type === 'boolean') return 'no value (a flag)';
  if (s.type === 'list') return `a comma-separated list of ${elementsAccepted(s)}`;
  return kindAccepts(s);
}

/** `--name`, and the config option it sets: `--epochs (schedule.epochs)`. */
const label = (name: string, s: OptionSpec): string => (s.configKey ? `--${name} (${s.configKey})` : `--${name}`);

function checkPath(what: string, raw: string, exists: 'file' | 'dir' | 'any'): void {
  // A folder whose atomic replacement was killed midway (a checkpoint saved again, `average` over an old one)
  // is put back first, as loading it would: it exists, only under a temporary name.
  let st: import('node:fs').Stats;
  try {
    if (!statSync(raw, { throwIfNoEntry: false })) recoverDirAtomic(resolve(raw));
    st = statSync(raw);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(`${what}: '${raw}' not found${code === 'ENOENT' ? '' : ` (${code})`}`);
  }
  if (exists === 'dir' && !st.isDirectory()) throw new UsageError(`${what}: '${raw}' is not a folder`);
  if (exists === 'file' && !st.isFile()) throw new UsageError(`${what}: '${raw}' is not a file`);
}

/** One value; `expected` (what the whole option accepts) and `whole` (its raw text) word the error. */
function element(flag: string, s: ElementKind, raw: string, whole: string, expected = accepts(s)): string | number {
  if (s.type === 'enum') {
    if (!s.values.includes(raw)) {
      const near = closestNames(raw, s.values);
      throw new UsageError(
        `${flag}: expected ${expected} but received '${raw}'${near.length ? ` (did you mean '${near[0]}'?)` : ''}`,
      );
    }
    return raw;
  }
  const n = raw.trim() === '' ? Number.NaN : Number(raw);
  if (!isOfKind(s, n)) throw new UsageError(`${flag}: expected ${expected} but received '${whole}'`);
  return n;
}

/** Converts one option's raw text to its typed value; a UsageError names the option and what it accepts. */
export function parseOptionValue(name: string, s: OptionSpec, raw: string): unknown {
  const flag = label(name, s);
  switch (s.type) {
    case 'integer':
    case 'number':
    case 'enum':
      return element(flag, s, raw, raw);
    case 'boolean':
      return raw;
    case 'string':
      if (!isOfKind(s, raw)) throw new UsageError(`${flag}: expected ${accepts(s)} but received '${raw}'`);
      return raw;
    case 'path':
      if (raw === '') throw new UsageError(`${flag}: expected ${accepts(s)} but received an empty value`);
      if (s.exists) checkPath(flag, raw, s.exists);
      return raw;
    case 'list': {
      const items = raw
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean);
      if (items.length < (s.minItems ?? 1) || (s.length !== undefined && items.length !== s.length))
        throw new UsageError(`${flag}: expected ${accepts(s)} but received '${raw}'`);
      return items.map((x) => element(flag, s.of, x, raw, accepts(s)));
    }
  }
}

const kebab = (n: string): string => n.replace(/[A-Z]/g, (m) => '-' + m.toLowerCase());

export interface ParsedCommandLine {
  options: Record<string, unknown>;
  positionals: string[];
}

/**
 * Parses raw arguments against the schema: `--name value`, `--name=value`, `--flag`, `--no-flag`, `--`.
 * Unknown options, missing values and repeated options are UsageErrors; `suggest` may add a hint for an
 * unknown name (train: `--set key=value`).
 */
export function parseCommandLine(
  spec: Record<string, OptionSpec>,
  raw: readonly string[],
  suggest?: (name: string, value: string | undefined) => string | undefined,
): ParsedCommandLine {
  const given = new Map<string, string[]>();
  const positionals: string[] = [];
  for (let i = 0; i < raw.length; i++) {
    const a = raw[i]!;
    if (a === '--') {
      positionals.push(...raw.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-' || /^-\d/.test(a)) {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = kebab(a.slice(a.startsWith('--') ? 2 : 1, eq < 0 ? undefined : eq));
    const inline = eq < 0 ? undefined : a.slice(eq + 1);
    let s = spec[name];
    let key = name;
    if (!s && name.startsWith('no-') && spec[name.slice(3)]?.type === 'boolean') {
      if (inline !== undefined) throw new UsageError(`--${name} takes no value`);
      key = name.slice(3);
      s = spec[key];
      given.set(key, [...(given.get(key) ?? []), 'false']);
      continue;
    }
    if (!s) {
      const near = closestNames(name, Object.keys(spec)).map((n) => `--${n}`);
      const next = raw[i + 1];
      const extra = suggest?.(name, inline ?? (next !== undefined && !next.startsWith('-') ? next : undefined));
      const hint = extra ?? (near.length ? `did you mean ${near.join(' or ')}?` : undefined);
      throw new UsageError(`unknown option ${a.startsWith('--') ? '--' : '-'}${name}${hint ? `; ${hint}` : ''}`);
    }
    let value: string;
    if (s.type === 'boolean') {
      if (inline !== undefined && inline !== 'true' && inline !== 'false') {
        throw new UsageError(`--${name} is a flag: give it without a value (or --no-${name}), not '${inline}'`);
      }
      value = inline ?? 'true';
    } else if (inline !== undefined) value = inline;
    else {
      const next = raw[i + 1];
      if (next === undefined || (next.startsWith('--') && next.length > 2)) {
        throw new UsageError(`${label(name, s)} needs a value: ${accepts(s)}`);
      }
      value = next;
      i++;
    }
    const prev = given.get(key) ?? [];
    if (prev.length && !(s.type === 'string' && s.repeatable)) {
      throw new UsageError(`--${name} given twice ('${prev[0]}' and '${value}'); give it once`);
    }
    given.set(key, [...prev, value]);
  }
  const options: Record<string, unknown> = {};
  for (const [name, s] of Object.entries(spec)) {
    const vals = given.get(name);
    if (s.type === 'string' && s.repeatable) {
      options[name] = (vals ?? []).map((v) => parseOptionValue(name, s, v));
    } else if (vals) {
      options[name] = s.type === 'boolean' ? vals[0] === 'true' : parseOptionValue(name, s, vals[0]!);
    } else if (s.type === 'boolean') options[name] = s.default ?? false;
    else if ('default' in s && s.default !== undefined) options[name] = s.default;
    else if (s.required) throw new UsageError(`missing --${name}: ${s.description} (${accepts(s)})`);
  }
  return { options, positionals };
}

function bindPositionals(
  spec: Record<string, PositionalSpec>,
  given: string[],
  command: string,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const names = Object.keys(spec);
  let i = 0;
  for (const name of names) {
    const s = spec[name]!;
    const v = s.variadic ? given.slice(i) : given[i];
    i = s.variadic ? given.length : i + 1;
    const missing = v === undefined || (Array.isArray(v) && v.length === 0);
    if (missing && s.required)
      throw new UsageError(`missing ${name.toUpperCase()}: ${s.description}`, `usage: see goodsrec ${command} --help`);
    if (!missing && s.exists) for (const p of Array.isArray(v) ? v : [v]) checkPath(name.toUpperCase(), p, s.exists);
    out[name] = v;
  }
  if (i < given.length)
    throw new UsageError(
      `unexpected argument '${given[i]}' (goodsrec ${command} takes ${names.map((n) => n.toUpperCase()).join(', ') || 'no arguments'})`,
    );
  return out;
}

export interface CliCommand<O extends Record<string, OptionSpec>, P extends Record<string, PositionalSpec>> {
  name: string;
  description: string;
  positionals?: P;
  options: O;
  /** A hint for an unknown option (e.g. the config key it may mean). */
  suggest?: (name: string, value: string | undefined) => string | undefined;
  /** Returns an exit code (EXIT.partial when some inputs were skipped), or nothing for success. */
  run(ctx: {
    options: OptionValues<O>;
    args: PositionalValues<P>;
    rawArgs: readonly string[];
    // biome-ignore lint/suspicious/noConfusingVoidType: a command may return nothing (exit code 0)
  }): Promise<ExitCode | void> | ExitCode | void;
}

/** A citty command whose arguments are parsed and validated by the schema; errors take the one error path. */
export function defineCliCommand<
  const O extends Record<string, OptionSpec>,
  // biome-ignore lint/complexity/noBannedTypes: {} = no positionals; Record<string, never> breaks the inference of P
  const P extends Record<string, PositionalSpec> = {},
>(c: CliCommand<O, P>): CommandDef<ArgsDef> {
  const args: ArgsDef = {};
  for (const [name, s] of Object.entries(c.positionals ?? {})) {
    args[name] = { type: 'positional', description: s.description, required: Boolean(s.required) };
  }
  for (const [name, s] of Object.entries(c.options)) {
    const def = 'default' in s && s.default !== undefined ? String(s.default) : undefined;
    const what = s.type === 'boolean' || (s.type === 'string' && !s.expected) ? '' : ` [${accepts(s)}]`;
    const desc = `${s.description}${s.configKey ? ` (${s.configKey})` : ''}${what}`;
    args[name] =
      s.type === 'boolean'
        ? { type: 'boolean', description: desc, ...(s.default === true ? { default: true } : {}) }
        : { type: 'string', description: desc, ...(def !== undefined ? { default: def } : {}) };
  }
  return defineCommand({
    meta: { name: c.name, description: c.description },
    args,
    async run({ rawArgs }) {
      try {
        const parsed = parseCommandLine(c.options, rawArgs, c.suggest);
        const positional = bindPositionals(c.positionals ?? {}, parsed.positionals, c.name);
        const code = await c.run({
          options: parsed.options as OptionValues<O>,
          args: positional as PositionalValues<P>,
          rawArgs,
        });
        if (code !== undefined && code !== EXIT.ok) process.exitCode = code;
      } catch (e) {
        reportError(e, c.name);
      }
    },
  });
}
