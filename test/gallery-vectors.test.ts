// Gallery vectors in f16 and i8 (issue 27 item 5): the half-precision conversion against exact cases, each
// precision's round trip through the gallery file (and an old f32 file without meta.vectors), recall@1 of
// f16/i8 search against exact f32 search on a seeded clustered set (float64 scores, so the same on every
// CPU) with an i4-like grid as the control that must fail the bound, the same through usearch's indexes,
// and the precision shown by `gallery list`. Refine rows (f32 rows kept in the file, read on demand to
// re-rank): their round trip, recall, derived galleries, a file replaced under a gallery, the server's writes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  appendToGallery,
  filterGallery,
  readGallery,
  reviveGallery,
  storedRowsOf,
  withPrecision,
  writeGallery,
  type Gallery,
} from '../src/gallery/format.js';
import { BruteForceIndex, DEFAULT_HNSW, HnswIndex, hnswPathFor } from '../src/gallery/hnsw-index.js';
import { openGalleryIndex } from '../src/gallery/open-index.js';
import { decodeF16, decodeI8, encodeF16, quantizeRows, toHalf } from '../src/gallery/vectors.js';
import { closeRefineFiles, materialiseRefine } from '../src/gallery/refine.js';
import { ServedGallery } from '../src/serve/served-gallery.js';
import { runCli } from './helpers/cli.js';
import { standInGallery } from './helpers/stand-in-gallery.js';

const work = mkdtempSync(join(tmpdir(), 'goodsrec-gallery-vectors-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

/** Seeded gaussian rows (LCG + Box-Muller: V8's Math is the same on every x86 CPU). */
function gaussian(seed: number): () => number {
  let s = seed >>> 0;
  const u = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 2 ** 32;
  };
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

function normaliseRows(x: Float32Array, d: number): Float32Array {
  for (let o = 0; o < x.length; o += d) {
    let n = 0;
    for (let i = o; i < o + d; i++) n += x[i]! * x[i]!;
    const inv = 1 / Math.sqrt(n);
    for (let i = o; i < o + d; i++) x[i]! *= inv;
  }
  return x;
}

/** Gallery-like rows: `products` centres, 20 noisy photos each; queries are new photos of random products. */
function clustered(n: number, nq: number, d: number, seed: number): { rows: Float32Array; queries: Float32Array } {
  const g = gaussian(seed);
  const products = n / 20;
  const centres = normaliseRows(Float32Array.from({ length: products * d }, g), d);
  const noise = 0.6 / Math.sqrt(d);
  const photo = (out: Float32Array, row: number, p: number): void => {
    for (let i = 0; i < d; i++) out[row * d + i] = centres[p * d + i]! + g() * noise;
  };
  const rows = new Float32Array(n * d);
  for (let r = 0; r < n; r++) photo(rows, r, r % products);
  const queries = new Float32Array(nq * d);
  for (let r = 0; r < nq; r++) photo(queries, r, Math.floor(((g() + 10) * 7919) % products));
  return { rows: normaliseRows(rows, d), queries: normaliseRows(queries, d) };
}

/** Exact top-1 of each query in float64. */
function top1(rows: Float32Array, queries: Float32Array, d: number): Int32Array {
  const n = rows.length / d;
  const out = new Int32Array(queries.length / d);
  for (let q = 0; q < out.length; q++) {
    let best = -Infinity;
    for (let r = 0; r < n; r++) {
      let s = 0;
      for (let i = 0; i < d; i++) s += queries[q * d + i]! * rows[r * d + i]!;
      if (s > best) {
        best = s;
        out[q] = r;
      }
    }
  }
  return out;
}

const recall = (found: ArrayLike<number>, truth: Int32Array): number => {
  let hit = 0;
  for (let i = 0; i < truth.length; i++) if (found[i] === truth[i]) hit++;
  return hit / truth.length;
};

const gallery = (rows: Float32Array, d: number): Gallery => standInGallery(rows, d);

test('f16: exact cases, round to nearest even, overflow and subnormals', () => {
  const cases: [number, number][] = [
    [0, 0x0000],
    [-0, 0x8000],
    [1, 0x3c00],
    [-2, 0xc000],
    [65504, 0x7bff],
    [65520, 0x7c00], // halfway above the largest half: rounds to infinity
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // halfway to it: ties to even (zero)
    [3 * 2 ** -25, 0x0002], // 1.5 ulp: ties to even (2)
    [1 + 2 ** -11, 0x3c00], // halfway between 1 and the next half: ties to even (1)
    [1 + 3 * 2 ** -11, 0x3c02], // halfway between 1+2^-10 and 1+2^-9: to even (1+2^-9)
    [1 + 2 ** -11 + 2 ** -20, 0x3c01], // above halfway: up
    [0.1, 0x2e66],
  ];
  for (const [x, h] of cases) assert.equal(toHalf(x), h, `toHalf(${x})`);
  const back = decodeF16(Uint16Array.from(cases.map(([, h]) => h)));
  assert.deepEqual(
    Array.from(back.subarray(0, 7)),
    [0, -0, 1, -2, 65504, Infinity, 2 ** -24],
    'decoding the exact ones gives them back',
  );
  // Any float: relative error within half an ulp of f16 (2^-11) in the normal range.
  const g = gaussian(3);
  const x = Float32Array.from({ length: 10000 }, () => g() * 10);
  const y = decodeF16(encodeF16(x));
  let worst = 0;
  for (let i = 0; i < x.length; i++)
    if (Math.abs(x[i]!) > 2 ** -14) worst = Math.max(worst, Math.abs(y[i]! / x[i]! - 1));
  assert.ok(worst <= 2 ** -11 && worst > 2 ** -13, `worst relative error ${worst}`);
});

test('i8: per-vector max-abs codes, decoded to unit rows; re-quantizing them gives the same codes', () => {
  const d = 48;
  const { rows } = clustered(200, 1, d, 11);
  const codes = quantizeRows(rows, d);
  for (let r = 0; r < 200; r++) {
    let max = 0;
    for (let i = 0; i < d; i++) max = Math.max(max, Math.abs(codes[r * d + i]!));
    assert.equal(max, 127, `row ${r}: its largest component maps to 127`);
  }
  const decoded = decodeI8(codes, d);
  let worstNorm = 0;
  let worstCos = 1;
  for (let r = 0; r < 200; r++) {
    let n = 0;
    let c = 0;
    for (let i = 0; i < d; i++) {
      n += decoded[r * d + i]! ** 2;
      c += decoded[r * d + i]! * rows[r * d + i]!;
    }
    worstNorm = Math.max(worstNorm, Math.abs(Math.sqrt(n) - 1));
    worstCos = Math.min(worstCos, c);
  }
  assert.ok(worstNorm < 1e-6, `decoded rows are unit (${worstNorm})`);
  assert.ok(worstCos > 0.9999, `and keep their direction (worst cosine ${worstCos})`);
  assert.deepEqual(quantizeRows(decoded, d), codes, 'idempotent: a written i8 gallery reads back to the same codes');
  assert.deepEqual(Array.from(quantizeRows(new Float32Array(4), 4)), [0, 0, 0, 0], 'a zero row stays zero');
  assert.throws(() => quantizeRows(rows, d, 128), /levels must be an integer in \[1, 127\]/);
});

test('each precision round-trips through the gallery file; an old f32 file reads as before', () => {
  const d = 32;
  const { rows } = clustered(100, 1, d, 5);
  // An old file: no meta.vectors, float32 embeddings.
  const oldPath = join(work, 'old.gallery');
  writeGallery(oldPath, gallery(rows, d));
  const old = readGallery(oldPath);
  assert.equal(old.meta.vectors, undefined);
  assert.equal(storedRowsOf(old).precision, 'f32');
  assert.deepEqual(old.embeddings, rows);
  const header = (p: string): { embeddings: { dtype: string; shape: number[] } } => {
    const b = readFileSync(p);
    return JSON.parse(b.subarray(8, 8 + Number(b.readBigUInt64LE(0))).toString());
  };
  assert.equal(header(oldPath).embeddings.dtype, 'F32');

  const sizes: Record<string, number> = {};
  for (const [p, dtype] of [
    ['f32', 'F32'],
    ['f16', 'F16'],
    ['i8', 'I8'],
  ] as const) {
    const g = withPrecision(old, p);
    assert.equal(g.meta.vectors, p);
    const path = join(work, `${p}.gallery`);
    writeGallery(path, g);
    assert.equal(header(path).embeddings.dtype, dtype);
    assert.deepEqual(header(path).embeddings.shape, [100, d]);
    const back = readGallery(path);
    assert.equal(back.meta.vectors, p, 'the precision is recorded in the file');
    assert.deepEqual(storedRowsOf(back), storedRowsOf(g), `${p}: the stored rows come back bit for bit`);
    assert.deepEqual(back.embeddings, g.embeddings, `${p}: and decode to what the written gallery held`);
    let worst = 1;
    for (let r = 0; r < 100; r++) {
      let c = 0;
      for (let i = 0; i < d; i++) c += back.embeddings[r * d + i]! * rows[r * d + i]!;
      worst = Math.min(worst, c);
    }
    assert.ok(worst > 0.9995, `${p}: worst inner product with the f32 row ${worst}`);
    sizes[p] = storedRowsOf(back).data.byteLength;
    // Writes keep the precision without decoding: remove a class, enrol rows, write, read.
    const next = appendToGallery(
      filterGallery(back, (e) => e.class !== 'c3'),
      [{ class: 'new', path: '/photos/new.jpg' }],
      rows.subarray(0, d),
    );
    assert.equal(storedRowsOf(next).precision, p);
    writeGallery(path, next);
    const again = readGallery(path);
    assert.equal(again.meta.entries.length, 100 - 14 + 1);
    assert.deepEqual(storedRowsOf(again), storedRowsOf(next));
    assert.deepEqual(
      again.embeddings.subarray(-d),
      back.embeddings.subarray(0, d),
      'enrolled rows are quantized alike',
    );
    // A copy sent to a worker thread carries the stored rows only; revived, it decodes the same.
    const cloned = reviveGallery(structuredClone(again));
    assert.deepEqual(cloned.embeddings, again.embeddings);
    assert.equal(hnswPathFor(path, storedRowsOf(cloned)), hnswPathFor(path, storedRowsOf(again)));
  }
  assert.deepEqual(sizes, { f32: 100 * d * 4, f16: 100 * d * 2, i8: 100 * d });
  assert.equal(hnswPathFor(oldPath, rows), hnswPathFor(oldPath, storedRowsOf(old)), 'f32 graph names are unchanged');
  assert.notEqual(
    hnswPathFor(oldPath, storedRowsOf(withPrecision(old, 'f16'))),
    hnswPathFor(oldPath, rows),
    'a graph of another precision is another file',
  );

  // A file whose tensor does not match its recorded precision is refused, naming both.
  const lying = withPrecision(old, 'f32');
  const liar = join(work, 'liar.gallery');
  writeGallery(liar, lying);
  const b = readFileSync(liar);
  const json = b.subarray(8, 8 + Number(b.readBigUInt64LE(0))).toString();
  const patched = json.replace('\\"vectors\\":\\"f32\\"', '\\"vectors\\":\\"f16\\"');
  assert.notEqual(patched, json);
  writeFileSync(liar, Buffer.concat([b.subarray(0, 8), Buffer.from(patched), b.subarray(8 + Buffer.byteLength(json))]));
  assert.throws(() => readGallery(liar), /embeddings are float32, expected float16 \(vectors f16\)/);
  const unknown = json.replace('\\"vectors\\":\\"f32\\"', '\\"vectors\\":\\"f64\\"');
  writeFileSync(liar, Buffer.concat([b.subarray(0, 8), Buffer.from(unknown), b.subarray(8 + Buffer.byteLength(json))]));
  assert.throws(() => readGallery(liar), /unknown vector precision "f64" \(expected f32, f16 or i8\)/);
});

test('recall@1 against exact f32 search: f16 and i8 above the bound, an i4-like grid below it', () => {
  const d = 64;
  const { rows, queries } = clustered(6000, 400, d, 7);
  const truth = top1(rows, queries, d);
  const decoded = {
    f16: decodeF16(encodeF16(rows)),
    i8: decodeI8(quantizeRows(rows, d), d),
    i4: decodeI8(quantizeRows(rows, d, 7), d), // the control: 15 levels instead of 255
  };
  const r = Object.fromEntries(Object.entries(decoded).map(([k, v]) => [k, recall(top1(v, queries, d), truth)]));
  console.log(`recall@1 (float64 scores): ${JSON.stringify(r)}`);
  assert.ok(r.f16! >= 0.99, `f16 ${r.f16}`);
  assert.ok(r.i8! >= 0.95, `i8 ${r.i8}`);
  assert.ok(r.i4! < 0.95, `the coarse grid must fail the i8 bound: ${r.i4}`);

  // Through usearch: i8 brute force (integer cosine, queries quantized too) and the graphs holding f16 / i8
  // (built on one thread: a parallel build inserts in a varying order, so its recall varies a little).
  const g = gallery(rows, d);
  const found = (index: { searchRows(q: Float32Array, k: number): { indices: Int32Array; k: number } }) => {
    const res = index.searchRows(queries, 1);
    return Array.from({ length: truth.length }, (_, i) => res.indices[i * res.k]!);
  };
  const bf = recall(found(new BruteForceIndex(storedRowsOf(withPrecision(g, 'i8')), d)), truth);
  const hf16 = recall(found(HnswIndex.build(storedRowsOf(withPrecision(g, 'f16')), d, DEFAULT_HNSW, 1)), truth);
  const hi8 = recall(found(HnswIndex.build(storedRowsOf(withPrecision(g, 'i8')), d, DEFAULT_HNSW, 1)), truth);
  const hi4 = recall(
    found(HnswIndex.build({ precision: 'i8', data: quantizeRows(rows, d, 7) }, d, DEFAULT_HNSW, 1)),
    truth,
  );
  console.log(`usearch recall@1: i8 exact ${bf}, HNSW f16 ${hf16}, HNSW i8 ${hi8}, HNSW i4-like ${hi4}`);
  assert.ok(bf >= 0.95 && hi8 >= 0.95, `i8: exact ${bf}, HNSW ${hi8}`);
  assert.ok(hf16 >= 0.99, `HNSW f16 ${hf16}`);
  assert.ok(hi4 < 0.95, `HNSW over the coarse grid must fail: ${hi4}`);
});

test('gallery list shows the precision, convert changes it; build refuses an unknown one', () => {
  const d = 16;
  const { rows } = clustered(40, 1, d, 9);
  const path = join(work, 'listed.gallery');
  writeGallery(path, withPrecision(gallery(rows, d), 'i8'));
  let r = runCli(['gallery', 'list', path, '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).vectors, 'i8');
  r = runCli(['gallery', 'list', path]);
  assert.match(r.stdout, /16-d pooled embeddings, i8 vectors/);
  writeGallery(path, gallery(rows, d));
  assert.equal(JSON.parse(runCli(['gallery', 'list', path, '--json']).stdout).vectors, 'f32', 'an old file: f32');
  r = runCli(['gallery', 'convert', path, '--vectors', 'f16', '--out', join(work, 'converted.gallery')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /40 vectors f32 -> f16/);
  const converted = readGallery(join(work, 'converted.gallery'));
  assert.deepEqual(storedRowsOf(converted), storedRowsOf(withPrecision(gallery(rows, d), 'f16')));
  assert.deepEqual(converted.meta.entries, readGallery(path).meta.entries);
  r = runCli(['gallery', 'convert', join(work, 'converted.gallery'), '--vectors', 'f32']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /the f32 rows are the decoded f16 ones/);
  assert.equal(readGallery(join(work, 'converted.gallery')).meta.vectors, 'f32');
  r = runCli(['gallery', 'build', work, '--data', work, '--out', path, '--vectors', 'i4']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--vectors: expected 'f32', 'f16' or 'i8' but received 'i4'/);
});

test('f16/i8 galleries above the approximate threshold: the graph is saved per precision, reloaded, and scores as exact search', () => {
  const d = 32;
  const { rows, queries } = clustered(2000, 50, d, 13);
  for (const p of ['f16', 'i8'] as const) {
    const g = withPrecision(gallery(rows, d), p);
    g.meta.search = { approximateFrom: 100 };
    const path = join(work, `approx-${p}.gallery`);
    writeGallery(path, g);
    const built = openGalleryIndex(readGallery(path), { path, threads: 1 }); // one thread: a reproducible graph
    assert.equal(built.kind, 'approximate');
    assert.ok(existsSync(hnswPathFor(path, storedRowsOf(g))), 'saved under the name of its stored rows');
    const loaded = openGalleryIndex(readGallery(path), { path, threads: 1 }); // loads the saved graph
    const a = built.searchRows(queries, 5);
    const b = loaded.searchRows(queries, 5);
    assert.deepEqual(b, a, `${p}: the reloaded graph answers as the built one`);
    // Scores are the f32 query against the decoded row, as exact search over the decoded rows gives them.
    const exact = new BruteForceIndex(g.embeddings, d).searchRows(queries, 5);
    let same = 0;
    for (let i = 0; i < 50; i++) {
      if (a.indices[i * 5] === exact.indices[i * 5]) {
        same++;
        assert.ok(Math.abs(a.scores[i * 5]! - exact.scores[i * 5]!) < 1e-5, `${p}: query ${i}`);
      }
    }
    assert.ok(same >= 48, `${p}: ${same}/50 top-1 as exact search over the decoded rows`);
  }
});

const bytesOf = (x: Float32Array): Buffer => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
/** Float64 inner product of query q with row r. */
const dot = (rows: Float32Array, r: number, queries: Float32Array, q: number, d: number): number => {
  let s = 0;
  for (let i = 0; i < d; i++) s += queries[q * d + i]! * rows[r * d + i]!;
  return s;
};

test('i8 + refine rows: one file, i8 resident, the f32 rows read back bit for bit; derived galleries keep them', () => {
  const d = 32;
  const { rows, queries } = clustered(100, 4, d, 21);
  const path = join(work, 'refine.gallery');
  const g = withPrecision(gallery(rows, d), 'i8', true);
  assert.equal(g.meta.refine, 'f32');
  writeGallery(path, g);
  const b = readFileSync(path);
  const header = JSON.parse(b.subarray(8, 8 + Number(b.readBigUInt64LE(0))).toString());
  assert.deepEqual(
    [header.embeddings.dtype, header.embeddings.shape, header.refine.dtype, header.refine.shape],
    ['I8', [100, d], 'F32', [100, d]],
  );
  const back = readGallery(path);
  assert.equal(back.meta.refine, 'f32');
  assert.deepEqual(storedRowsOf(back), storedRowsOf(g), 'the resident rows are the i8 codes');
  // Not loaded: the gallery holds the file's identity and the tensor's place, no f32 rows.
  assert.equal(back.refine!.extra, null);
  assert.equal(back.refine!.map, null);
  assert.equal(back.refine!.file!.path, path);
  assert.ok(bytesOf(materialiseRefine(back.refine!, d)).equals(bytesOf(rows)), 'the f32 rows, bit for bit');
  // Search scores are the f32 inner products (float64), not the i8 ones.
  const res = new BruteForceIndex(storedRowsOf(back), d, 0, back.refine!).searchRows(queries, 3);
  const plain = new BruteForceIndex(storedRowsOf(back), d).searchRows(queries, 3);
  for (let q = 0; q < 4; q++) {
    const r = res.indices[q * 3]!;
    assert.ok(Math.abs(res.scores[q * 3]! - dot(rows, r, queries, q, d)) < 1e-6, `query ${q}`);
    assert.ok(Math.abs(plain.scores[q * 3]! - dot(rows, plain.indices[q * 3]!, queries, q, d)) > 1e-6, 'control');
  }
  // To f32: the exact rows again (not the decoded codes); to f16: quantized from them, refine rows kept.
  assert.ok(bytesOf(withPrecision(back, 'f32').embeddings).equals(bytesOf(rows)));
  const f16 = withPrecision(back, 'f16');
  assert.deepEqual(storedRowsOf(f16), storedRowsOf(withPrecision(gallery(rows, d), 'f16')));
  assert.equal(f16.meta.refine, 'f32');
  assert.equal(withPrecision(back, 'i8', false).meta.refine, undefined, '--no-refine drops them');
  assert.throws(() => withPrecision(withPrecision(back, 'i8', false), 'i8', true), /has no f32 rows to keep/);

  // Remove a class, enrol two rows, write over the very file the rows are read from, read again.
  const added = rows.subarray(5 * d, 7 * d);
  const next = appendToGallery(
    filterGallery(back, (e) => e.class !== 'c3'),
    [
      { class: 'new', path: '/photos/new0.jpg' },
      { class: 'new', path: '/photos/new1.jpg' },
    ],
    added,
  );
  const kept = Array.from({ length: 100 }, (_, i) => i).filter((i) => i % 7 !== 3);
  const expected = new Float32Array((kept.length + 2) * d);
  kept.forEach((i, j) => expected.set(rows.subarray(i * d, (i + 1) * d), j * d));
  expected.set(added, kept.length * d);
  assert.ok(bytesOf(materialiseRefine(next.refine!, d)).equals(bytesOf(expected)), 'filter + append, before writing');
  const written = writeGallery(path, next);
  const again = readGallery(path);
  assert.equal(again.meta.entries.length, kept.length + 2);
  assert.ok(bytesOf(materialiseRefine(again.refine!, d)).equals(bytesOf(expected)), 'and in the file written');
  assert.equal(written.refine!.file!.identity, again.refine!.file!.identity, 'the written gallery names the new file');
  // A structured clone (what a worker thread gets) carries the plain descriptor and reads the same rows.
  const cloned = reviveGallery(structuredClone(again));
  assert.ok(bytesOf(materialiseRefine(cloned.refine!, d)).equals(bytesOf(expected)));
  // Old files and files without refine rows read as before.
  writeGallery(path, withPrecision(gallery(rows, d), 'i8'));
  assert.equal(readGallery(path).refine, undefined);
  assert.equal(readGallery(path).meta.refine, undefined);
  // meta.refine without its tensor, or with a tensor of another shape, is refused.
  const lie = (from: string, to: string): void => {
    const f = readFileSync(path);
    const json = f.subarray(8, 8 + Number(f.readBigUInt64LE(0))).toString();
    const patched = json.replace(from, to);
    assert.notEqual(patched, json);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(Buffer.byteLength(patched)));
    writeFileSync(path, Buffer.concat([len, Buffer.from(patched), f.subarray(8 + Buffer.byteLength(json))]));
  };
  lie('\\"vectors\\":\\"i8\\"', '\\"vectors\\":\\"i8\\",\\"refine\\":\\"f32\\"');
  assert.throws(() => readGallery(path), /meta.refine is set but there is no refine tensor/);
  writeGallery(path, withPrecision(gallery(rows, d), 'i8', true));
  lie('"refine":{"dtype":"F32","shape":[100,32]', '"refine":{"dtype":"F32","shape":[32,100]');
  assert.throws(() => readGallery(path), /the refine tensor is float32 \[32, 100\], expected float32 \[100, 32\]/);
});

test('recall@1 with refine rows: 1.0 on the clustered set where plain i8 is below it (exact and HNSW)', () => {
  const d = 64;
  const { rows, queries } = clustered(6000, 400, d, 7);
  const truth = top1(rows, queries, d);
  const path = join(work, 'recall-refine.gallery');
  writeGallery(path, withPrecision(gallery(rows, d), 'i8', true));
  const g = readGallery(path);
  const found = (index: { searchRows(q: Float32Array, k: number): { indices: Int32Array; k: number } }) => {
    const res = index.searchRows(queries, 5);
    return Array.from({ length: truth.length }, (_, i) => res.indices[i * res.k]!);
  };
  const plain = recall(found(new BruteForceIndex(storedRowsOf(g), d)), truth);
  const exact = recall(found(new BruteForceIndex(storedRowsOf(g), d, 0, g.refine!)), truth);
  const hnsw = recall(found(HnswIndex.build(storedRowsOf(g), d, DEFAULT_HNSW, 1, g.refine!)), truth);
  const f16 = withPrecision(g, 'f16');
  const f16r = recall(found(new BruteForceIndex(storedRowsOf(f16), d, 0, f16.refine!)), truth);
  console.log(`recall@1: i8 ${plain}, i8+refine exact ${exact}, HNSW ${hnsw}; f16+refine exact ${f16r}`);
  assert.ok(plain < 1, `the control: plain i8 misses some (${plain})`);
  assert.equal(exact, 1, 'i8 + refine, exact');
  assert.equal(hnsw, 1, 'i8 + refine, HNSW');
  assert.equal(f16r, 1, 'f16 + refine, exact');
  // openGalleryIndex uses them too, even where the CLI hands it libtorch's exact search.
  const viaOpen = openGalleryIndex(g, { exact: () => assert.fail('refine rows need usearch + re-scoring') });
  assert.equal(recall(found(viaOpen), truth), 1);
});

test('a gallery whose file is replaced (gallery add) keeps reading its own rows, or refuses; never the new file', () => {
  const d = 16;
  const { rows, queries } = clustered(60, 3, d, 33);
  const path = join(work, 'replaced.gallery');
  writeGallery(path, withPrecision(gallery(rows, d), 'i8', true));
  const g = readGallery(path);
  const index = new BruteForceIndex(storedRowsOf(g), d, 0, g.refine!);
  const before = index.searchRows(queries, 3);
  // What `gallery add` does: read, filter/append, write atomically over the same path. The new file's first
  // rows differ (class c0 removed), so reading the old offsets from it would give other rows.
  const other = normaliseRows(
    Float32Array.from(rows, (x, i) => x + (i % 3) * 0.1),
    d,
  );
  writeGallery(
    path,
    appendToGallery(
      filterGallery(g, (e) => e.class !== 'c0'),
      [{ class: 'n', path: '/n' }],
      other.subarray(0, d),
    ),
  );
  const now = readGallery(path);
  assert.ok(!bytesOf(materialiseRefine(now.refine!, d).subarray(0, 60 * d)).equals(bytesOf(rows)), 'control');
  assert.deepEqual(index.searchRows(queries, 3), before, 'its fd still reads the file it was read from');
  assert.ok(bytesOf(materialiseRefine(g.refine!, d)).equals(bytesOf(rows)));
  // A thread without that fd (a worker; here: fds closed) opens the path, finds another file, and refuses.
  closeRefineFiles();
  assert.throws(() => index.searchRows(queries, 3), /replaced.gallery: changed on disk since it was read; reload it/);
  assert.throws(() => materialiseRefine(g.refine!, d), /changed on disk since it was read/);
  assert.throws(() => writeGallery(join(work, 'copy.gallery'), g), /changed on disk since it was read/);
  assert.ok(!existsSync(join(work, 'copy.gallery')), 'nothing written');
  // Reloaded, it reads the new file.
  const reloaded = readGallery(path);
  const res = new BruteForceIndex(storedRowsOf(reloaded), d, 0, reloaded.refine!).searchRows(queries, 1);
  const all = materialiseRefine(reloaded.refine!, d);
  assert.ok(Math.abs(res.scores[0]! - dot(all, res.indices[0]!, queries, 0, d)) < 1e-6);
});

test('a served i8 + refine gallery answers with exact f32 scores after an enrol (written by the worker thread)', async () => {
  const d = 32;
  const { rows, queries } = clustered(200, 4, d, 41);
  for (const approximateFrom of [undefined, 50]) {
    const g = withPrecision(gallery(rows.subarray(0, 180 * d), d), 'i8', true);
    if (approximateFrom) g.meta.search = { approximateFrom };
    const path = join(work, `served-refine-${approximateFrom ?? 'exact'}.gallery`);
    writeGallery(path, g);
    const sg = new ServedGallery(path, readGallery(path));
    const old = sg.current;
    const added = rows.subarray(180 * d);
    const entries = Array.from({ length: 20 }, (_, i) => ({ class: 'added', path: `/added/${i}.jpg` }));
    const snap = await sg.enrol('added', entries, added);
    assert.equal(
      snap.gallery.refine!.file!.identity,
      readGallery(path).refine!.file!.identity,
      'bound to the new file',
    );
    assert.equal(snap.gallery.refine!.extra, null, 'the enrolled f32 rows are read from the file, not held');
    const res = snap.matcher.index.searchRows(queries, 5);
    for (let q = 0; q < 4; q++)
      for (let j = 0; j < res.k; j++) {
        const r = res.indices[q * res.k + j]!;
        assert.ok(Math.abs(res.scores[q * res.k + j]! - dot(rows, r, queries, q, d)) < 1e-6, `query ${q} row ${r}`);
      }
    // A query equal to an enrolled row finds it with similarity 1 (its f32 row), not the i8 one's 0.9999.
    const own = snap.matcher.index.searchRows(rows.subarray(190 * d, 191 * d), 1);
    assert.equal(own.indices[0], 190);
    assert.ok(Math.abs(own.scores[0]! - dot(rows, 190, rows, 190, d)) < 1e-6, `${own.scores[0]}`);
    // The snapshot before the enrol still answers from its own (replaced) file.
    const was = old.matcher.index.searchRows(queries, 1);
    assert.ok(Math.abs(was.scores[0]! - dot(rows, was.indices[0]!, queries, 0, d)) < 1e-6);
  }
});

test('gallery list and convert: refine rows shown, added and dropped', () => {
  const d = 16;
  const { rows } = clustered(40, 1, d, 9);
  const path = join(work, 'listed-refine.gallery');
  writeGallery(path, gallery(rows, d));
  let r = runCli(['gallery', 'convert', path, '--vectors', 'i8', '--refine']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /40 vectors f32 -> i8\+refine/);
  assert.equal(JSON.parse(runCli(['gallery', 'list', path, '--json']).stdout).refine, 'f32');
  assert.match(runCli(['gallery', 'list', path]).stdout, /i8 vectors \(f32 refine rows in the file\)/);
  r = runCli(['gallery', 'convert', path, '--vectors', 'f32']);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /decoded/, 'back to f32 from the refine rows: nothing lost');
  assert.ok(bytesOf(readGallery(path).embeddings).equals(bytesOf(rows)));
  runCli(['gallery', 'convert', path, '--vectors', 'i8', '--refine']);
  r = runCli(['gallery', 'convert', path, '--vectors', 'i8', '--no-refine']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /i8\+refine -> i8$/m);
  assert.equal(JSON.parse(runCli(['gallery', 'list', path, '--json']).stdout).refine, null);
  r = runCli(['gallery', 'convert', path, '--vectors', 'f32', '--refine']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /with --vectors f32 the rows are already exact/);
});
