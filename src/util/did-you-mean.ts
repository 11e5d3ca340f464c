// "Did you mean ...?" for mistyped names (CLI options, commands, config keys).

/** Levenshtein distance (insert, delete, substitute; each costs 1). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/**
 * The known names closest to `name`: within a third of its length (at least 2 edits), or those it is a
 * prefix of; best first, at most `max`.
 */
export function closestNames(name: string, known: Iterable<string>, max = 3): string[] {
  const n = name.toLowerCase();
  const limit = Math.max(2, Math.floor(n.length / 3));
  const scored: [string, number][] = [];
  for (const k of known) {
    const d = editDistance(n, k.toLowerCase());
    if (d <= limit) scored.push([k, d]);
    else if (n.length >= 3 && k.toLowerCase().startsWith(n)) scored.push([k, limit + 1]);
  }
  return scored
    .sort((x, y) => x[1] - y[1] || x[0].localeCompare(y[0]))
    .slice(0, max)
    .map(([k]) => k);
}

/** ` (did you mean 'a' or 'b'?)`, or '' when nothing is close. */
export function didYouMean(name: string, known: Iterable<string>, quote = (s: string): string => `'${s}'`): string {
  const c = closestNames(name, known);
  return c.length ? ` (did you mean ${c.map(quote).join(' or ')}?)` : '';
}
