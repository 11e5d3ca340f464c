// Near-duplicate photos by a 64-bit difference hash (dHash: the image shrunk to 9 x 8 grey levels, one bit
// per horizontally adjacent pair, "is the left one brighter"). It ignores scale, re-encoding and small
// colour shifts and does not depend on the model. Exact copies are src/data/analyze.ts's (content sha256).
import { availableParallelism } from 'node:os';
import { resolveSamplePath, type Dataset } from '../data/dataset.js';
import { BadImageError, decodeImage, DEFAULT_MAX_PIXELS } from '../data/image.js';
import { resizeBilinear } from '../data/resample.js';
import { luma } from '../data/color.js';
import { mapPool } from '../data/stats.js';

export interface PhotoHashes {
  /** Per sample: the hash's high and low 32 bits (hi = hashes[2i], lo = hashes[2i + 1]). */
  hashes: Uint32Array;
  /** Per sample: decoded and hashed. */
  ok: boolean[];
  badFiles: { path: string; message: string }[];
}

/** The dHash of an RGB image (HWC, 8-bit). */
export function differenceHash(img: { data: Uint8Array; width: number; height: number }): [number, number] {
  const small = resizeBilinear(img, 9, 8);
  const grey = new Float64Array(72);
  for (let i = 0; i < 72; i++) grey[i] = luma(small.data[i * 3]!, small.data[i * 3 + 1]!, small.data[i * 3 + 2]!);
  let hi = 0;
  let lo = 0;
  for (let y = 0; y < 8; y++)
    for (let x = 0; x < 8; x++) {
      const bit = grey[y * 9 + x]! > grey[y * 9 + x + 1]! ? 1 : 0;
      const b = y * 8 + x;
      if (b < 32) hi = (hi | (bit << (31 - b))) >>> 0;
      else lo = (lo | (bit << (63 - b))) >>> 0;
    }
  return [hi, lo];
}

/** dHashes of every sample (a bad file is reported, not hashed). */
export async function hashPhotos(
  ds: Dataset,
  o: { maxPixels?: number; concurrency?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<PhotoHashes> {
  const n = ds.samples.length;
  const hashes = new Uint32Array(2 * n);
  const ok = new Array<boolean>(n).fill(false);
  const badFiles: PhotoHashes['badFiles'] = [];
  let done = 0;
  await mapPool(ds.samples, o.concurrency ?? Math.max(2, availableParallelism()), async (s, i) => {
    const path = resolveSamplePath(ds, s);
    try {
      const [hi, lo] = differenceHash(await decodeImage(path, { maxPixels: o.maxPixels ?? DEFAULT_MAX_PIXELS }));
      hashes[2 * i] = hi;
      hashes[2 * i + 1] = lo;
      ok[i] = true;
    } catch (e) {
      if (!(e instanceof BadImageError)) throw e;
      badFiles.push({ path, message: e.message });
    }
    o.onProgress?.(++done, n);
  });
  return { hashes, ok, badFiles };
}

function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

export interface HashPair {
  i: number;
  j: number;
  /** Differing bits of 64. */
  bits: number;
}

/**
 * Pairs of samples (i < j) whose hashes differ in at most maxBits bits and that `keep` accepts, fewest
 * differing bits first; at most `limit` of them (the count of all is returned too).
 */
export function nearHashPairs(
  h: PhotoHashes,
  maxBits: number,
  keep: (i: number, j: number) => boolean,
  limit = 5000,
): { pairs: HashPair[]; total: number } {
  const n = h.ok.length;
  const pairs: HashPair[] = [];
  let total = 0;
  for (let i = 0; i < n; i++) {
    if (!h.ok[i]) continue;
    const hi = h.hashes[2 * i]!;
    const lo = h.hashes[2 * i + 1]!;
    for (let j = i + 1; j < n; j++) {
      if (!h.ok[j]) continue;
      const bits = popcount32((hi ^ h.hashes[2 * j]!) >>> 0) + popcount32((lo ^ h.hashes[2 * j + 1]!) >>> 0);
      if (bits <= maxBits && keep(i, j)) {
        total++;
        pairs.push({ i, j, bits });
        // Bounded memory when a dataset has very many (e.g. blank photos): keep the closest.
        if (pairs.length >= 4 * limit) pairs.splice(0, pairs.length, ...closest(pairs, limit));
      }
    }
  }
  return { pairs: closest(pairs, limit), total };
}

/** The `limit` pairs with the fewest differing bits, in order. */
function closest(pairs: HashPair[], limit: number): HashPair[] {
  return pairs.sort((a, b) => a.bits - b.bits || a.i - b.i || a.j - b.j).slice(0, limit);
}
