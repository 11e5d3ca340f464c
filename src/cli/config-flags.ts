// `goodsrec train`'s flags that set a config option (--epochs, --lr, --data, ...), generated from the
// `flag` of CONFIG_SCHEMA's entries: each is parsed with its option's kind and becomes a config layer
// named after the flag, between the config file and --set.
import { CONFIG_SCHEMA, type ConfigEntry, type ConfigSchema } from '../run/config-schema.js';
import { configKeys, optionLayer, type ConfigLayer } from '../run/config.js';
import { closestNames } from '../util/did-you-mean.js';
import type { ValueKind } from '../util/value-kinds.js';
import type { OptionSpec } from './options.js';

type FlagName<E> = E extends { flag: { name: infer N extends string } } ? N : never;
type FlagNames = { [K in keyof ConfigSchema]: FlagName<ConfigSchema[K]> }[keyof ConfigSchema];

/** The option kind of a flag: a nullable option's flag gives the value (null stays a config-file value). */
function flagKind(key: string, k: ValueKind): Exclude<ValueKind, { type: 'null' | 'either' }> {
  if (k.type === 'either') {
    const rest = k.of.filter((x) => x.type !== 'null');
    if (rest.length === 1) return flagKind(key, rest[0]!);
    throw new Error(`CONFIG_SCHEMA ${key}: a flag cannot take ${k.of.map((x) => x.type).join(' or ')}`);
  }
  if (k.type === 'null') throw new Error(`CONFIG_SCHEMA ${key}: a flag cannot take only null`);
  return k;
}

const FLAGGED = (Object.entries(CONFIG_SCHEMA) as [string, ConfigEntry][]).filter(
  (x): x is [string, ConfigEntry & { flag: NonNullable<ConfigEntry['flag']> }] => x[1].flag !== undefined,
);

/** train's config flags, in the table's order; --help shows each one's option and what it accepts. */
export const CONFIG_FLAGS = Object.fromEntries(
  FLAGGED.map(([key, e]) => {
    const kind = flagKind(key, e.kind);
    const spec = { ...kind, description: e.doc, configKey: key } as OptionSpec;
    if (spec.type === 'path' && e.flag.exists) spec.exists = e.flag.exists;
    return [e.flag.name, spec];
  }),
) as Record<FlagNames, OptionSpec>;

/**
 * One layer per config flag given, named after the flag and its option (`--epochs (schedule.epochs)`).
 * A boolean flag is a layer only when set (absent and --no-x read the same), so a config file's value stands.
 */
export function flagLayers(given: Readonly<Record<string, unknown>>): ConfigLayer[] {
  const layers: ConfigLayer[] = [];
  for (const [key, e] of FLAGGED) {
    const v = given[e.flag.name];
    if (v === undefined || v === false) continue;
    layers.push(optionLayer(`--${e.flag.name} (${key})`, key, v));
  }
  return layers;
}

/** `goodsrec train --pretrained-x X`: the config option it probably means, as a --set. */
export function suggestSet(name: string, value: string | undefined): string | undefined {
  const keys = configKeys();
  const camel = name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  const exact = keys.find((k) => k.split('.').pop()!.toLowerCase() === camel.toLowerCase());
  const key = exact ?? closestNames(camel, keys)[0];
  return key ? `did you mean --set ${key}=${value ?? '<value>'}? (every option: goodsrec train --help)` : undefined;
}
