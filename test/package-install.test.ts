// The published package: `npm pack`, then `npm install` of the tarball in a fresh project, then
// `import { createModel } from 'goodsrec'` and a forward pass. The install script takes the addons
// from GOODSREC_PREBUILT (this checkout's build/Release, checked to load against this libtorch) to
// keep the test near a minute; GOODSREC_TEST_PACK_BUILD=1 makes it compile them from the tarball's
// sources instead (node-gyp, several minutes on 2 cores).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const build = process.env.GOODSREC_TEST_PACK_BUILD === '1';

test('npm pack + npm install in a fresh project builds or takes the addon, and goodsrec imports and runs a resnet18', {
  timeout: (build ? 20 : 6) * 60_000,
}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'goodsrec-pack-'));
  try {
    const packJson = execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { encoding: 'utf8' });
    const packed = JSON.parse(packJson) as { filename: string; files: { path: string }[] }[];
    const files = packed[0]!.files.map((f) => f.path);
    for (const need of [
      'binding.gyp',
      'native/addon.cc',
      'native/common.h',
      'native/image/jpeg.cc',
      'scripts/find-libtorch.mjs',
      'scripts/install.mjs',
      'dist/src/index.js',
      'dist/src/index.d.ts',
      'dist/src/cli/main.js',
      'src/serve/web/index.html',
      'schemas/eval-file.schema.json',
      'package.json',
    ]) {
      assert.ok(files.includes(need), `the tarball lacks ${need}`);
    }
    const stray = files.filter(
      (f) =>
        /^(test|bench|examples|dist\/test|dist\/bench|dist\/examples)\//.test(f) ||
        f.includes('datasets/') ||
        f.endsWith('.map') ||
        f.startsWith('build/'),
    );
    assert.deepEqual(stray, [], 'the tarball holds files the package does not need');

    const project = join(dir, 'project');
    execFileSync('mkdir', [project]);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    const env: NodeJS.ProcessEnv = { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' };
    if (build) delete env.GOODSREC_PREBUILT;
    else env.GOODSREC_PREBUILT = resolve('build', 'Release');
    // Dependencies come from npm's cache; their metadata from the registry when the cache lacks it.
    const install = spawnSync(
      'npm',
      [
        'install',
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        '--foreground-scripts',
        join(dir, packed[0]!.filename),
      ],
      { cwd: project, env, encoding: 'utf8' },
    );
    assert.equal(install.status, 0, `npm install failed:\n${install.stdout}\n${install.stderr}`);
    const log = install.stdout + install.stderr;
    if (build) assert.match(log, /building the native addons against/);
    else assert.match(log, /using the prebuilt addons from/);
    const addon = join(project, 'node_modules', 'goodsrec', 'build', 'Release', 'goodsrec_native.node');
    assert.ok(existsSync(addon));

    const script = [
      "import { createModel, listModels, T } from 'goodsrec';",
      "const m = createModel('resnet18', { numClasses: 3 });",
      'T.manualSeed(0);',
      'const y = T.tidy(() => T.noGrad(() => m.eval().forward(T.randn([2, 3, 64, 64]))));',
      "console.log(JSON.stringify({ from: import.meta.resolve('goodsrec'), shape: y.shape,",
      '  finite: y.toArray().every(Number.isFinite), models: listModels().length }));',
    ].join('\n');
    // The installed package's own addons, not an override this test run may carry (GOODSREC_NATIVE: e.g. the
    // suite run against the CUDA build), which would also defeat the negative control below.
    const runEnv: NodeJS.ProcessEnv = { ...process.env };
    delete runEnv.GOODSREC_NATIVE;
    delete runEnv.GOODSREC_NATIVE_IMAGE;
    const run = (): ReturnType<typeof spawnSync> =>
      spawnSync(process.execPath, ['--input-type=module', '-e', script], {
        cwd: project,
        encoding: 'utf8',
        env: runEnv,
      });
    const ok = run();
    assert.equal(ok.status, 0, String(ok.stderr));
    const out = JSON.parse(String(ok.stdout).trim().split('\n').pop()!) as {
      from: string;
      shape: number[];
      finite: boolean;
      models: number;
    };
    assert.ok(out.from.includes(`${project}/node_modules/goodsrec/`), `resolved ${out.from}`);
    assert.deepEqual(out.shape, [2, 3]);
    assert.ok(out.finite);
    assert.ok(out.models > 20);

    // Negative control: without the installed addon the same import fails with the loader's message.
    unlinkSync(addon);
    const broken = run();
    assert.notEqual(broken.status, 0);
    assert.match(String(broken.stderr), /the native addon is not built/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
