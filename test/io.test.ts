// Weight files: safetensors read/write and torch.save checkpoints, checked bit for bit against
// files PyTorch writes (scripts/oracle/make_weights.py, run once into a temp dir).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  DTYPES,
  type DType,
  type RawTensor,
  PthCheckpoint,
  PthTensor,
  PyDict,
  PyTuple,
  SafetensorsReader,
  WeightFileError,
  extractStateDict,
  itemSize,
  loadStateDictFile,
  loadStateDictFileSync,
  numel,
  readPth,
  readPthSync,
  readSafetensors,
  readSafetensorsSync,
  unpickle,
  writeSafetensors,
  writeSafetensorsSync,
} from '../src/io/index.js';
import { ZipArchive } from '../src/io/zip.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const ORACLE_PYTHON = '/usr/bin/python3';

interface Expected {
  dtype: DType;
  shape: number[];
  sha256: string;
  hex?: string;
}
type Manifest = Record<string, Record<string, Expected>>;

let tmp: string;
let oracle: string;
let manifest: Manifest;

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'goodsrec-io-'));
  oracle = path.join(tmp, 'oracle');
  const r = spawnSync(ORACLE_PYTHON, [path.join(repoRoot, 'scripts/oracle/make_weights.py'), oracle], {
    encoding: 'utf8',
  });
  assert.equal(
    r.status,
    0,
    `oracle failed (needs Debian's python3-torch and python3-torchvision at ${ORACLE_PYTHON}): ${r.error?.message ?? r.stderr}`,
  );
  manifest = JSON.parse(fs.readFileSync(path.join(oracle, 'manifest.json'), 'utf8')) as Manifest;
});

after(() => {
  if (tmp !== undefined) fs.rmSync(tmp, { recursive: true, force: true });
});

const o = (name: string): string => path.join(oracle, name);
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function assertMatches(actual: Map<string, RawTensor>, expected: Record<string, Expected>, what: string): void {
  assert.deepEqual([...actual.keys()].sort(), Object.keys(expected).sort(), `${what}: tensor names`);
  for (const [k, e] of Object.entries(expected)) {
    const t = actual.get(k)!;
    assert.equal(t.dtype, e.dtype, `${what}: dtype of ${k}`);
    assert.deepEqual(t.shape, e.shape, `${what}: shape of ${k}`);
    assert.equal(t.data.byteLength, numel(e.shape) * itemSize(e.dtype), `${what}: byte length of ${k}`);
    if (e.hex !== undefined) assert.equal(Buffer.from(t.data).toString('hex'), e.hex, `${what}: bytes of ${k}`);
    assert.equal(sha256(t.data), e.sha256, `${what}: sha256 of ${k}`);
  }
}

/** Deterministic bytes (mulberry32), so failures reproduce. */
function randomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let a = seed >>> 0;
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((t ^ (t >>> 14)) >>> 0) & 0xff;
  }
  return out;
}

function randomTensor(dtype: DType, shape: number[], seed: number): RawTensor {
  const data = randomBytes(numel(shape) * itemSize(dtype), seed);
  if (dtype === 'bool') for (let i = 0; i < data.length; i++) data[i]! &= 1;
  return { dtype, shape, data };
}

/** A safetensors file from a header (object or raw text) and a data buffer. */
function craft(name: string, header: unknown, data: Uint8Array | number = 0, lengthOverride?: bigint): string {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const h = new TextEncoder().encode(text);
  const body = typeof data === 'number' ? new Uint8Array(data) : data;
  const buf = new Uint8Array(8 + h.length + body.length);
  new DataView(buf.buffer).setBigUint64(0, lengthOverride ?? BigInt(h.length), true);
  buf.set(h, 8);
  buf.set(body, 8 + h.length);
  const p = path.join(tmp, name);
  fs.writeFileSync(p, buf);
  return p;
}

async function rejectsWith(file: string, code: string, pattern: RegExp): Promise<void> {
  for (const attempt of [() => SafetensorsReader.open(file), async () => SafetensorsReader.openSync(file)]) {
    await assert.rejects(attempt, (err: unknown) => {
      assert.ok(err instanceof WeightFileError, `expected a WeightFileError, got ${String(err)}`);
      assert.equal(err.code, code, err.message);
      assert.ok(err.message.startsWith(`${file}: `), `message names the file: ${err.message}`);
      assert.match(err.message, pattern);
      return true;
    });
  }
}

describe('safetensors', () => {
  test('round trip is bit-exact for every dtype, sync and async, with metadata', async () => {
    const tensors = new Map<string, RawTensor>();
    DTYPES.forEach((dt, i) => tensors.set(`t.${dt}`, randomTensor(dt, [3, i + 1, 2], 100 + i)));
    tensors.set('scalar', randomTensor('float64', [], 7));
    tensors.set('empty', randomTensor('float32', [0, 4], 8));
    tensors.set('odd.bytes', randomTensor('uint8', [5], 9));
    const meta = { format: 'pt', note: 'ünïcode' };

    const a = path.join(tmp, 'rt-async.safetensors');
    const s = path.join(tmp, 'rt-sync.safetensors');
    await writeSafetensors(a, tensors, meta);
    writeSafetensorsSync(s, Object.fromEntries(tensors), meta);
    assert.deepEqual(fs.readFileSync(a), fs.readFileSync(s), 'sync and async writers produce the same file');

    for (const back of [await readSafetensors(a), readSafetensorsSync(s)]) {
      assert.deepEqual([...back.keys()].sort(), [...tensors.keys()].sort());
      for (const [k, t] of tensors) {
        const b = back.get(k)!;
        assert.equal(b.dtype, t.dtype, k);
        assert.deepEqual(b.shape, t.shape, k);
        assert.deepEqual(Buffer.from(b.data), Buffer.from(t.data), `bytes of ${k}`);
      }
    }
    const r = await SafetensorsReader.open(a);
    try {
      assert.deepEqual(r.metadata, meta);
      // Header padded to 8 bytes and tensors ordered by element size: each one starts aligned.
      for (const k of r.keys()) {
        const i = r.info(k);
        assert.equal(i.offset % itemSize(i.dtype), 0, `${k} at ${i.offset} is aligned`);
      }
      assert.equal((r.info(r.keys()[0]!).offset - 8) % 8, 0, 'header length is a multiple of 8');
    } finally {
      r.close();
    }
    // No temp files left beside the target.
    assert.deepEqual(
      fs.readdirSync(tmp).filter((f) => f.endsWith('.tmp')),
      [],
    );
  });

  test('reads into a caller-owned buffer, tensor by tensor', async () => {
    const p = path.join(tmp, 'into.safetensors');
    const t = randomTensor('float32', [64, 33], 42);
    await writeSafetensors(p, { w: t, b: randomTensor('int64', [3], 43) });
    const r = SafetensorsReader.openSync(p);
    try {
      const arena = new Uint8Array(r.info('w').byteLength + 16);
      const target = arena.subarray(16);
      const got = r.readSync('w', target);
      assert.equal(got.data.buffer, arena.buffer, 'no intermediate copy');
      assert.deepEqual(Buffer.from(target), Buffer.from(t.data));
      const again = await r.read('w', new Uint8Array(r.info('w').byteLength));
      assert.deepEqual(Buffer.from(again.data), Buffer.from(t.data));
      assert.throws(() => r.info('nope'), /no tensor named "nope"/);
    } finally {
      r.close();
    }
    assert.throws(() => r.readSync('w'), /reader is closed/);
  });

  test('lazy tensors are loaded one at a time while writing', async () => {
    const p = path.join(tmp, 'lazy.safetensors');
    const src = [randomTensor('bfloat16', [10, 3], 1), randomTensor('int8', [7], 2)];
    const loaded: number[] = [];
    await writeSafetensors(p, {
      a: { dtype: 'bfloat16', shape: [10, 3], load: async () => (loaded.push(0), src[0]!.data) },
      b: { dtype: 'int8', shape: [7], load: () => (loaded.push(1), src[1]!.data) },
    });
    assert.deepEqual(loaded, [0, 1]);
    const back = await readSafetensors(p);
    assert.deepEqual(Buffer.from(back.get('a')!.data), Buffer.from(src[0]!.data));
    assert.deepEqual(Buffer.from(back.get('b')!.data), Buffer.from(src[1]!.data));
  });

  test('a failed write leaves the previous file intact and no temp file', async () => {
    const p = path.join(tmp, 'atomic.safetensors');
    await writeSafetensors(p, { x: randomTensor('float32', [4], 5) });
    const before = fs.readFileSync(p);
    await assert.rejects(
      writeSafetensors(p, {
        a: randomTensor('float32', [1000], 6),
        z: { dtype: 'float32', shape: [2], load: () => Promise.reject(new Error('device lost')) },
      }),
      /device lost/,
    );
    assert.deepEqual(fs.readFileSync(p), before);
    assert.deepEqual(
      fs.readdirSync(tmp).filter((f) => f.includes('atomic') && f !== 'atomic.safetensors'),
      [],
    );
  });

  test('writer rejects bad input with a clear message', () => {
    const p = path.join(tmp, 'bad-input.safetensors');
    assert.throws(
      () => writeSafetensorsSync(p, { a: { dtype: 'float32', shape: [2, 2], data: new Uint8Array(15) } }),
      (e: unknown) =>
        e instanceof WeightFileError &&
        e.code === 'WEIGHTS_INVALID_ARGUMENT' &&
        /needs 16 bytes but data has 15/.test(e.message),
    );
    assert.throws(
      () => writeSafetensorsSync(p, { a: { dtype: 'complex64' as DType, shape: [1], data: new Uint8Array(8) } }),
      /unknown dtype "complex64"/,
    );
    assert.throws(
      () => writeSafetensorsSync(p, { a: { dtype: 'uint8', shape: [1.5], data: new Uint8Array(1) } }),
      /not a list of non-negative integers/,
    );
    assert.throws(
      () => writeSafetensorsSync(p, { __metadata__: randomTensor('uint8', [1], 1) }),
      /can't be used as a tensor name/,
    );
    assert.equal(fs.existsSync(p), false);
    const nowhere = path.join(tmp, 'no-such-dir', 'w.safetensors');
    assert.throws(
      () => writeSafetensorsSync(nowhere, { a: randomTensor('uint8', [1], 1) }),
      (e: unknown) =>
        e instanceof WeightFileError && e.code === 'WEIGHTS_IO' && e.message.startsWith(`${nowhere}: could not write`),
    );
  });

  test('a file written by PyTorch (oracle) reads bit-exactly, every dtype and special values', async () => {
    const file = o('dtypes.safetensors');
    assertMatches(await readSafetensors(file), manifest['dtypes.safetensors']!, file);
    const r = await SafetensorsReader.open(file);
    assert.deepEqual(r.metadata, { format: 'pt', source: 'oracle' });
    r.close();
  });

  test('torchvision ResNet-50 written by the oracle reads completely and bit-exactly', async () => {
    const file = o('resnet50.safetensors');
    const r = await SafetensorsReader.open(file);
    try {
      const expected = manifest['resnet50.safetensors']!;
      assert.deepEqual(r.keys(), Object.keys(expected), 'names in file order');
      // One buffer reused for every tensor: the whole file is never in memory at once.
      const maxBytes = Math.max(...r.keys().map((k) => r.info(k).byteLength));
      const scratch = new Uint8Array(maxBytes);
      for (const k of r.keys()) {
        const t = await r.read(k, scratch);
        assert.deepEqual(t.shape, expected[k]!.shape, k);
        assert.equal(t.dtype, expected[k]!.dtype, k);
        assert.equal(sha256(t.data), expected[k]!.sha256, k);
      }
      assert.deepEqual(r.info('layer1.0.conv1.weight').shape, [64, 64, 1, 1]);
      assert.equal(r.info('bn1.num_batches_tracked').dtype, 'int64');
    } finally {
      r.close();
    }
  });

  describe('malformed files are rejected with a message naming the file and the problem', () => {
    const ok = { a: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] } };

    test('shorter than the length prefix', async () => {
      const p = path.join(tmp, 'tiny.safetensors');
      fs.writeFileSync(p, new Uint8Array(5));
      await rejectsWith(p, 'WEIGHTS_TRUNCATED', /5 bytes, fewer than the 8-byte header length/);
    });
    test('header length beyond the file size', async () => {
      await rejectsWith(
        craft('hlen.safetensors', ok, 16, 1_000_000n),
        'WEIGHTS_BAD_HEADER',
        /header length 1000000 exceeds the file size/,
      );
      await rejectsWith(craft('hlen64.safetensors', ok, 16, 1n << 63n), 'WEIGHTS_BAD_HEADER', /exceeds the file size/);
    });
    test('bad JSON, not an object, not UTF-8', async () => {
      await rejectsWith(
        craft('json.safetensors', '{"a": {"dtype": "F32",', 16),
        'WEIGHTS_BAD_HEADER',
        /header is not valid JSON/,
      );
      await rejectsWith(craft('array.safetensors', '[1, 2]', 0), 'WEIGHTS_BAD_HEADER', /header JSON is not an object/);
      const p = craft('utf8.safetensors', '{"\u00ff": 1}', 0);
      const b = fs.readFileSync(p);
      b[10] = 0xff; // break the UTF-8 sequence
      fs.writeFileSync(p, b);
      await rejectsWith(p, 'WEIGHTS_BAD_HEADER', /not valid UTF-8/);
    });
    test('unknown dtype', async () => {
      await rejectsWith(
        craft('dtype.safetensors', { a: { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] } }, 2),
        'WEIGHTS_UNKNOWN_DTYPE',
        /tensor "a": unknown or unsupported dtype "F8_E4M3"/,
      );
      await rejectsWith(
        craft('nodtype.safetensors', { a: { shape: [2], data_offsets: [0, 2] } }, 2),
        'WEIGHTS_BAD_HEADER',
        /"dtype" is missing/,
      );
    });
    test('shape and offsets disagree on the size', async () => {
      await rejectsWith(
        craft('size.safetensors', { a: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 12] } }, 12),
        'WEIGHTS_BAD_HEADER',
        /tensor "a": shape \[2,2\] of F32 needs 16 bytes but data_offsets \[0, 12\] span 12/,
      );
      await rejectsWith(
        craft('huge.safetensors', { a: { dtype: 'F64', shape: [2 ** 40, 2 ** 40], data_offsets: [0, 8] } }, 8),
        'WEIGHTS_BAD_HEADER',
        /needs \d+ bytes but data_offsets/,
      );
    });
    test('non-integer or negative shapes, malformed offsets', async () => {
      for (const [i, shape] of [[2.5], [-1], ['3'], [null]].entries()) {
        await rejectsWith(
          craft(`shape${i}.safetensors`, { a: { dtype: 'U8', shape, data_offsets: [0, 2] } }, 2),
          'WEIGHTS_BAD_HEADER',
          /tensor "a": shape .* not a non-negative integer/,
        );
      }
      await rejectsWith(
        craft('shape-obj.safetensors', { a: { dtype: 'U8', shape: 3, data_offsets: [0, 3] } }, 3),
        'WEIGHTS_BAD_HEADER',
        /"shape" is missing or not an array/,
      );
      await rejectsWith(
        craft('off1.safetensors', { a: { dtype: 'U8', shape: [2], data_offsets: [0] } }, 2),
        'WEIGHTS_BAD_HEADER',
        /"data_offsets" must be \[begin, end\]/,
      );
      await rejectsWith(
        craft('off2.safetensors', { a: { dtype: 'U8', shape: [0], data_offsets: [5, 2] } }, 5),
        'WEIGHTS_BAD_HEADER',
        /0 <= begin <= end/,
      );
      await rejectsWith(
        craft('off3.safetensors', { a: { dtype: 'U8', shape: [2], data_offsets: [0.5, 2.5] } }, 3),
        'WEIGHTS_BAD_HEADER',
        /not integers/,
      );
    });
    test('offsets out of range', async () => {
      await rejectsWith(
        craft(
          'range.safetensors',
          {
            a: { dtype: 'U8', shape: [4], data_offsets: [0, 4] },
            b: { dtype: 'U8', shape: [4], data_offsets: [1000, 1004] },
          },
          8,
        ),
        'WEIGHTS_BAD_HEADER',
        /tensor "b": data_offsets \[1000, 1004\] are out of range \(the data buffer holds 8 bytes\)/,
      );
    });
    test('overlapping tensors', async () => {
      await rejectsWith(
        craft(
          'overlap.safetensors',
          {
            a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
            b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
          },
          12,
        ),
        'WEIGHTS_BAD_HEADER',
        /tensors "a" and "b" overlap/,
      );
    });
    test('holes and trailing bytes (the buffer must be fully covered)', async () => {
      await rejectsWith(
        craft(
          'hole.safetensors',
          {
            a: { dtype: 'U8', shape: [4], data_offsets: [0, 4] },
            b: { dtype: 'U8', shape: [4], data_offsets: [8, 12] },
          },
          12,
        ),
        'WEIGHTS_BAD_HEADER',
        /hole: bytes from 4 up to tensor "b"/,
      );
      await rejectsWith(craft('trail.safetensors', ok, 20), 'WEIGHTS_BAD_HEADER', /4 trailing bytes/);
    });
    test('truncated file', async () => {
      const p = path.join(tmp, 'cut.safetensors');
      fs.writeFileSync(p, fs.readFileSync(o('dtypes.safetensors')).subarray(0, -10));
      await rejectsWith(
        p,
        'WEIGHTS_TRUNCATED',
        /file is truncated: the header describes \d+ bytes of tensor data but only \d+ follow it/,
      );
      const q = path.join(tmp, 'cut-header.safetensors');
      fs.writeFileSync(q, fs.readFileSync(o('dtypes.safetensors')).subarray(0, 100));
      await rejectsWith(q, 'WEIGHTS_BAD_HEADER', /exceeds the file size \(100 bytes\)/);
    });
    test('duplicate tensor names', async () => {
      await rejectsWith(
        craft(
          'dup.safetensors',
          '{"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}, "a": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]}}',
          4,
        ),
        'WEIGHTS_BAD_HEADER',
        /duplicate tensor name "a"/,
      );
      // The same name nested deeper is not a duplicate.
      const p = craft(
        'nodup.safetensors',
        { __metadata__: { a: 'x' }, a: { dtype: 'U8', shape: [2], data_offsets: [0, 2] } },
        2,
      );
      assert.deepEqual((await readSafetensors(p)).get('a')!.shape, [2]);
    });
    test('bad metadata', async () => {
      await rejectsWith(
        craft('meta.safetensors', { __metadata__: { n: 3 }, ...ok }, 16),
        'WEIGHTS_BAD_HEADER',
        /"__metadata__" value for "n" is 3, not a string/,
      );
    });
    test('keys listed out of offset order are fine', async () => {
      const p = craft(
        'unordered.safetensors',
        {
          z: { dtype: 'U8', shape: [2], data_offsets: [3, 5] },
          e: { dtype: 'BOOL', shape: [0], data_offsets: [3, 3] },
          a: { dtype: 'U8', shape: [3], data_offsets: [0, 3] },
        },
        Uint8Array.from([1, 2, 3, 4, 5]),
      );
      const m = await readSafetensors(p);
      assert.deepEqual([...m.get('a')!.data], [1, 2, 3]);
      assert.deepEqual([...m.get('z')!.data], [4, 5]);
      assert.equal(m.get('e')!.data.byteLength, 0);
    });
  });
});

describe('PyTorch checkpoints (.pth)', () => {
  test('every dtype reads bit-exactly, pickle protocols 2, 4 and 5, sync and async', async () => {
    for (const name of ['dtypes.pth', 'dtypes_p4.pth', 'dtypes_p5.pth']) {
      assertMatches(await readPth(o(name)), manifest[name]!, name);
      assertMatches(readPthSync(o(name)), manifest[name]!, name);
    }
  });

  test('strided views (transposed, sliced, offset, expanded, channels_last) are copied out correctly', async () => {
    assertMatches(await readPth(o('views.pth')), manifest['views.pth']!, 'views.pth');
    const ck = PthCheckpoint.openSync(o('views.pth'));
    try {
      const t = ck.tensors();
      assert.equal(t.get('transposed')!.isContiguous, false);
      assert.deepEqual(t.get('expanded')!.stride, [0, 1]);
      assert.equal(t.get('tail_of_big')!.storageOffset, 990);
      const shared = [...ck.sharedStorages().values()].map((names) => names.sort());
      assert.ok(
        shared.some((n) => ['base', 'element', 'row', 'sliced', 'transposed'].every((x) => n.includes(x))),
        `views of one storage are reported as sharing it: ${JSON.stringify(shared)}`,
      );
    } finally {
      ck.close();
    }
  });

  test('nested containers, parameters and plain values', async () => {
    assertMatches(await readPth(o('nested.pth')), manifest['nested.pth']!, 'nested.pth');
    const ck = await PthCheckpoint.open(o('nested.pth'));
    try {
      const root = ck.root;
      assert.ok(root instanceof PyDict);
      const w = root.get('w');
      assert.ok(w instanceof PthTensor && w.isParameter && w.requiresGrad);
      const meta = root.get('meta');
      assert.ok(meta instanceof PyDict);
      assert.equal(meta.get('epoch'), 3);
      assert.equal(meta.get('lr'), 0.1);
      assert.equal(meta.get('name'), 'résumé');
      assert.equal(meta.get('flag'), true);
      assert.equal(meta.get('none'), null);
      assert.equal(meta.get('big'), 2n ** 70n);
      assert.equal(meta.get('neg'), -5);
      const shape = root.get('shape');
      assert.ok(shape instanceof PyTuple);
      assert.deepEqual(shape.items, [2, 3]);
    } finally {
      ck.close();
    }
  });

  test('torchvision ResNet-50 saved by torch.save reads completely with right shapes and bytes', async () => {
    const file = o('resnet50.pth');
    const sd = await readPth(file);
    assert.deepEqual([...sd.keys()], Object.keys(manifest['resnet50.pth']!), 'state-dict order');
    assertMatches(sd, manifest['resnet50.pth']!, file);
    assert.deepEqual(sd.get('fc.weight')!.shape, [1000, 2048]);
    assert.deepEqual(sd.get('layer4.2.bn3.running_var')!.shape, [2048]);
    const ck = PthCheckpoint.openSync(file);
    assert.equal(ck.sharedStorages().size, 0);
    assert.equal(ck.byteOrder, 'little');
    ck.close();
  });

  test('big-endian storages (byteorder record) are swapped to little-endian', async () => {
    assertMatches(await readPth(o('big_endian.pth')), manifest['big_endian.pth']!, 'big_endian.pth');
  });

  test('wrapped checkpoints and DataParallel prefixes are unwrapped', async () => {
    const expected = manifest['small_keys']!;
    for (const name of [
      'wrapped_state_dict.pth',
      'wrapped_model.pth',
      'wrapped_model_state_dict.pth',
      'dataparallel.pth',
      'dataparallel.safetensors',
    ]) {
      const sd = await loadStateDictFile(o(name));
      assert.deepEqual([...sd.keys()], Object.keys(expected), `${name}: keys`);
      const ref = manifest[name]!;
      const refKey = (k: string): string => (k in ref ? k : `module.${k}`);
      for (const [k, t] of sd) {
        assert.deepEqual(t.shape, expected[k]!.shape, `${name}: ${k}`);
        assert.equal(sha256(t.data), ref[refKey(k)]!.sha256, `${name}: ${k}`);
      }
      assert.deepEqual([...loadStateDictFileSync(o(name)).keys()], [...sd.keys()], `${name}: sync`);
    }
    // readPth itself doesn't unwrap: it flattens the whole checkpoint.
    const raw = await readPth(o('wrapped_state_dict.pth'));
    assert.ok([...raw.keys()].every((k) => k.startsWith('state_dict.module.')));
    // A flat map loses only an all-keys `module.` prefix.
    assert.deepEqual(
      [
        ...extractStateDict(
          new Map([
            ['module.a', 1],
            ['module.b', 2],
          ]),
        ).keys(),
      ],
      ['a', 'b'],
    );
    assert.deepEqual(
      [
        ...extractStateDict(
          new Map([
            ['module.a', 1],
            ['b', 2],
          ]),
        ).keys(),
      ],
      ['module.a', 'b'],
    );
  });

  test('loadStateDictFile picks the format by content, not extension', async () => {
    const p = path.join(tmp, 'really-safetensors.pth');
    fs.copyFileSync(o('dtypes.safetensors'), p);
    assertMatches(await loadStateDictFile(p), manifest['dtypes.safetensors']!, p);
    const q = path.join(tmp, 'really-pth.safetensors');
    fs.copyFileSync(o('dtypes.pth'), q);
    assertMatches(await loadStateDictFile(q), manifest['dtypes.pth']!, q);
  });

  describe('malicious pickles are refused, naming the global, and nothing runs', () => {
    const cases: [string, RegExp][] = [
      ['evil_system.pth', /refers to the global "posix\.system", which is not allowed/],
      ['evil_eval.pth', /refers to the global "builtins\.eval", which is not allowed/],
      ['evil_toplevel.pth', /refers to the global "posix\.system"/],
    ];
    for (const [name, pattern] of cases) {
      test(name, async () => {
        for (const load of [
          () => readPth(o(name)),
          () => loadStateDictFile(o(name)),
          async () => readPthSync(o(name)),
        ]) {
          await assert.rejects(load, (e: unknown) => {
            assert.ok(e instanceof WeightFileError, String(e));
            assert.equal(e.code, 'WEIGHTS_UNSAFE_PICKLE');
            assert.ok(e.message.startsWith(o(name)), e.message);
            assert.match(e.message, pattern);
            return true;
          });
        }
        assert.equal(fs.existsSync(o('PWNED')), false, 'the payload did not run');
      });
    }

    test('hand-made pickles: GLOBAL os.system, STACK_GLOBAL, INST, and extension codes', () => {
      const enc = (s: string): number[] => [...Buffer.from(s, 'latin1')];
      const cases: [number[], RegExp][] = [
        // PROTO 2; GLOBAL 'os system'; SHORT_BINUNICODE? (protocol 2 has BINUNICODE) 'id'; TUPLE1; REDUCE; STOP
        [[0x80, 2, ...enc('cos\nsystem\n'), 0x58, 2, 0, 0, 0, ...enc('id'), 0x85, 0x52, 0x2e], /"os\.system"/],
        [[0x80, 4, 0x8c, 8, ...enc('builtins'), 0x8c, 4, ...enc('exec'), 0x93, 0x2e], /"builtins\.exec"/],
        [[0x80, 2, 0x28, ...enc('isubprocess\nPopen\n'), 0x2e], /"subprocess\.Popen"/],
      ];
      for (const [bytes, pattern] of cases) {
        assert.throws(
          () => unpickle(Uint8Array.from(bytes), { file: 'crafted.pkl', findGlobal: () => undefined }),
          (e: unknown) => e instanceof WeightFileError && e.code === 'WEIGHTS_UNSAFE_PICKLE' && pattern.test(e.message),
        );
      }
      assert.throws(
        () => unpickle(Uint8Array.from([0x80, 2, 0x82, 1, 0x2e]), { file: 'f', findGlobal: () => undefined }),
        /extension registry/,
      );
    });
  });

  describe('damaged or unsupported files give a clear error', () => {
    const expectError = async (file: string, code: string, pattern: RegExp): Promise<void> => {
      for (const load of [() => readPth(file), async () => readPthSync(file), () => loadStateDictFile(file)]) {
        await assert.rejects(load, (e: unknown) => {
          assert.ok(e instanceof WeightFileError, String(e));
          assert.equal(e.code, code, e.message);
          assert.ok(e.message.startsWith(`${file}: `), e.message);
          assert.match(e.message, pattern);
          return true;
        });
      }
    };

    test('truncated archive: central directory missing', async () => {
      const whole = fs.readFileSync(o('resnet50.pth'));
      for (const keep of [0.5, 0.999]) {
        const p = path.join(tmp, `cut-${keep}.pth`);
        fs.writeFileSync(p, whole.subarray(0, Math.floor(whole.length * keep)));
        await expectError(p, 'WEIGHTS_BAD_ZIP', /zip central directory is missing .*truncated/);
      }
      const empty = path.join(tmp, 'empty.pth');
      fs.writeFileSync(empty, '');
      await assert.rejects(readPth(empty), /file is empty/);
    });

    test('a storage record is missing', async () => {
      await expectError(o('missing_entry.pth'), 'WEIGHTS_BAD_ZIP', /zip entry "[^"]+\/data\/0" is missing/);
    });

    test('the pickle is truncated', async () => {
      await expectError(o('truncated_pickle.pth'), 'WEIGHTS_BAD_PICKLE', /data\.pkl is truncated/);
    });

    test('a corrupted storage fails its CRC', async () => {
      const b = fs.readFileSync(o('dtypes.pth'));
      const zip = ZipArchive.openSync(o('dtypes.pth'));
      const ck = PthCheckpoint.openSync(o('dtypes.pth'));
      const entry = zip.entry(`${ck.prefix}data/${ck.tensors().get('f32')!.storage.key}`);
      ck.close();
      zip.close();
      // Data starts after the 30-byte local header, the name and torch.save's alignment padding.
      const lh = entry.localHeaderOffset;
      b[lh + 30 + b.readUInt16LE(lh + 26) + b.readUInt16LE(lh + 28) + 4]! ^= 0xff;
      const p = path.join(tmp, 'crc.pth');
      fs.writeFileSync(p, b);
      await assert.rejects(readPth(p), /zip entry "[^"]+\/data\/\d+" is corrupt \(CRC-32 mismatch\)/);
    });

    test('legacy (pre-1.6) torch.save format', async () => {
      await expectError(
        o('legacy.pth'),
        'WEIGHTS_UNSUPPORTED_FORMAT',
        /legacy \(pre-1\.6, non-zip\) torch\.save format/,
      );
    });

    test('not a checkpoint at all', async () => {
      const p = path.join(tmp, 'noise.pth');
      fs.writeFileSync(
        p,
        randomBytes(300, 3).map((x, i) => (i === 0 ? 0x41 : x)),
      );
      await expectError(p, 'WEIGHTS_UNSUPPORTED_FORMAT', /not a PyTorch checkpoint/);
      await assert.rejects(
        readPth(path.join(tmp, 'does-not-exist.pth')),
        (e: unknown) => e instanceof WeightFileError && e.code === 'WEIGHTS_IO' && /cannot open/.test(e.message),
      );
    });
  });
});
