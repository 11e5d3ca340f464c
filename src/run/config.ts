// Training configuration: the recipe's defaults, a YAML/JSON file, flags and `key=value` overrides,
// resolved into one validated object that is stored with the run. Everything here is derived from the
// one table of options, CONFIG_SCHEMA (src/run/config-schema.ts).
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { closestNames } from '../util/did-you-mean.js';
import { accepts, isOfKind } from '../util/value-kinds.js';
import type { Interpolation } from '../data/resample.js';
import {
  CONFIG_SCHEMA,
  type ConfigEntry,
  type ConfigKey,
  type ConfigSchema,
  type ConfigShape,
} from './config-schema.js';

/** The run config: one section per dotted prefix of CONFIG_SCHEMA's keys ('optim.lr' is `config.optim.lr`). */
export type TrainConfig = ConfigShape<ConfigSchema>;
/** Fine-tuning from pretrained weights (applied by src/train/finetune.ts). */
export type FinetuneOptions = TrainConfig['finetune'];
export type AmpMode = TrainConfig['amp'];
/**
 * letterbox: the recipe's structure-retention resize (pad to square, then resize); squash: resize to a
 * square ignoring the aspect ratio; center: timm's eval crop (shorter side to size / cropPct, center crop;
 * training then crops from the image itself, as for squash).
 */
export type ResizeMode = TrainConfig['input']['resize'];
export type { Interpolation };
export type { ConfigKey };

const ENTRIES = Object.entries(CONFIG_SCHEMA) as [ConfigKey, ConfigEntry][];
const ENTRY = new Map<string, ConfigEntry>(ENTRIES);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function getPath(o: unknown, key: string): unknown {
  return key.split('.').reduce<unknown>((x, k) => (isObject(x) ? x[k] : undefined), o);
}

function setPath(o: Record<string, unknown>, key: string, v: unknown): void {
  const parts = key.split('.');
  let cur = o;
  for (const p of parts.slice(0, -1)) {
    if (!isObject(cur[p])) cur[p] = {};
    cur = cur[p] as Record<string, unknown>;
  }
  cur[parts[parts.length - 1]!] = v;
}

/** The recipe's defaults, in the table's order. */
export const DEFAULT_CONFIG: TrainConfig = (() => {
  const c: Record<string, unknown> = {};
  for (const [key, e] of ENTRIES) setPath(c, key, structuredClone(e.default));
  return c as TrainConfig;
})();

/** One line of documentation per option, shown by `goodsrec train --help`. */
export const CONFIG_DOCS = Object.fromEntries(ENTRIES.map(([k, e]) => [k, e.doc])) as Record<ConfigKey, string>;

export class ConfigError extends Error {
  /** The option (dotted key) the error is about, when it is about one. */
  readonly key: string | undefined;
  constructor(message: string, key?: string) {
    super(message);
    this.name = 'ConfigError';
    this.key = key;
  }
}

/** One layer of options: a file, a flag, a --set, a recipe (its name says where the values came from). */
export interface ConfigLayer {
  source: string;
  values: Record<string, unknown>;
}

/**
 * Where a value came from, for errors: the layer, and the option unless the layer's name already says it
 * (`--set optim.lr=2`, `--lr (optim.lr)`).
 */
function where(source: string, key: string): string {
  const named = new RegExp(`(^|[\\s(])${key.replaceAll('.', '\\.')}([\\s=)]|$)`).test(source);
  return named ? source : `${source}: option ${key}`;
}

function fail(source: string, key: string, expected: string, actual: unknown): never {
  const got = actual === undefined ? 'nothing (the option is missing)' : JSON.stringify(actual);
  throw new ConfigError(`${where(source, key)}: expected ${expected} but received ${got}`, key);
}

/**
 * The options a layer sets, as [dotted key, value]; an unknown option (with a did-you-mean) or a value
 * given to a whole section is an error naming the layer.
 */
function leaves(values: Record<string, unknown>, source: string, prefix = ''): [ConfigKey, unknown][] {
  const out: [ConfigKey, unknown][] = [];
  for (const [k, v] of Object.entries(values)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (ENTRY.has(key)) {
      out.push([key as ConfigKey, v]);
      continue;
    }
    const inside = configKeys().filter((x) => x.startsWith(`${key}.`));
    if (inside.length) {
      // A YAML section with nothing under it reads as null: nothing set.
      if (v === null) continue;
      if (!isObject(v))
        throw new ConfigError(
          `${source}: '${key}' is a section, not an option: set its options (${inside.join(', ')})`,
          key,
        );
      out.push(...leaves(v, source, key));
      continue;
    }
    const near = closestNames(key, configKeys());
    const here = configKeys().filter((x) => (prefix ? x.startsWith(`${prefix}.`) : !x.includes('.')));
    const hint = near.length
      ? `did you mean ${near.map((n) => `'${n}'`).join(' or ')}?`
      : `known here: ${(prefix ? here : [...new Set(configKeys().map((x) => x.split('.')[0]!))]).join(', ')}`;
    throw new ConfigError(`${source}: unknown option '${key}' (${hint})`, key);
  }
  return out;
}

function checkValue(key: ConfigKey, v: unknown, source: string): void {
  const e = ENTRY.get(key)!;
  if (!isOfKind(e.kind, v)) fail(source, key, accepts(e.kind), v);
}

/**
 * The checks that need the whole config: a required option left at its placeholder, an option that
 * must stay below another (warmup epochs < epochs). `sourceOf` names the layer that set an option.
 */
function checkWhole(c: TrainConfig, sourceOf: (key: ConfigKey) => string | undefined): void {
  for (const [key, e] of ENTRIES) {
    const v = getPath(c, key);
    const source = sourceOf(key);
    if (e.required && source === undefined && !isOfKind(e.kind, v)) {
      const how = e.flag ? `--${e.flag.name}, or ${key} in a config file` : `${key} in a config file or --set`;
      throw new ConfigError(`missing option ${key}: ${e.doc} (give ${how})`, key);
    }
    if (e.lessThan !== undefined) {
      const limit = getPath(c, e.lessThan) as number;
      if ((v as number) >= limit) {
        const from = sourceOf(e.lessThan as ConfigKey);
        fail(
          source ?? 'defaults',
          key,
          `${accepts(e.kind)} and < ${e.lessThan} (${limit}${from ? `, from ${from}` : ''})`,
          v,
        );
      }
    }
  }
}

/** A layer that sets one option ('optim.lr') to a value. */
export function optionLayer(source: string, key: string, value: unknown): ConfigLayer {
  const values: Record<string, unknown> = {};
  setPath(values, key, value);
  return { source, values };
}

/**
 * Parses a `key=value` override; the value is read as YAML (numbers, booleans, lists, null). An empty value is the
 * empty string (`data.valSplit=` turns validation off, as the option's doc says), not YAML's null.
 */
export function parseOverride(s: string): Record<string, unknown> {
  const eq = s.indexOf('=');
  if (eq <= 0) throw new ConfigError(`override '${s}': expected key=value, e.g. optim.lr=0.05`);
  const key = s.slice(0, eq).trim();
  const raw = s.slice(eq + 1);
  if (raw.trim() === '') return optionLayer(s, key, '').values;
  let value: unknown;
  try {
    value = parseYaml(raw) as unknown;
  } catch {
    value = raw;
  }
  if (value === undefined) value = raw;
  return optionLayer(s, key, value).values;
}

export function loadConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`config file ${path}: ${(e as Error).message}`);
  }
  let v: unknown;
  try {
    v = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new ConfigError(
      `config file ${path}: not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(e as Error).message}`,
    );
  }
  if (v === null || v === undefined) return {};
  if (!isObject(v)) throw new ConfigError(`config file ${path}: expected a mapping of options at the top level`);
  return v;
}

/**
 * Resolves defaults <- layers (in order: file, flags, --set) and validates: each layer's values as it is
 * applied (errors name the layer and the option), then the checks across options.
 */
export function resolveConfig(layers: readonly ConfigLayer[]): TrainConfig {
  const c = structuredClone(DEFAULT_CONFIG);
  const setBy = new Map<ConfigKey, string>();
  for (const l of layers) {
    for (const [key, v] of leaves(l.values, l.source)) {
      checkValue(key, v, l.source);
      setPath(c as unknown as Record<string, unknown>, key, structuredClone(v));
      setBy.set(key, l.source);
    }
  }
  checkWhole(c, (k) => setBy.get(k));
  return c;
}

/**
 * Gives a stored config (an older run folder's config.json) the options it lacks, in place: each one's
 * migration in CONFIG_SCHEMA, i.e. the value that keeps that run's old behaviour.
 */
export function migrateConfig(c: Record<string, unknown>): void {
  for (const [key, e] of ENTRIES) {
    if (e.migrate === undefined || getPath(c, key) !== undefined) continue;
    setPath(c, key, structuredClone(e.migrate === 'default' ? e.default : e.migrate.value));
  }
}

/**
 * Validates a whole config (a stored run's config.json, or one built in code) after migrating it in place:
 * every option of its kind, no unknown option, and the checks across options. `source` names it in errors.
 */
export function validateConfig(c: TrainConfig, source = 'config'): void {
  const raw = c as unknown as Record<string, unknown>;
  migrateConfig(raw);
  leaves(raw, source);
  for (const [key] of ENTRIES) checkValue(key, getPath(c, key), source);
  checkWhole(c, () => source);
}

/** A run folder's stored config.json, migrated and validated; errors name the file. */
export function readStoredConfig(path: string): TrainConfig {
  const c = loadConfigFile(path) as unknown as TrainConfig;
  validateConfig(c, path);
  return c;
}

/** Every option's dotted key (data.root, optim.lr, ...), in the table's order. */
export function configKeys(): ConfigKey[] {
  return ENTRIES.map(([k]) => k);
}

/** Text for --help: every option with what it accepts, its default and its train flag. */
export function configHelp(): string {
  const w = Math.max(...ENTRIES.map(([k]) => k.length));
  return ENTRIES.map(([k, e]) => {
    const flag = e.flag ? `; --${e.flag.name}` : '';
    return `  ${k.padEnd(w)}  ${e.doc} [${accepts(e.kind)}] (default ${JSON.stringify(e.default)}${flag})`;
  }).join('\n');
}

/** The learning rate actually used: the recipe's lr is given for batch 128. */
export function scaledLr(c: TrainConfig): number {
  // The linear scaling rule over the global batch (every data-parallel process adds batchSize).
  return (c.optim.lr * c.batchSize * c.accumulate * (c.distributed?.worldSize ?? 1)) / 128;
}

/** createModel options of the configured head (the embedding head's settings only for arcface/cosface). */
export function headOptions(m: TrainConfig['model']): {
  head: TrainConfig['model']['head'];
  embeddingDim?: number;
  bnNeck?: boolean;
  scale?: number;
} {
  return m.head === 'arcface' || m.head === 'cosface'
    ? { head: m.head, embeddingDim: m.embeddingDim, bnNeck: m.bnNeck, scale: m.scale }
    : { head: m.head ?? 'linear' };
}

/** The margin loss of an embedding head, or null for a softmax head. */
export function marginOptions(
  c: TrainConfig,
): { type: 'arcface' | 'cosface'; scale: number; margin: number; easyMargin: boolean; labelSmoothing: number } | null {
  const m = c.model;
  if (m.head !== 'arcface' && m.head !== 'cosface') return null;
  return {
    type: m.head,
    scale: m.scale,
    margin: m.margin ?? (m.head === 'arcface' ? 0.5 : 0.35),
    easyMargin: m.easyMargin,
    labelSmoothing: c.loss.labelSmoothing,
  };
}
