/**
 * The compiled modules the browser page loads under /lib/: web-preprocess.js and every module it
 * imports, found by following the static imports of the compiled files, so a new op file is served
 * without a list to update. An import a browser cannot follow (a package or `node:` name, a file outside
 * the compiled src folder, a missing file) is reported; test/data-ops-registry.test.ts requires none.
 */
import { readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The page's entry module, relative to the compiled src folder. */
export const WEB_ENTRY = 'serve/web-preprocess.js';

export interface WebModuleGraph {
  /** Module paths relative to the compiled src folder ('data/ops/resize.js'). */
  modules: Set<string>;
  /** Imports the page could not load, with the module that makes them. */
  unreachable: { from: string; specifier: string; why: string }[];
}

/** The compiled src folder (dist/src), where this module's own compiled file sits in serve/. */
export function compiledSrcDir(): string {
  return fileURLToPath(new URL('../', import.meta.url));
}

// Static `import ... from '...'`, `import '...'` and `export ... from '...'` (tsc has erased type-only ones).
const STATIC_IMPORT = /(?:^|[;}\n])\s*(?:import|export)\s*(?:[\w$*{}\s,]+?\s*from\s*)?['"]([^'"]+)['"]/g;

/** The module graph of `entry` (relative to `srcDir`, default the compiled src folder). */
export function webModuleGraph(srcDir = compiledSrcDir(), entry = WEB_ENTRY): WebModuleGraph {
  const modules = new Set<string>();
  const unreachable: WebModuleGraph['unreachable'] = [];
  const queue = [entry];
  for (let m = queue.pop(); m !== undefined; m = queue.pop()) {
    if (modules.has(m)) continue;
    let text: string;
    try {
      text = readFileSync(join(srcDir, m), 'utf8');
    } catch (e) {
      unreachable.push({ from: m, specifier: m, why: `cannot read it (${(e as Error).message})` });
      continue;
    }
    modules.add(m);
    for (const [, specifier] of text.matchAll(STATIC_IMPORT)) {
      if (!specifier!.startsWith('./') && !specifier!.startsWith('../')) {
        unreachable.push({
          from: m,
          specifier: specifier!,
          why: 'a package or built-in, which a browser cannot import',
        });
        continue;
      }
      const target = posix.normalize(posix.join(posix.dirname(m), specifier!));
      if (target.startsWith('../'))
        unreachable.push({ from: m, specifier: specifier!, why: 'outside the compiled src folder' });
      else queue.push(target);
    }
  }
  return { modules, unreachable };
}

let served: ReadonlySet<string> | undefined;
/** The modules the server hands to the page (computed once). */
export function pageModules(): ReadonlySet<string> {
  served ??= webModuleGraph().modules;
  return served;
}
