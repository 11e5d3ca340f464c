#!/usr/bin/env node
// Runs benchmarks: `npm run bench -- <name...>` runs dist/bench/<name>.js's
// exported run() for each name given (default: every bench in dist/bench).
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const dir = resolve('dist/bench');
const available = existsSync(dir)
  ? readdirSync(dir)
      .filter((f) => f.endsWith('.js'))
      .map((f) => f.slice(0, -3))
      .sort()
  : [];
const names = process.argv.slice(2).length ? process.argv.slice(2) : available;
if (names.length === 0) {
  console.error('no benchmarks found in dist/bench (build with npx tsc -p tsconfig.json)');
  process.exit(1);
}
let failed = 0;
for (const name of names) {
  const file = join(dir, `${name}.js`);
  if (!existsSync(file)) {
    console.error(`unknown bench '${name}' (available: ${available.join(', ') || 'none'})`);
    failed++;
    continue;
  }
  console.log(`\n=== bench ${name} ===`);
  const t0 = Date.now();
  try {
    const mod = await import(pathToFileURL(file).href);
    if (typeof mod.run !== 'function') throw new Error(`${file} does not export run()`);
    await mod.run();
    console.log(`=== ${name}: ${((Date.now() - t0) / 1000).toFixed(1)} s ===`);
  } catch (e) {
    console.error(`bench ${name} failed: ${e instanceof Error ? e.stack : String(e)}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
