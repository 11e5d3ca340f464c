// Decompression bombs: small PNGs that claim (or inflate to) huge images. The pixel limit (--max-pixels,
// data.maxPixels; DEFAULT_MAX_PIXELS) is checked from the header before pixels are allocated, and bounds
// the letterbox canvas too; what a decode may use is bounded by the limit. Peak memory is measured as the
// peak RSS of a child process (with a control that the measurement sees a real 1 GB allocation).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import { DEFAULT_MAX_PIXELS } from '../src/data/image.js';
import { evalPipeline, trainPipeline } from '../src/run/pipelines.js';
import { resolveConfig } from '../src/run/config.js';
import { recipeEval } from './helpers/recipe.js';

const dir = mkdtempSync(join(tmpdir(), 'goodsrec-bombs-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const dataIndex = new URL('../src/data/index.js', import.meta.url).href;
const MB = 2 ** 20;

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** A 1-bit greyscale PNG of width x height, all black; with `rows`, the zlib stream holds only that many rows. */
function bitPng(name: string, width: number, height: number, rows = height): string {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 1; // bit depth 1, colour type 0 (grey)
  const raw = Buffer.alloc(rows * (1 + Math.ceil(width / 8))); // filter byte 0 + zero bits per row
  const png = Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', new Uint8Array(0)),
  ]);
  const path = join(dir, name);
  writeFileSync(path, png);
  return path;
}

interface ChildResult {
  ok: boolean;
  reason?: string;
  message?: string;
  width?: number;
  peakMB: number;
  baseMB: number;
  fileKB?: number;
}

/** Runs `body` (module code with `path`, `maxPixels` and the data layer as `D`) in a child; its peak RSS. */
function inChild(body: string, env: Record<string, string>): ChildResult {
  const code = `import * as D from ${JSON.stringify(dataIndex)};
    import { statSync } from 'node:fs';
    const path = process.env.BOMB_PATH, maxPixels = Number(process.env.BOMB_MAX);
    const baseMB = process.memoryUsage.rss() / 2 ** 20;
    let r;
    try { r = await (async () => { ${body} })(); r = { ok: true, ...r }; }
    catch (e) { r = { ok: false, reason: e.reason, message: e.message }; }
    r.peakMB = process.resourceUsage().maxRSS / 1024; r.baseMB = baseMB;
    if (path) r.fileKB = statSync(path).size / 1024;
    console.log(JSON.stringify(r));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', code], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
  });
  return JSON.parse(out.trim().split('\n').pop()!) as ChildResult;
}

const decode = 'const img = await D.decodeImage(path, { maxPixels }); return { width: img.width };';
const evalProcess = `const cfg = { ...${JSON.stringify(recipeEval({ input: { size: 32 } }))}, maxPixels, fastDecode: true };
  const out = await D.processFile(path, cfg, 0); return { width: out.width };`;

test('control: the peak-RSS measurement sees a real 512 MB allocation', () => {
  const r = inChild('const b = Buffer.alloc(2 ** 29, 1); return { width: b[12345] };', {
    BOMB_PATH: '',
    BOMB_MAX: '0',
  });
  assert.ok(r.ok && r.peakMB - r.baseMB > 500, JSON.stringify(r));
});

test('a 20000 x 20000 PNG of 50 kB (1.2 GB as RGB) is refused from its header by the default limit; memory stays low', () => {
  const path = bitPng('bomb-20k.png', 20000, 20000);
  for (const body of [decode, evalProcess]) {
    const r = inChild(body, { BOMB_PATH: path, BOMB_MAX: String(DEFAULT_MAX_PIXELS) });
    assert.equal(r.reason, 'too-large', JSON.stringify(r));
    assert.ok(r.message?.startsWith(path), r.message);
    assert.ok(r.fileKB! < 200, `a small file: ${r.fileKB} kB`);
    assert.ok(r.peakMB - r.baseMB < 150, `nothing near 1.2 GB was allocated: ${JSON.stringify(r)}`);
    console.log(
      `20000x20000 bomb (${r.fileKB!.toFixed(0)} kB): ${r.reason}, peak RSS ${r.peakMB.toFixed(0)} MB (base ${r.baseMB.toFixed(0)} MB)`,
    );
  }
});

test('under a raised limit a single-colour bomb decodes within what the limit allows; over it, refused', () => {
  // 6000 x 6000 = 36M pixels (108 MB as RGB) from a 30 kB file.
  const path = bitPng('bomb-6k.png', 6000, 6000);
  const over = inChild(decode, { BOMB_PATH: path, BOMB_MAX: String(30_000_000) });
  assert.equal(over.reason, 'too-large', JSON.stringify(over));
  assert.ok(over.peakMB - over.baseMB < 100, JSON.stringify(over));
  const under = inChild(decode, { BOMB_PATH: path, BOMB_MAX: String(40_000_000) });
  assert.ok(under.ok && under.width === 6000, JSON.stringify(under));
  const rgbMB = (6000 * 6000 * 3) / MB;
  // The RGB result once, plus libvips' own buffers: at most 3x the image, never unbounded.
  assert.ok(under.peakMB - under.baseMB > rgbMB * 0.9, `the image was really decoded: ${JSON.stringify(under)}`);
  assert.ok(
    under.peakMB - under.baseMB < 3 * rgbMB,
    `bounded by the limit: ${JSON.stringify(under)} (RGB ${rgbMB.toFixed(0)} MB)`,
  );
  console.log(
    `6000x6000 bomb: over the limit peak +${(over.peakMB - over.baseMB).toFixed(0)} MB; ` +
      `under it decoded with peak +${(under.peakMB - under.baseMB).toFixed(0)} MB for ${rgbMB.toFixed(0)} MB of RGB`,
  );
});

test('a zlib stream that holds fewer rows than the header claims is refused, within the memory the claimed size allows', () => {
  // Claims 8000 x 8000 (64M pixels, under the default limit), carries 10 rows.
  const path = bitPng('short-stream.png', 8000, 8000, 10);
  const r = inChild(decode, { BOMB_PATH: path, BOMB_MAX: String(DEFAULT_MAX_PIXELS) });
  assert.equal(r.ok, false, JSON.stringify(r));
  assert.ok(['truncated', 'corrupt'].includes(r.reason!), JSON.stringify(r));
  assert.ok(r.message?.startsWith(path), r.message);
  assert.ok(r.peakMB - r.baseMB < (3 * (8000 * 8000 * 3)) / MB, JSON.stringify(r));
  console.log(`8000x8000 header, 10 rows of data: ${r.reason}, peak +${(r.peakMB - r.baseMB).toFixed(0)} MB`);
});

test('a 1 x 40000 PNG (40k pixels) is refused before its 40000² letterbox canvas (4.8 GB) is allocated', () => {
  const path = bitPng('strip.png', 40000, 1);
  const r = inChild(evalProcess, { BOMB_PATH: path, BOMB_MAX: String(DEFAULT_MAX_PIXELS) });
  assert.equal(r.reason, 'too-large', JSON.stringify(r));
  assert.match(r.message!, /letterboxes to a 40000x40000 canvas/);
  assert.ok(r.peakMB - r.baseMB < 100, JSON.stringify(r));
  // Control: a 1 x 400 strip is fine.
  const ok = inChild(evalProcess, {
    BOMB_PATH: bitPng('strip-small.png', 400, 1),
    BOMB_MAX: String(DEFAULT_MAX_PIXELS),
  });
  assert.ok(ok.ok && ok.width === 32, JSON.stringify(ok));
});

test('the limit reaches every pipeline: train (data.maxPixels, also in the loader workers), eval/predict/gallery (evalPipeline)', () => {
  const c = resolveConfig([{ source: 'test', values: { data: { root: 'x', maxPixels: 1234 } } }]);
  assert.equal(trainPipeline(c, { mean: [0, 0, 0], std: [1, 1, 1] }).maxPixels, 1234);
  assert.equal(resolveConfig([{ source: 'test', values: { data: { root: 'x' } } }]).data.maxPixels, DEFAULT_MAX_PIXELS);
  assert.throws(
    () => resolveConfig([{ source: 'test', values: { data: { root: 'x', maxPixels: 0 } } }]),
    /data\.maxPixels/,
  );
  const pre = {
    size: 32,
    resize: 'letterbox' as const,
    cropPct: 0.875,
    mean: [0, 0, 0] as [number, number, number],
    std: [1, 1, 1] as [number, number, number],
  };
  assert.equal(evalPipeline(pre, 999).maxPixels, 999);
  assert.equal(evalPipeline(pre).maxPixels, undefined); // then DEFAULT_MAX_PIXELS applies
});

test('goodsrec analyze --max-pixels: every photo over the limit is skipped as too-large (exit 3); without it, none', () => {
  const cli = new URL('../src/cli/main.js', import.meta.url).pathname;
  const sample = join(new URL('../..', import.meta.url).pathname, 'examples', 'grocery-sample');
  const run = (extra: string[]): { status: number | null; bad: { reason: string }[] } => {
    const out = join(dir, `analysis-${extra.length}`);
    const r = spawnSync(process.execPath, [cli, 'analyze', sample, '--quick', '--out', out, ...extra], {
      encoding: 'utf8',
    });
    return {
      status: r.status,
      bad: (JSON.parse(readFileSync(join(out, 'analysis.json'), 'utf8')) as { badFiles: { reason: string }[] })
        .badFiles,
    };
  };
  const limited = run(['--max-pixels', '100']);
  assert.equal(limited.status, 3);
  assert.ok(
    limited.bad.length > 0 && limited.bad.every((b) => b.reason === 'too-large'),
    JSON.stringify(limited.bad.slice(0, 2)),
  );
  const plain = run([]);
  assert.equal(plain.status, 0);
  assert.equal(plain.bad.length, 0);
});
