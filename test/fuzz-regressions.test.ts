// What the fuzzer (test/fuzz, npm run fuzz) found, kept as regression tests: each input is regenerated from
// its (seed, parser, index) or built here, and must now be refused with a named error, without crashing.
// Also the explicit unsafe-pickle cases: globals outside the allow-list are refused and nothing runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BadImageError, nativeImage, processBuffer } from '../src/data/index.js';
import { recipeEval } from './helpers/recipe.js';
import { readPthSync } from '../src/io/pth.js';
import { WeightFileError } from '../src/io/errors.js';
import { ZipArchive } from '../src/io/zip.js';
import { readSidecar } from '../src/serve/model.js';
import { fuzzInput } from './fuzz/campaign.js';
import { buildStoredZip } from './fuzz/mutate.js';
import { allTargets, seedDir } from './fuzz/targets.js';

const dir = mkdtempSync(join(tmpdir(), 'goodsrec-fuzz-reg-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const targets = new Map(allTargets().map((t) => [t.name, t]));

/** Input `index` of `parser` at seed 13 (the recorded run), written to a file, then run through the parser. */
async function replay(parser: string, index: number): Promise<unknown> {
  const t = targets.get(parser)!;
  const { bytes, rng } = fuzzInput(t, 13, index);
  const path = join(dir, `${parser}-${index}-${t.fileName}`);
  writeFileSync(path, bytes);
  try {
    await t.run(path, bytes, rng);
    return undefined;
  } catch (e) {
    assert.ok(t.isNamed(e, path), `${parser} #${index}: not a named error: ${(e as Error).stack}`);
    return e;
  }
}

/** The EXIF orientation photo seed with its IFD offset set to `ifd`. */
function exifWithIfd(ifd: number): Uint8Array {
  const b = new Uint8Array(readFileSync(join(seedDir(), 'photo-exif6.jpg')));
  let p = 2;
  while (!(b[p] === 0xff && b[p + 1] === 0xe1)) p += 2 + ((b[p + 2]! << 8) | b[p + 3]!);
  new DataView(b.buffer).setUint32(p + 14, ifd, b[p + 10] === 0x49);
  return b;
}

test('an EXIF IFD offset near 2^32 reads nothing outside the JPEG (it was a segfault: the uint32 sum wrapped)', async () => {
  const nat = nativeImage();
  for (const ifd of [0xffffffff, 0xfffffffe, 0xfffffff0, 0x7fffffff]) {
    const b = exifWithIfd(ifd);
    if (nat)
      assert.equal(nat.jpegInfo(b)?.orientation, 1, `ifd 0x${ifd.toString(16)}: malformed EXIF means no rotation`);
    const out = await processBuffer(Buffer.from(b), 'exif.jpg', recipeEval({ input: { size: 16 } }), 0);
    assert.equal(out.width, 16);
  }
  // Control: the untouched seed has orientation 6.
  if (nat) assert.equal(nat.jpegInfo(new Uint8Array(readFileSync(join(seedDir(), 'photo-exif6.jpg'))))?.orientation, 6);
});

test('a 24 x 32768 JPEG (786k pixels, 1 kB) is refused before its 32768² letterbox canvas is allocated (was 3.2 GB)', async () => {
  const before = process.memoryUsage.rss();
  const e = await replay('jpeg', 1673);
  assert.ok(e instanceof BadImageError && e.reason === 'too-large', String(e));
  assert.match((e as Error).message, /letterboxes to a 32768x32768 canvas/);
  assert.ok(process.memoryUsage.rss() - before < 200 * 2 ** 20, 'no canvas was allocated');
});

test('damaged ONNX sidecars that crashed later code or were accepted are refused, naming the file', async () => {
  // The findings of the first sidecar run (TypeError 'dims is not iterable', dims of Infinity or 2^64,
  // output dims that do not match the classes, a missing tensor name, std 0 / null, a crop size of 0).
  for (const i of [41, 43, 52, 78, 93, 122, 176, 240, 246, 254, 266, 333, 341]) {
    const e = await replay('onnx-sidecar', i);
    assert.ok(e instanceof Error, `#${i} accepted`);
  }
  const good = JSON.parse(readFileSync(join(seedDir(), 'model.json'), 'utf8')) as Record<string, unknown>;
  const path = join(dir, 'model.json');
  writeFileSync(path, JSON.stringify(good));
  assert.equal(readSidecar(path).classes.length, 3, 'control: the seed sidecar is accepted');
  for (const [k, v] of [
    ['input', { name: 'input', dims: 'x' }],
    ['output', { name: 'logits', dims: [4] }],
    ['classes', [1, 2, 3]],
    ['preprocess', { ...(good['preprocess'] as object), cropPct: 0 }],
    ['preprocess', { ...(good['preprocess'] as object), std: [1, 1, 0] }],
  ] as const) {
    writeFileSync(path, JSON.stringify({ ...good, [k]: v }));
    assert.throws(
      () => readSidecar(path),
      (e: Error) => e.constructor === Error && e.message.startsWith(path),
      `${k}: ${JSON.stringify(v)}`,
    );
  }
});

test('a JSON manifest sample with an empty path is refused, naming the manifest (it was accepted as the folder itself)', async () => {
  for (const i of [25443, 66062, 79146])
    assert.ok((await replay('manifest-json', i)) instanceof Error, `#${i} accepted`);
});

test('a .pth whose ZIP64 fields exceed 2^53 is refused with WeightFileError naming the file (it was a bare RangeError)', async () => {
  for (const i of [32729, 95203]) {
    const e = await replay('pth', i);
    assert.ok(
      e instanceof WeightFileError && e.code === 'WEIGHTS_BAD_ZIP' && /beyond 2\^53/.test(e.message),
      String(e),
    );
  }
});

// ---------------------------------------------------------------------------------------------
// Pickles that name globals outside the allow-list

const seedMembers = (() => {
  const z = ZipArchive.openSync(join(seedDir(), 'state-dict.pth'));
  try {
    return [...z.entries.keys()].map((name) => ({ name, data: z.readSync(name) }));
  } finally {
    z.close();
  }
})();

/** The seed checkpoint with data.pkl replaced by `pickle` (a latin-1 string of opcodes). */
function pthWithPickle(name: string, pickle: string): string {
  const data = Uint8Array.from(pickle, (c) => c.charCodeAt(0));
  const path = join(dir, `${name}.pth`);
  writeFileSync(
    path,
    buildStoredZip(seedMembers.map((m) => (m.name.endsWith('data.pkl') ? { name: m.name, data } : m))),
  );
  return path;
}

const marker = join(dir, 'pwned');
const sh = `touch ${marker}`;
const str = (s: string): string => `X${String.fromCharCode(s.length & 255, (s.length >> 8) & 255, 0, 0)}${s}`;
const UNSAFE: [string, string][] = [
  ['GLOBAL os.system + REDUCE', `\x80\x02cos\nsystem\n(${str(sh)}tR.`],
  ['GLOBAL posix.system + REDUCE', `\x80\x02cposix\nsystem\n(${str(sh)}tR.`],
  ['GLOBAL builtins.eval + REDUCE', `\x80\x02cbuiltins\neval\n(${str(`__import__('os').system('${sh}')`)}tR.`],
  ['GLOBAL __builtin__.exec + REDUCE', `\x80\x02c__builtin__\nexec\n(${str('import os')}tR.`],
  [
    'STACK_GLOBAL subprocess.Popen + REDUCE',
    `\x80\x04\x8c\nsubprocess\x8c\x05Popen\x93(${str('touch')}${str(marker)}\x86\x85R.`,
  ],
  ['STACK_GLOBAL builtins.getattr', `\x80\x04\x8c\x08builtins\x8c\x07getattr\x93.`],
  ['INST os.system', `\x80\x02(${str(sh)}ios\nsystem\n.`],
  ['OBJ with os.system', `\x80\x02(cos\nsystem\n${str(sh)}o.`],
  ['NEWOBJ of a class outside the list', `\x80\x02ccollections\ndeque\n)\x81.`],
  ['EXT1 (extension registry)', `\x80\x02\x82\x01.`],
  ['torch global that is not a storage', `\x80\x02ctorch\nload\n(${str('x.pth')}tR.`],
  ['allowed rebuild, then os.system in BUILD state', `\x80\x02ccollections\nOrderedDict\n)Rcos\nsystem\nb.`],
];

test('a .pth whose pickle names os.system, builtins.eval, subprocess.Popen or any global outside the allow-list is refused and runs nothing', () => {
  for (const [what, pickle] of UNSAFE) {
    const path = pthWithPickle(what.replace(/\W+/g, '-'), pickle);
    assert.throws(
      () => readPthSync(path),
      (e: unknown) => {
        assert.ok(e instanceof WeightFileError, `${what}: ${String(e)}`);
        assert.ok(e.message.startsWith(path), `${what}: the message names the file`);
        assert.ok(['WEIGHTS_UNSAFE_PICKLE', 'WEIGHTS_BAD_PICKLE'].includes(e.code), `${what}: ${e.code} ${e.message}`);
        return true;
      },
      what,
    );
    assert.equal(existsSync(marker), false, `${what}: nothing was executed`);
  }
  // The globals themselves are named as unsafe (not merely a malformed pickle).
  assert.throws(
    () => readPthSync(pthWithPickle('os-system', UNSAFE[0]![1])),
    (e: WeightFileError) => e.code === 'WEIGHTS_UNSAFE_PICKLE' && /os\.system/.test(e.message),
  );
  assert.throws(
    () => readPthSync(pthWithPickle('eval', UNSAFE[2]![1])),
    (e: WeightFileError) => e.code === 'WEIGHTS_UNSAFE_PICKLE' && /builtins\.eval/.test(e.message),
  );
  // Control: the rebuilt zip with the original pickle loads (the builder is not what refuses them).
  const original = seedMembers.find((m) => m.name.endsWith('data.pkl'))!.data;
  const ok = pthWithPickle('original', String.fromCharCode(...original));
  assert.deepEqual([...readPthSync(ok).keys()].sort(), [
    'bn.num_batches_tracked',
    'bn.running_mean',
    'conv.weight',
    'fc.bias',
    'fc.weight',
    'tied',
  ]);
});
