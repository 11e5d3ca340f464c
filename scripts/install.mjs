#!/usr/bin/env node
// npm's install step for the published package: provides build/Release/goodsrec_native.node and
// goodsrec_image.node. In order:
//   1. in a source checkout (scripts/setup.sh present) nothing: `npm run setup` builds incrementally;
//   2. GOODSREC_PREBUILT=<folder with both .node files> (a CI cache, a shared build): copied, and
//      kept only when it loads against the libtorch found here with the version it was built for;
//   3. otherwise node-gyp compiles them (binding.gyp; libtorch found by scripts/find-libtorch.mjs).
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const ADDONS = ['goodsrec_native.node', 'goodsrec_image.node'];
const log = (s) => process.stderr.write(`goodsrec install: ${s}\n`);

/** Loads the libtorch addon in a child process; null when it loads with matching libtorch versions. */
function loadProblem(file) {
  const probe =
    'const b = require(process.argv[1]); const v = b.libtorch;' +
    'if (!v || v.compiled.split("+")[0] !== v.runtime.split("+")[0]) ' +
    // biome-ignore lint/suspicious/noTemplateCurlyInString: code for node -e, interpolated by that process
    '{ console.error(`compiled against libtorch ${v?.compiled}, loaded ${v?.runtime}`); process.exit(3); }';
  const r = spawnSync(process.execPath, ['-e', probe, file], { encoding: 'utf8' });
  return r.status === 0 ? null : (r.stderr || `exit ${r.status}`).trim().split('\n').slice(-1)[0];
}

function usePrebuilt(dir) {
  const missing = ADDONS.filter((f) => !existsSync(join(dir, f)));
  if (missing.length) {
    log(`GOODSREC_PREBUILT=${dir} lacks ${missing.join(', ')}; building instead`);
    return false;
  }
  const out = join(root, 'build', 'Release');
  mkdirSync(out, { recursive: true });
  for (const f of ADDONS) copyFileSync(join(dir, f), join(out, f));
  const problem = loadProblem(join(out, 'goodsrec_native.node'));
  if (problem) {
    log(`the prebuilt addon in ${dir} does not fit this machine (${problem}); building instead`);
    return false;
  }
  log(`using the prebuilt addons from ${dir}`);
  return true;
}

function build() {
  const found = spawnSync(process.execPath, [join(root, 'scripts', 'find-libtorch.mjs'), 'json'], { encoding: 'utf8' });
  if (found.status !== 0) {
    process.stderr.write(found.stderr);
    process.exit(1);
  }
  log(`building the native addons against ${JSON.parse(found.stdout).source} (a few minutes)`);
  const jobs = String(Math.max(1, Math.min(availableParallelism(), 8)));
  // npm puts its own node-gyp on PATH for install scripts.
  const r = spawnSync('node-gyp', ['rebuild', '-j', jobs], {
    cwd: root,
    stdio: 'inherit',
    shell: process.platform === 'win32',
  });
  if (r.status !== 0) {
    log('the addon build failed: see the compiler output above; README "Without root or apt" lists what it needs');
    process.exit(r.status ?? 1);
  }
  const problem = loadProblem(join(root, 'build', 'Release', 'goodsrec_native.node'));
  if (problem) {
    log(`the addon was built but does not load: ${problem}`);
    process.exit(1);
  }
}

if (existsSync(join(root, 'scripts', 'setup.sh'))) {
  log('source checkout: the addons are built by `npm run setup` (or `npm run build:native`)');
} else if (!(process.env.GOODSREC_PREBUILT && usePrebuilt(process.env.GOODSREC_PREBUILT))) {
  build();
}
