/**
 * A minimal read-only zip reader for torch.save archives.
 *
 * Why not a library: fflate and adm-zip/jszip work on the whole archive in memory (a 1 GB
 * checkpoint would be held twice), and yauzl/node-stream-zip hand out entry streams (async only,
 * chunked copies) rather than positioned reads into a caller's buffer. torch.save writes every
 * record uncompressed (method 0, 64-byte aligned), so what we need is just the end-of-central-directory
 * record (plus its ZIP64 form for >4 GB archives), the central directory, and each entry's local
 * header to find where its bytes start: ~200 lines with reads at offsets, sync and async alike.
 * Deflated entries (an archive re-zipped by another tool) are still accepted via node:zlib.
 */
import * as zlib from 'node:zlib';
import { WeightFileError } from './errors.js';
import { closeQuietly, open, openSync, readAt, readAtSync } from './file.js';

export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflate. */
  method: number;
  crc32: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;
const EOCD_SIZE = 22;
const MAX_COMMENT = 0xffff;

let crcTable: Uint32Array | undefined;
/** CRC-32 as zip uses it; zlib.crc32 exists from Node 20.15, the table is the fallback. */
function crc32(data: Uint8Array): number {
  const native = (zlib as { crc32?: (d: Uint8Array) => number }).crc32;
  if (native !== undefined) return native(data) >>> 0;
  if (crcTable === undefined) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function u64(dv: DataView, off: number, file: string): number {
  const v = dv.getBigUint64(off, true);
  // A named error (it was a bare RangeError, found by fuzzing).
  if (v > BigInt(Number.MAX_SAFE_INTEGER))
    throw new WeightFileError('WEIGHTS_BAD_ZIP', file, `64-bit zip field ${v} beyond 2^53`);
  return Number(v);
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** Shared parsing logic written once as a generator that yields read requests. */
type Reads<T> = Generator<{ position: number; length: number }, T, Uint8Array>;

function runSync<T>(g: Reads<T>, read: (p: number, l: number) => Uint8Array): T {
  let r = g.next();
  while (!r.done) r = g.next(read(r.value.position, r.value.length));
  return r.value;
}

async function runAsync<T>(g: Reads<T>, read: (p: number, l: number) => Promise<Uint8Array>): Promise<T> {
  let r = g.next();
  while (!r.done) r = g.next(await read(r.value.position, r.value.length));
  return r.value;
}

function* parseDirectory(file: string, size: number): Reads<Map<string, ZipEntry>> {
  const badZip = (problem: string): WeightFileError => new WeightFileError('WEIGHTS_BAD_ZIP', file, problem);
  const tailLen = Math.min(size, EOCD_SIZE + MAX_COMMENT);
  const tail = yield { position: size - tailLen, length: tailLen };
  const tv = view(tail);
  let eocd = -1;
  for (let i = tailLen - EOCD_SIZE; i >= 0; i--) {
    if (tv.getUint32(i, true) === SIG_EOCD && i + EOCD_SIZE + tv.getUint16(i + 20, true) === tailLen) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    throw badZip(
      'zip central directory is missing (no end-of-central-directory record): the file is truncated or not a zip archive',
    );
  }
  let count = tv.getUint16(eocd + 10, true);
  let cdSize = tv.getUint32(eocd + 12, true);
  let cdOffset = tv.getUint32(eocd + 16, true);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    // ZIP64: the locator sits right before the classic record and points at the 64-bit record.
    const loc = eocd - 20;
    if (loc < 0 || tv.getUint32(loc, true) !== SIG_ZIP64_LOCATOR)
      throw badZip('ZIP64 end-of-central-directory locator is missing');
    const recOffset = u64(tv, loc + 8, file);
    if (recOffset + 56 > size) throw badZip('ZIP64 end-of-central-directory record lies beyond the end of the file');
    const rec = view(yield { position: recOffset, length: 56 });
    if (rec.getUint32(0, true) !== SIG_ZIP64_EOCD) throw badZip('ZIP64 end-of-central-directory record is missing');
    count = u64(rec, 32, file);
    cdSize = u64(rec, 40, file);
    cdOffset = u64(rec, 48, file);
  }
  if (cdOffset + cdSize > size) {
    throw badZip(
      `zip central directory (offset ${cdOffset}, ${cdSize} bytes) lies beyond the end of the file (${size} bytes): truncated?`,
    );
  }
  const cd = yield { position: cdOffset, length: cdSize };
  const cv = view(cd);
  const entries = new Map<string, ZipEntry>();
  const decoder = new TextDecoder();
  let p = 0;
  for (let n = 0; n < count; n++) {
    if (p + 46 > cdSize || cv.getUint32(p, true) !== SIG_CENTRAL)
      throw badZip(`zip central directory entry ${n} is corrupt`);
    const method = cv.getUint16(p + 10, true);
    const crc = cv.getUint32(p + 16, true);
    let compressedSize = cv.getUint32(p + 20, true);
    let uncompressedSize = cv.getUint32(p + 24, true);
    const nameLen = cv.getUint16(p + 28, true);
    const extraLen = cv.getUint16(p + 30, true);
    const commentLen = cv.getUint16(p + 32, true);
    let localHeaderOffset = cv.getUint32(p + 42, true);
    if (p + 46 + nameLen + extraLen + commentLen > cdSize) throw badZip(`zip central directory entry ${n} is corrupt`);
    const name = decoder.decode(cd.subarray(p + 46, p + 46 + nameLen));
    // ZIP64 extended information: present fields replace the 0xffffffff placeholders, in this order.
    let e = p + 46 + nameLen;
    const extraEnd = e + extraLen;
    while (e + 4 <= extraEnd) {
      const id = cv.getUint16(e, true);
      const len = cv.getUint16(e + 2, true);
      if (id === 0x0001) {
        let q = e + 4;
        if (uncompressedSize === 0xffffffff && q + 8 <= e + 4 + len) (uncompressedSize = u64(cv, q, file)), (q += 8);
        if (compressedSize === 0xffffffff && q + 8 <= e + 4 + len) (compressedSize = u64(cv, q, file)), (q += 8);
        if (localHeaderOffset === 0xffffffff && q + 8 <= e + 4 + len) localHeaderOffset = u64(cv, q, file);
      }
      e += 4 + len;
    }
    entries.set(name, { name, method, crc32: crc, compressedSize, size: uncompressedSize, localHeaderOffset });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

function* parseLocalHeader(file: string, size: number, entry: ZipEntry): Reads<number> {
  const badZip = (problem: string): WeightFileError => new WeightFileError('WEIGHTS_BAD_ZIP', file, problem);
  if (entry.localHeaderOffset + 30 > size)
    throw badZip(`zip entry "${entry.name}" starts beyond the end of the file: truncated?`);
  const lh = view(yield { position: entry.localHeaderOffset, length: 30 });
  if (lh.getUint32(0, true) !== SIG_LOCAL) throw badZip(`zip entry "${entry.name}" has a corrupt local header`);
  const dataOffset = entry.localHeaderOffset + 30 + lh.getUint16(26, true) + lh.getUint16(28, true);
  if (dataOffset + entry.compressedSize > size) {
    throw new WeightFileError(
      'WEIGHTS_TRUNCATED',
      file,
      `file is truncated: zip entry "${entry.name}" needs ${entry.compressedSize} bytes at offset ${dataOffset}, file has ${size}`,
    );
  }
  if (entry.method !== 0 && entry.method !== 8) {
    throw badZip(
      `zip entry "${entry.name}" uses compression method ${entry.method} (only stored and deflate are supported)`,
    );
  }
  return dataOffset;
}

/** An open zip archive: the directory is parsed on open, entry bytes are read on demand. */
export class ZipArchive {
  private fd: number | undefined;
  private readonly dataOffsets = new Map<string, number>();

  private constructor(
    readonly path: string,
    fd: number,
    readonly size: number,
    readonly entries: Map<string, ZipEntry>,
  ) {
    this.fd = fd;
  }

  static async open(path: string): Promise<ZipArchive> {
    const { fd, size } = await open(path);
    try {
      const entries = await runAsync(parseDirectory(path, size), (p, l) => readAt(fd, path, p, l));
      return new ZipArchive(path, fd, size, entries);
    } catch (err) {
      closeQuietly(fd);
      throw err;
    }
  }

  static openSync(path: string): ZipArchive {
    const { fd, size } = openSync(path);
    try {
      const entries = runSync(parseDirectory(path, size), (p, l) => readAtSync(fd, path, p, l));
      return new ZipArchive(path, fd, size, entries);
    } catch (err) {
      closeQuietly(fd);
      throw err;
    }
  }

  entry(name: string): ZipEntry {
    const e = this.entries.get(name);
    if (e === undefined) throw new WeightFileError('WEIGHTS_BAD_ZIP', this.path, `zip entry "${name}" is missing`);
    return e;
  }

  private openFd(): number {
    if (this.fd === undefined) throw new WeightFileError('WEIGHTS_IO', this.path, 'archive is closed');
    return this.fd;
  }

  private finish(entry: ZipEntry, raw: Uint8Array): Uint8Array {
    let data = raw;
    if (entry.method === 8) {
      try {
        data = new Uint8Array(zlib.inflateRawSync(raw));
      } catch (err) {
        throw new WeightFileError(
          'WEIGHTS_BAD_ZIP',
          this.path,
          `zip entry "${entry.name}" does not inflate: ${(err as Error).message}`,
        );
      }
      if (data.byteLength !== entry.size) {
        throw new WeightFileError(
          'WEIGHTS_BAD_ZIP',
          this.path,
          `zip entry "${entry.name}" inflates to ${data.byteLength} bytes, expected ${entry.size}`,
        );
      }
    }
    if (crc32(data) !== entry.crc32) {
      throw new WeightFileError('WEIGHTS_BAD_ZIP', this.path, `zip entry "${entry.name}" is corrupt (CRC-32 mismatch)`);
    }
    return data;
  }

  /** Whole entry, CRC-checked. For a stored entry `into` receives the bytes directly. */
  readSync(name: string, into?: Uint8Array): Uint8Array {
    const e = this.entry(name);
    const fd = this.openFd();
    const off = this.dataOffsetSync(e);
    return this.finish(e, readAtSync(fd, this.path, off, e.compressedSize, e.method === 0 ? into : undefined));
  }

  async read(name: string, into?: Uint8Array): Promise<Uint8Array> {
    const e = this.entry(name);
    const fd = this.openFd();
    const off = await this.dataOffset(e);
    return this.finish(e, await readAt(fd, this.path, off, e.compressedSize, e.method === 0 ? into : undefined));
  }

  /**
   * `length` bytes from `start` within an entry's uncompressed data, without reading the rest
   * (a view into a large shared storage). Not CRC-checked, since the CRC covers the whole entry.
   */
  readRangeSync(name: string, start: number, length: number, into?: Uint8Array): Uint8Array {
    const e = this.entry(name);
    this.checkRange(e, start, length);
    if (e.method !== 0) return this.readSync(name).slice(start, start + length);
    return readAtSync(this.openFd(), this.path, this.dataOffsetSync(e) + start, length, into);
  }

  async readRange(name: string, start: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    const e = this.entry(name);
    this.checkRange(e, start, length);
    if (e.method !== 0) return (await this.read(name)).slice(start, start + length);
    return readAt(this.openFd(), this.path, (await this.dataOffset(e)) + start, length, into);
  }

  private checkRange(e: ZipEntry, start: number, length: number): void {
    if (start < 0 || length < 0 || start + length > e.size) {
      throw new RangeError(`range [${start}, ${start + length}) outside zip entry "${e.name}" of ${e.size} bytes`);
    }
  }

  private dataOffsetSync(e: ZipEntry): number {
    let off = this.dataOffsets.get(e.name);
    if (off === undefined) {
      const fd = this.openFd();
      off = runSync(parseLocalHeader(this.path, this.size, e), (p, l) => readAtSync(fd, this.path, p, l));
      this.dataOffsets.set(e.name, off);
    }
    return off;
  }

  private async dataOffset(e: ZipEntry): Promise<number> {
    let off = this.dataOffsets.get(e.name);
    if (off === undefined) {
      const fd = this.openFd();
      off = await runAsync(parseLocalHeader(this.path, this.size, e), (p, l) => readAt(fd, this.path, p, l));
      this.dataOffsets.set(e.name, off);
    }
    return off;
  }

  close(): void {
    if (this.fd !== undefined) closeQuietly(this.fd);
    this.fd = undefined;
  }
}
