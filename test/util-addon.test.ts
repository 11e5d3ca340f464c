// The one addon loader (src/util/addon.ts): where it looks for each addon, what it says when an addon
// is missing or does not load, GOODSREC_ADDON_DIR / GOODSREC_NATIVE / GOODSREC_NATIVE_IMAGE=0. The
// libtorch-version explanations are checked against the real addon in native-ops.test.ts.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { AddonError, addonCandidates, findAddon, loadAddon, loadOptionalAddon } from '../src/util/addon.js';

const root = resolve(import.meta.dirname, '..', '..');
const ENV = ['GOODSREC_ADDON_DIR', 'GOODSREC_NATIVE', 'GOODSREC_NATIVE_IMAGE'] as const;
const saved = Object.fromEntries(ENV.map((k) => [k, process.env[k]]));
afterEach(() => {
  for (const k of ENV) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
});
const clearEnv = (): void => {
  for (const k of ENV) delete process.env[k];
};

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'goodsrec-addon-'));
  process.on('exit', () => rmSync(d, { recursive: true, force: true }));
  return d;
}

test('where each addon is looked for: GOODSREC_NATIVE first, then build/Release and build/Debug; GOODSREC_ADDON_DIR alone', () => {
  clearEnv();
  const build = (kind: string, f: string): string => join(root, 'build', kind, f);
  assert.deepEqual(addonCandidates('native'), [
    build('Release', 'goodsrec_native.node'),
    build('Debug', 'goodsrec_native.node'),
  ]);
  assert.deepEqual(addonCandidates('image'), [
    build('Release', 'goodsrec_image.node'),
    build('Debug', 'goodsrec_image.node'),
  ]);
  process.env.GOODSREC_NATIVE = '/opt/other/goodsrec_native.node';
  assert.equal(addonCandidates('native')[0], '/opt/other/goodsrec_native.node');
  assert.equal(
    addonCandidates('image')[0],
    build('Release', 'goodsrec_image.node'),
    'GOODSREC_NATIVE is the libtorch one',
  );
  process.env.GOODSREC_ADDON_DIR = '/opt/sanitize';
  assert.deepEqual(addonCandidates('native'), ['/opt/sanitize/goodsrec_native.node']);
  assert.deepEqual(addonCandidates('image'), ['/opt/sanitize/goodsrec_image.node']);
});

test('a GOODSREC_ADDON_DIR without the addon is an error for both, even the optional image addon', () => {
  clearEnv();
  const dir = tempDir();
  process.env.GOODSREC_ADDON_DIR = dir;
  for (const [name, file] of [
    ['native', 'goodsrec_native.node'],
    ['image', 'goodsrec_image.node'],
  ] as const) {
    assert.throws(
      () => findAddon(name),
      (e: unknown) =>
        e instanceof AddonError &&
        e.file === null &&
        e.message ===
          `goodsrec: GOODSREC_ADDON_DIR=${dir} has no ${file} (when set, it is the only folder looked in; ` +
            'unset it to use the addons in build/)',
    );
  }
  assert.throws(() => loadOptionalAddon('image', 'fallback'), /GOODSREC_ADDON_DIR=.* has no goodsrec_image\.node/);
  // Control: GOODSREC_NATIVE_IMAGE=0 turns the image addon off before anything is looked for.
  process.env.GOODSREC_NATIVE_IMAGE = '0';
  assert.equal(loadOptionalAddon('image', 'fallback'), null);
});

test("a file that is not a loadable addon: the dynamic loader's reason and what to rebuild", () => {
  clearEnv();
  const dir = tempDir();
  for (const f of ['goodsrec_native.node', 'goodsrec_image.node']) writeFileSync(join(dir, f), 'not an ELF file\n');
  process.env.GOODSREC_ADDON_DIR = dir;
  assert.throws(
    () => loadAddon('native'),
    (e: unknown) =>
      e instanceof AddonError &&
      e.file === join(dir, 'goodsrec_native.node') &&
      e.message.startsWith(
        `goodsrec: failed to load the native addon ${join(dir, 'goodsrec_native.node')}: file too short\n`,
      ) &&
      e.message.endsWith('If libtorch moved or was upgraded, rebuild with `npm run build:native`.'),
  );
  assert.throws(
    () => loadAddon('image'),
    /goodsrec: failed to load the native image addon \S*goodsrec_image\.node: file too short\nIf it was built on another machine or for another Node, rebuild it with `npm run setup`\.$/,
  );
  // Through GOODSREC_NATIVE (no GOODSREC_ADDON_DIR) the libtorch addon is that file.
  delete process.env.GOODSREC_ADDON_DIR;
  process.env.GOODSREC_NATIVE = join(dir, 'goodsrec_native.node');
  assert.throws(() => loadAddon('native'), /failed to load the native addon .*goodsrec_native\.node: /);
});

test('without built addons: the libtorch one is an error naming every place looked in, the image one a warning', () => {
  // A package root of its own (package.json named goodsrec, no build/): a copy of the compiled loader.
  const pkg = tempDir();
  const util = join(pkg, 'dist', 'src', 'util');
  mkdirSync(util, { recursive: true });
  writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'goodsrec', type: 'module' }));
  for (const f of ['addon.js', 'version.js']) copyFileSync(join(root, 'dist', 'src', 'util', f), join(util, f));
  const script = [
    "const { loadAddon, loadOptionalAddon } = await import('./dist/src/util/addon.js');",
    "process.on('warning', (w) => console.log('WARNING ' + w.message));",
    "try { loadAddon('native'); } catch (e) { console.log('ERROR ' + e.message); }",
    "console.log('IMAGE ' + loadOptionalAddon('image', 'done the slow way'));",
    'await new Promise((r) => setTimeout(r, 10));',
  ].join('\n');
  const env = { ...process.env };
  for (const k of ENV) delete env[k];
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: pkg, env, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const release = (f: string): string => join(pkg, 'build', 'Release', f);
  assert.ok(
    r.stdout.includes(
      `ERROR goodsrec: the native addon is not built (looked in ${release('goodsrec_native.node')}, ` +
        `${join(pkg, 'build', 'Debug', 'goodsrec_native.node')}).\nRun \`npm run setup\``,
    ),
    r.stdout,
  );
  assert.match(r.stdout, /IMAGE null/);
  assert.ok(
    r.stdout.includes(
      `WARNING goodsrec: the native image addon is not built (${release('goodsrec_image.node')}); ` +
        'done the slow way. Build it with `npm run setup`.',
    ),
    r.stdout,
  );
});
