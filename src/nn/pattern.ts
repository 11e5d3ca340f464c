// Name patterns for freeze()/unfreeze() and parameter groups.

/** A glob over dotted names (`*` any run of characters, `?` one) or a RegExp. */
export type NamePattern = string | RegExp;

/**
 * A predicate for a pattern. A glob must match the whole name or a prefix
 * that ends at a dot, so 'layer1' matches 'layer1.0.conv1.weight' but not
 * 'layer10.weight'. A RegExp is tested as is.
 */
export function matcher(pattern: NamePattern): (name: string) => boolean {
  if (pattern instanceof RegExp) {
    const re = new RegExp(pattern.source, pattern.flags.replace('g', '').replace('y', ''));
    return (name) => re.test(name);
  }
  if (typeof pattern !== 'string' || pattern === '') {
    throw new TypeError(`Expected a non-empty glob string or a RegExp for pattern but received ${String(pattern)}`);
  }
  const body = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  const re = new RegExp(`^${body}(\\..*)?$`);
  return (name) => re.test(name);
}
