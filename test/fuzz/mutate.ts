/**
 * Seeded byte mutations for the fuzzer (test/fuzz/main.ts): bit flips, byte sets, interesting integers
 * (8/16/32/64-bit, both byte orders, at random or format-given offsets), decimal numbers inside text,
 * dictionary tokens, truncation, splicing with another seed, chunk insert/delete/copy. Input i of a run
 * depends only on (seed, parser, i), so a crashing input is reproduced from its index alone.
 */
import { crc32 } from 'node:zlib';

/** splitmix32: small, fast and good enough to drive mutations. */
export class FuzzRng {
  private s: number;
  constructor(...seed: number[]) {
    let h = 0x9e3779b9;
    for (const v of seed) h = Math.imul(h ^ (v >>> 0), 0x85ebca6b) ^ (h >>> 13);
    this.s = h >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x9e3779b9) >>> 0;
    let z = this.s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  }
  /** Integer in [0, n). */
  below(n: number): number {
    return n <= 0 ? 0 : this.next() % n;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)]!;
  }
  chance(p: number): boolean {
    return this.next() / 2 ** 32 < p;
  }
}

const INTERESTING_8 = [0, 1, 0x7f, 0x80, 0xff, 0x10, 0x20, 0x40, 0x64];
const INTERESTING_BIG = [
  0n,
  1n,
  2n,
  8n,
  0x7fn,
  0x80n,
  0xffn,
  0x100n,
  0x7fffn,
  0x8000n,
  0xffffn,
  0x10000n,
  0x7fffffffn,
  0x80000000n,
  0xffffffffn,
  0x100000000n,
  0x1fffffffffffffn,
  0x20000000000000n,
  0x7fffffffffffffffn,
  0x8000000000000000n,
  0xffffffffffffffffn,
  46341n,
  65500n,
  1000000n,
  178956971n,
];
/** Numbers that break length, offset, shape and count fields written as decimal text (JSON, CSV). */
const INTERESTING_DECIMAL = [
  '0',
  '-1',
  '1',
  '-0',
  '2147483647',
  '2147483648',
  '4294967295',
  '4294967296',
  '9007199254740991',
  '9007199254740993',
  '18446744073709551615',
  '1e308',
  '1e309',
  '-1e309',
  '0.5',
  'NaN',
  '1e-400',
  '00',
  '99999999999999999999999',
  '3.0',
  '0x10',
];

export interface MutateContext {
  /** Other seeds of the same parser, for splicing. */
  seeds: readonly Uint8Array[];
  /** Tokens of the format (opcodes, keywords, markers) to insert or overwrite. */
  dictionary: readonly Uint8Array[];
  /** Offsets of length/offset/dimension fields in this input (format-aware targeting). */
  hotOffsets?: readonly number[];
}

function writeInt(out: Uint8Array, at: number, width: number, value: bigint, le: boolean): void {
  for (let k = 0; k < width && at + k < out.length; k++) {
    const b = Number((value >> BigInt(8 * k)) & 0xffn);
    out[le ? at + k : at + width - 1 - k] = b;
  }
}

function splice(a: Uint8Array, at: number, del: number, insert: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length - del + insert.length);
  out.set(a.subarray(0, at), 0);
  out.set(insert, at);
  out.set(a.subarray(at + del), at + insert.length);
  return out;
}

const enc = new TextEncoder();

/** One random mutation of `input` (a new array; `input` is not changed). */
export function mutateOnce(input: Uint8Array, rng: FuzzRng, ctx: MutateContext): Uint8Array {
  let b: Uint8Array = input.slice();
  const n = b.length;
  const at = rng.below(Math.max(n, 1));
  switch (rng.below(12)) {
    case 0:
      if (n) b[at] = b[at]! ^ (1 << rng.below(8));
      break;
    case 1:
      if (n) b[at] = rng.below(256);
      break;
    case 2:
      if (n) b[at] = rng.pick(INTERESTING_8);
      break;
    case 3:
    case 4: {
      const width = rng.pick([2, 4, 8]);
      const where = ctx.hotOffsets?.length && rng.chance(0.7) ? rng.pick(ctx.hotOffsets) : at;
      let v = rng.pick(INTERESTING_BIG);
      if (rng.chance(0.2)) v = BigInt(Math.max(0, n - rng.below(16)));
      if (rng.chance(0.2)) v = (1n << BigInt(width * 8)) - 1n - v; // negatives
      writeInt(b, where, width, v & ((1n << BigInt(width * 8)) - 1n), rng.chance(0.5));
      break;
    }
    case 5: {
      // A decimal number in text: replace the digits at a random run.
      const start = findDigitRun(b, at);
      if (start >= 0) {
        let end = start;
        while (end < n && ((b[end]! >= 0x30 && b[end]! <= 0x39) || b[end] === 0x2d || b[end] === 0x2e)) end++;
        b = splice(b, start, end - start, enc.encode(rng.pick(INTERESTING_DECIMAL)));
      } else if (n) b[at] = rng.pick([0x30, 0x39, 0x2d]);
      break;
    }
    case 6:
      b = b.subarray(0, rng.below(n + 1)).slice();
      break;
    case 7: {
      const other = ctx.seeds.length ? rng.pick(ctx.seeds) : input;
      const cut = rng.below(other.length + 1);
      b = splice(b, at, n - at, other.subarray(cut));
      break;
    }
    case 8: {
      const tok =
        ctx.dictionary.length && rng.chance(0.7)
          ? rng.pick(ctx.dictionary)
          : Uint8Array.from({ length: 1 + rng.below(16) }, () => rng.below(256));
      b = rng.chance(0.5) ? splice(b, at, 0, tok) : splice(b, at, Math.min(tok.length, n - at), tok);
      break;
    }
    case 9:
      b = splice(b, at, Math.min(1 + rng.below(32), n - at), new Uint8Array(0));
      break;
    case 10: {
      const from = rng.below(Math.max(n, 1));
      const len = Math.min(1 + rng.below(64), n - from);
      b = splice(b, at, 0, b.slice(from, from + len));
      break;
    }
    default: {
      const len = Math.min(1 + rng.below(8), n - at);
      for (let k = 0; k < len; k++) b[at + k] = rng.pick([0x00, 0xff, 0x41]);
    }
  }
  return b;
}

function findDigitRun(b: Uint8Array, from: number): number {
  for (let k = 0; k < b.length; k++) {
    const p = (from + k) % b.length;
    if (b[p]! >= 0x30 && b[p]! <= 0x39) {
      let s = p;
      while (s > 0 && ((b[s - 1]! >= 0x30 && b[s - 1]! <= 0x39) || b[s - 1] === 0x2d)) s--;
      return s;
    }
  }
  return -1;
}

/** 1..8 stacked mutations (mostly few, so most inputs stay close to a valid file). */
export function mutate(input: Uint8Array, rng: FuzzRng, ctx: MutateContext): Uint8Array {
  let b: Uint8Array = input;
  const count = rng.chance(0.6) ? 1 : 1 + rng.below(8);
  for (let k = 0; k < count; k++) b = mutateOnce(b, rng, ctx);
  return b;
}

// ---------------------------------------------------------------------------------------------
// Format repairs, so that mutations reach past checksums and length prefixes

/** Recomputes every PNG chunk CRC (length fields are left as mutated). */
export function fixPngCrcs(b: Uint8Array): Uint8Array {
  const out = b.slice();
  const v = new DataView(out.buffer);
  let p = 8;
  while (p + 12 <= out.length) {
    const len = v.getUint32(p);
    if (p + 12 + len > out.length) break;
    v.setUint32(p + 8 + len, crc32(out.subarray(p + 4, p + 8 + len)));
    p += 12 + len;
  }
  return out;
}

/** Offsets of PNG length fields and the IHDR width/height; JPEG segment lengths and SOF dimensions. */
export function imageHotOffsets(b: Uint8Array): number[] {
  const hot: number[] = [];
  if (b[0] === 0x89 && b[1] === 0x50) {
    let p = 8;
    while (p + 8 <= b.length) {
      hot.push(p);
      const len = new DataView(b.buffer, b.byteOffset).getUint32(p);
      if (b[p + 4] === 0x49 && b[p + 5] === 0x48) hot.push(p + 8, p + 12); // IHDR width, height
      p += 12 + len;
    }
  } else if (b[0] === 0xff && b[1] === 0xd8) {
    let p = 2;
    while (p + 4 <= b.length && b[p] === 0xff) {
      const m = b[p + 1]!;
      hot.push(p + 2);
      if (m >= 0xc0 && m <= 0xc2) hot.push(p + 5, p + 7, p + 9);
      if (m === 0xe1) hot.push(p + 14, p + 18, p + 20, p + 22); // TIFF header, IFD offset, entry count
      if (m === 0xda) break;
      p += 2 + ((b[p + 2]! << 8) | b[p + 3]!);
    }
  }
  return hot;
}

export interface ZipMember {
  name: string;
  data: Uint8Array;
}

/** A stored (uncompressed) zip, as torch.save writes, with correct CRCs and offsets. */
export function buildStoredZip(members: readonly ZipMember[]): Uint8Array {
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const m of members) {
    const name = enc.encode(m.name);
    const crc = crc32(m.data);
    const local = new Uint8Array(30 + name.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 20, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, m.data.length, true);
    lv.setUint32(22, m.data.length, true);
    lv.setUint16(26, name.length, true);
    local.set(name, 30);
    const c = new Uint8Array(46 + name.length);
    const cv = new DataView(c.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 20, true);
    cv.setUint16(6, 20, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, m.data.length, true);
    cv.setUint32(24, m.data.length, true);
    cv.setUint16(28, name.length, true);
    cv.setUint32(42, offset, true);
    c.set(name, 46);
    parts.push(local, m.data);
    central.push(c);
    offset += local.length + m.data.length;
  }
  const cdSize = central.reduce((s, c) => s + c.length, 0);
  const eocd = new Uint8Array(22);
  const ev = new DataView(eocd.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, members.length, true);
  ev.setUint16(10, members.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  const all = [...parts, ...central, eocd];
  const out = new Uint8Array(all.reduce((s, p) => s + p.length, 0));
  let p = 0;
  for (const a of all) {
    out.set(a, p);
    p += a.length;
  }
  return out;
}

/** A safetensors file from header text and data bytes, with the 8-byte length prefix set to the header's. */
export function buildSafetensors(header: Uint8Array, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + header.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
  out.set(header, 8);
  out.set(data, 8 + header.length);
  return out;
}
