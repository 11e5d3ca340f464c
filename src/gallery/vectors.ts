// The precision a gallery keeps its vectors in (file and search index): f32 as computed, f16 (IEEE half,
// round to nearest even), or i8 with one symmetric scale per vector. Gallery rows are L2-normalised and
// compared by cosine, so an i8 row only has to keep its direction: it is scaled so that its largest
// |component| becomes 127 (per vector, not per dimension: a per-dimension scale breaks the integer
// cosine usearch's HNSW graph computes between stored rows) and decodes to q / |q|, a unit row again;
// the scale itself is not stored. Pure JS: the server reads galleries without libtorch.

export const VECTOR_PRECISIONS = ['f32', 'f16', 'i8'] as const;
export type VectorPrecision = (typeof VECTOR_PRECISIONS)[number];

/** The rows as a gallery stores them: row-major [n, dim]. */
export type StoredRows =
  | { precision: 'f32'; data: Float32Array }
  /** IEEE 754 half-precision bit patterns. */
  | { precision: 'f16'; data: Uint16Array }
  /** Per-row max-abs scaled codes in [-127, 127]; decode with decodeRows (unit rows). */
  | { precision: 'i8'; data: Int8Array };

/** Bytes per stored component. */
export const BYTES_PER_VALUE: Record<VectorPrecision, number> = { f32: 4, f16: 2, i8: 1 };

export function isVectorPrecision(x: unknown): x is VectorPrecision {
  return typeof x === 'string' && (VECTOR_PRECISIONS as readonly string[]).includes(x);
}

// f32 -> f16 bits, round to nearest even; overflow to infinity, underflow through subnormals to zero.
const f32Bits = new Uint32Array(1);
const f32View = new Float32Array(f32Bits.buffer);
function halfBits(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / NaN
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++; // a carry into the exponent is the right rounding
  return sign | h;
}

/** One f32 value as f16 bits. */
export function toHalf(x: number): number {
  f32View[0] = x;
  return halfBits(f32Bits[0]!);
}

let halfTable: Float32Array | null = null;
/** f16 bits -> f32, all 65536 patterns (256 KiB, built on first use). */
export function halfToFloat(): Float32Array {
  if (halfTable) return halfTable;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    t[h] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  halfTable = t;
  return t;
}

export function encodeF16(rows: Float32Array): Uint16Array {
  const bits = new Uint32Array(rows.buffer, rows.byteOffset, rows.length);
  const out = new Uint16Array(rows.length);
  for (let i = 0; i < rows.length; i++) out[i] = halfBits(bits[i]!);
  return out;
}

export function decodeF16(bits: Uint16Array): Float32Array {
  const t = halfToFloat();
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = t[bits[i]!]!;
  return out;
}

/**
 * Symmetric per-row quantization to integer codes in [-levels, levels]: each row scaled so its largest
 * |component| becomes `levels`, rounded half away from zero (a zero row stays zero). levels 127 is the i8
 * format; fewer levels (7: an i4-like grid) is the coarse control the tests check the bound against.
 */
export function quantizeRows(rows: Float32Array, dim: number, levels = 127): Int8Array {
  if (!Number.isInteger(levels) || levels < 1 || levels > 127)
    throw new RangeError(`quantizeRows: levels must be an integer in [1, 127], got ${levels}`);
  if (rows.length % dim) throw new RangeError(`quantizeRows: ${rows.length} values are not rows of ${dim}`);
  const out = new Int8Array(rows.length);
  for (let o = 0; o < rows.length; o += dim) {
    let max = 0;
    for (let i = o; i < o + dim; i++) max = Math.max(max, Math.abs(rows[i]!));
    if (!(max > 0 && Number.isFinite(max))) continue; // zero (or non-finite) rows: zero codes
    const s = levels / max;
    for (let i = o; i < o + dim; i++) {
      const x = rows[i]! * s;
      out[i] = x < 0 ? -Math.round(-x) : Math.round(x);
    }
  }
  return out;
}

/** Codes back to unit rows q / |q| (the direction is all a cosine needs). */
export function decodeI8(codes: Int8Array, dim: number): Float32Array {
  const out = new Float32Array(codes.length);
  for (let o = 0; o < codes.length; o += dim) {
    let ss = 0;
    for (let i = o; i < o + dim; i++) ss += codes[i]! * codes[i]!;
    if (ss === 0) continue;
    const inv = 1 / Math.sqrt(ss);
    for (let i = o; i < o + dim; i++) out[i] = codes[i]! * inv;
  }
  return out;
}

/** Unit rows in a precision (f32 rows are kept, not copied). */
export function encodeRows(rows: Float32Array, dim: number, precision: VectorPrecision): StoredRows {
  if (precision === 'f32') return { precision, data: rows };
  if (precision === 'f16') return { precision, data: encodeF16(rows) };
  return { precision, data: quantizeRows(rows, dim) };
}

/** Stored rows as f32 unit rows (an f32 array is returned as is). */
export function decodeRows(s: StoredRows, dim: number): Float32Array {
  if (s.precision === 'f32') return s.data;
  if (s.precision === 'f16') return decodeF16(s.data);
  return decodeI8(s.data, dim);
}

/** Rows i of stored rows, in order (a copy). */
export function selectRows(s: StoredRows, dim: number, rows: readonly number[]): StoredRows {
  const pick = <A extends Float32Array | Uint16Array | Int8Array>(src: A, out: A): A => {
    rows.forEach((i, j) => out.set(src.subarray(i * dim, (i + 1) * dim), j * dim));
    return out;
  };
  const n = rows.length * dim;
  if (s.precision === 'f32') return { precision: 'f32', data: pick(s.data, new Float32Array(n)) };
  if (s.precision === 'f16') return { precision: 'f16', data: pick(s.data, new Uint16Array(n)) };
  return { precision: 'i8', data: pick(s.data, new Int8Array(n)) };
}

/** a's rows then b's (same precision). */
export function concatRows(a: StoredRows, b: StoredRows): StoredRows {
  if (a.precision !== b.precision) throw new Error(`concatRows: ${a.precision} rows and ${b.precision} rows`);
  const cat = <A extends Float32Array | Uint16Array | Int8Array>(x: A, y: A, out: A): A => {
    out.set(x);
    out.set(y, x.length);
    return out;
  };
  const n = a.data.length + b.data.length;
  if (a.precision === 'f32')
    return { precision: 'f32', data: cat(a.data, b.data as Float32Array, new Float32Array(n)) };
  if (a.precision === 'f16') return { precision: 'f16', data: cat(a.data, b.data as Uint16Array, new Uint16Array(n)) };
  return { precision: 'i8', data: cat(a.data, b.data as Int8Array, new Int8Array(n)) };
}

/**
 * Exact similarity of an f32 query row to stored row `row`: the inner product with the decoded row (for i8,
 * the cosine to its codes), in float64 so every CPU gives the same value.
 */
export function rowSimilarity(s: StoredRows, dim: number, row: number, query: Float32Array, qOffset: number): number {
  const o = row * dim;
  let dot = 0;
  if (s.precision === 'f32') {
    for (let i = 0; i < dim; i++) dot += query[qOffset + i]! * s.data[o + i]!;
    return dot;
  }
  if (s.precision === 'f16') {
    const t = halfToFloat();
    for (let i = 0; i < dim; i++) dot += query[qOffset + i]! * t[s.data[o + i]!]!;
    return dot;
  }
  let ss = 0;
  for (let i = 0; i < dim; i++) {
    const c = s.data[o + i]!;
    dot += query[qOffset + i]! * c;
    ss += c * c;
  }
  return ss ? dot / Math.sqrt(ss) : 0;
}
