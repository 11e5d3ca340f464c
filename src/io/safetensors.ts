/**
 * safetensors (the weight format of timm and Hugging Face): an 8-byte little-endian header
 * length N, N bytes of JSON `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {str: str}}`,
 * then the byte buffer the offsets point into.
 *
 * Reading opens the file, validates the whole header, and reads each tensor's bytes on demand,
 * so a 1 GB file can be loaded tensor by tensor (optionally straight into a caller's buffer).
 * Writing streams tensor by tensor into a temp file that is fsynced and renamed (atomic).
 */
import type * as fs from 'node:fs';
import { WeightFileError } from './errors.js';
import {
  type DType,
  type RawTensor,
  fromSafetensorsDType,
  isDType,
  itemSize,
  numel,
  toSafetensorsDType,
} from './dtype.js';
import {
  closeQuietly,
  open,
  openSync,
  readAt,
  readAtSync,
  writeAll,
  writeAllSync,
  writeAtomic,
  writeAtomicSync,
} from './file.js';

/** The safetensors reference implementation refuses headers above 100 MB; so do we. */
export const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';

/** Where one tensor lives in a safetensors file. */
export interface SafetensorsTensorInfo {
  dtype: DType;
  shape: number[];
  /** Absolute byte offset of the tensor's data in the file. */
  offset: number;
  byteLength: number;
}

/** A tensor whose bytes are produced only when the writer reaches it (e.g. copied off a device one at a time). */
export interface LazyRawTensor {
  dtype: DType;
  shape: number[];
  load(): Uint8Array | Promise<Uint8Array>;
}

export type TensorSource = RawTensor | LazyRawTensor;
export type TensorMap<T> = Map<string, T> | Record<string, T>;

// ---------------------------------------------------------------------------------------------
// Header parsing and validation

interface ParsedHeader {
  tensors: Map<string, SafetensorsTensorInfo>;
  metadata: Record<string, string>;
}

function bad(file: string, problem: string): WeightFileError {
  return new WeightFileError('WEIGHTS_BAD_HEADER', file, problem);
}

/**
 * Top-level keys of a JSON object text, in order, including duplicates (JSON.parse silently keeps
 * the last of two equal keys, which would hide a tensor). Assumes `text` already parsed as an object.
 */
function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  let i = 0;
  let expectKey = false;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) keys.push(JSON.parse(text.slice(i, j + 1)) as string);
      expectKey = false;
      i = j + 1;
      continue;
    }
    if (c === '{' || c === '[') {
      depth++;
      expectKey = c === '{' && depth === 1;
    } else if (c === '}' || c === ']') {
      depth--;
    } else if (c === ',' && depth === 1) {
      expectKey = true;
    }
    i++;
  }
  return keys;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Parses and validates a header; `dataLength` is the number of bytes after the header. */
function parseHeader(file: string, headerBytes: Uint8Array, dataLength: number): ParsedHeader {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    throw bad(file, 'header is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw bad(file, `header is not valid JSON (${(err as Error).message})`);
  }
  if (!isPlainObject(json)) throw bad(file, 'header JSON is not an object');

  const seen = new Set<string>();
  for (const k of topLevelKeys(text)) {
    if (seen.has(k)) throw bad(file, `duplicate tensor name "${k}" in header`);
    seen.add(k);
  }

  const metadata: Record<string, string> = {};
  const tensors = new Map<string, SafetensorsTensorInfo>();
  const ranges: { name: string; begin: number; end: number }[] = [];
  const headerEnd = 8 + headerBytes.byteLength;

  for (const [name, entry] of Object.entries(json)) {
    if (name === METADATA_KEY) {
      if (!isPlainObject(entry)) throw bad(file, '"__metadata__" must be an object of strings');
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== 'string') throw bad(file, `"__metadata__" value for "${k}" is ${describe(v)}, not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const where = `tensor "${name}"`;
    if (!isPlainObject(entry)) throw bad(file, `${where}: entry is ${describe(entry)}, not an object`);
    const { dtype: code, shape, data_offsets: offsets } = entry;
    if (typeof code !== 'string') throw bad(file, `${where}: "dtype" is missing or not a string`);
    const dtype = fromSafetensorsDType(code);
    if (dtype === undefined) {
      throw new WeightFileError(
        'WEIGHTS_UNKNOWN_DTYPE',
        file,
        `${where}: unknown or unsupported dtype "${code}" (supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)`,
      );
    }
    if (!Array.isArray(shape)) throw bad(file, `${where}: "shape" is missing or not an array`);
    for (const d of shape) {
      if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
        throw bad(file, `${where}: shape ${describe(shape)} has ${describe(d)}, not a non-negative integer`);
      }
    }
    if (!Array.isArray(offsets) || offsets.length !== 2) {
      throw bad(file, `${where}: "data_offsets" must be [begin, end], got ${describe(offsets)}`);
    }
    const [begin, end] = offsets as unknown[];
    if (
      typeof begin !== 'number' ||
      typeof end !== 'number' ||
      !Number.isSafeInteger(begin) ||
      !Number.isSafeInteger(end) ||
      begin < 0 ||
      end < begin
    ) {
      throw bad(file, `${where}: data_offsets ${describe(offsets)} are not integers with 0 <= begin <= end`);
    }
    // BigInt: a hostile shape could overflow 2^53 before the comparison.
    const need = (shape as number[]).reduce((a, d) => a * BigInt(d), BigInt(itemSize(dtype)));
    if (need !== BigInt(end - begin)) {
      throw bad(
        file,
        `${where}: shape ${describe(shape)} of ${code} needs ${need} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`,
      );
    }
    tensors.set(name, { dtype, shape: [...(shape as number[])], offset: headerEnd + begin, byteLength: end - begin });
    ranges.push({ name, begin, end });
  }

  // The buffer must be exactly covered: sorted by offset, each tensor starts where the last ended.
  // Empty tensors (begin == end) take no room and may sit anywhere in range.
  ranges.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let holeAt: { at: number; next: string } | undefined;
  let prev: string | undefined;
  for (const r of ranges) {
    if (r.begin === r.end) continue;
    if (r.begin < covered) {
      throw bad(file, `tensors "${prev}" and "${r.name}" overlap (byte ${r.begin} of the data buffer is used by both)`);
    }
    if (r.begin > covered && holeAt === undefined) holeAt = { at: covered, next: r.name };
    covered = r.end;
    prev = r.name;
  }
  const maxEnd = ranges.reduce((m, r) => Math.max(m, r.end), 0);
  if (maxEnd > dataLength) {
    if (holeAt === undefined) {
      throw new WeightFileError(
        'WEIGHTS_TRUNCATED',
        file,
        `file is truncated: the header describes ${maxEnd} bytes of tensor data but only ${dataLength} follow it`,
      );
    }
    const worst = ranges.reduce((a, b) => (b.end > a.end ? b : a));
    throw bad(
      file,
      `tensor "${worst.name}": data_offsets [${worst.begin}, ${worst.end}] are out of range (the data buffer holds ${dataLength} bytes)`,
    );
  }
  if (holeAt !== undefined) {
    throw bad(
      file,
      `data buffer has a hole: bytes from ${holeAt.at} up to tensor "${holeAt.next}" belong to no tensor`,
    );
  }
  if (covered < dataLength) {
    throw bad(
      file,
      `data buffer has ${dataLength - covered} trailing bytes after the last tensor that belong to no tensor`,
    );
  }
  return { tensors, metadata };
}

function headerLength(file: string, prefix: Uint8Array, fileSize: number): number {
  if (fileSize < 8) {
    throw new WeightFileError(
      'WEIGHTS_TRUNCATED',
      file,
      `file is truncated: ${fileSize} bytes, fewer than the 8-byte header length`,
    );
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(fileSize - 8)) {
    throw bad(file, `header length ${n} exceeds the file size (${fileSize} bytes): truncated file or not safetensors`);
  }
  if (n > BigInt(MAX_HEADER_BYTES)) throw bad(file, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  if (n < 2n) throw bad(file, `header length ${n} is too small for a JSON object`);
  return Number(n);
}

// ---------------------------------------------------------------------------------------------
// Reader

/**
 * An open safetensors file. The header is parsed and validated on open; tensor bytes are read
 * only when asked for. Call `close()` when done (or use `readSafetensors` for everything at once).
 */
export class SafetensorsReader {
  private fd: number | undefined;

  private constructor(
    readonly path: string,
    fd: number,
    private readonly header: ParsedHeader,
  ) {
    this.fd = fd;
  }

  static async open(path: string): Promise<SafetensorsReader> {
    const { fd, size } = await open(path);
    try {
      const n = headerLength(path, await readAt(fd, path, 0, Math.min(8, size)), size);
      const header = parseHeader(path, await readAt(fd, path, 8, n), size - 8 - n);
      return new SafetensorsReader(path, fd, header);
    } catch (err) {
      closeQuietly(fd);
      throw err;
    }
  }

  static openSync(path: string): SafetensorsReader {
    const { fd, size } = openSync(path);
    try {
      const n = headerLength(path, readAtSync(fd, path, 0, Math.min(8, size)), size);
      const header = parseHeader(path, readAtSync(fd, path, 8, n), size - 8 - n);
      return new SafetensorsReader(path, fd, header);
    } catch (err) {
      closeQuietly(fd);
      throw err;
    }
  }

  /** The `__metadata__` strings (empty object when the file has none). */
  get metadata(): Record<string, string> {
    return { ...this.header.metadata };
  }

  /** Tensor names in header order. */
  keys(): string[] {
    return [...this.header.tensors.keys()];
  }

  has(name: string): boolean {
    return this.header.tensors.has(name);
  }

  info(name: string): SafetensorsTensorInfo {
    const i = this.header.tensors.get(name);
    if (i === undefined) throw new WeightFileError('WEIGHTS_NO_SUCH_TENSOR', this.path, `no tensor named "${name}"`);
    return { ...i, shape: [...i.shape] };
  }

  private openFd(): number {
    if (this.fd === undefined) throw new WeightFileError('WEIGHTS_IO', this.path, 'reader is closed');
    return this.fd;
  }

  /**
   * Reads one tensor. With `into`, its bytes land in the caller's buffer (at least `info(name).byteLength`
   * bytes; e.g. the memory of a freshly allocated engine tensor), so nothing is copied twice.
   */
  async read(name: string, into?: Uint8Array): Promise<RawTensor> {
    const i = this.info(name);
    const data = await readAt(this.openFd(), this.path, i.offset, i.byteLength, into);
    return { dtype: i.dtype, shape: i.shape, data };
  }

  readSync(name: string, into?: Uint8Array): RawTensor {
    const i = this.info(name);
    const data = readAtSync(this.openFd(), this.path, i.offset, i.byteLength, into);
    return { dtype: i.dtype, shape: i.shape, data };
  }

  close(): void {
    if (this.fd !== undefined) closeQuietly(this.fd);
    this.fd = undefined;
  }
}

/** Reads every tensor of a safetensors file, in header order. */
export async function readSafetensors(path: string): Promise<Map<string, RawTensor>> {
  const r = await SafetensorsReader.open(path);
  try {
    const out = new Map<string, RawTensor>();
    for (const k of r.keys()) out.set(k, await r.read(k));
    return out;
  } finally {
    r.close();
  }
}

export function readSafetensorsSync(path: string): Map<string, RawTensor> {
  const r = SafetensorsReader.openSync(path);
  try {
    const out = new Map<string, RawTensor>();
    for (const k of r.keys()) out.set(k, r.readSync(k));
    return out;
  } finally {
    r.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Writer

interface Planned {
  name: string;
  src: TensorSource;
  byteLength: number;
}

function invalid(file: string, problem: string): WeightFileError {
  return new WeightFileError('WEIGHTS_INVALID_ARGUMENT', file, problem);
}

function entriesOf<T>(m: TensorMap<T>): [string, T][] {
  return m instanceof Map ? [...m.entries()] : Object.entries(m);
}

/**
 * Validates the inputs and builds the header. Tensors are laid out by element size, largest first,
 * then by name (as the Python safetensors library does), and the header is padded with spaces to a
 * multiple of 8, so every tensor starts aligned to its element size.
 */
function plan(
  file: string,
  tensors: TensorMap<TensorSource>,
  metadata?: Record<string, string>,
): { header: Uint8Array; order: Planned[] } {
  const order: Planned[] = [];
  for (const [name, src] of entriesOf(tensors)) {
    if (name === METADATA_KEY) throw invalid(file, `"${METADATA_KEY}" can't be used as a tensor name`);
    if (!isDType(src.dtype)) throw invalid(file, `tensor "${name}": unknown dtype ${describe(src.dtype)}`);
    if (!Array.isArray(src.shape) || !src.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw invalid(file, `tensor "${name}": shape ${describe(src.shape)} is not a list of non-negative integers`);
    }
    const byteLength = numel(src.shape) * itemSize(src.dtype);
    if ('data' in src && src.data.byteLength !== byteLength) {
      throw invalid(
        file,
        `tensor "${name}": shape ${describe(src.shape)} of ${src.dtype} needs ${byteLength} bytes but data has ${src.data.byteLength}`,
      );
    }
    order.push({ name, src, byteLength });
  }
  order.sort(
    (a, b) => itemSize(b.src.dtype) - itemSize(a.src.dtype) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );

  const json: Record<string, unknown> = {};
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw invalid(file, `metadata value for "${k}" is ${describe(v)}, not a string`);
    }
    json[METADATA_KEY] = metadata;
  }
  let offset = 0;
  for (const p of order) {
    json[p.name] = {
      dtype: toSafetensorsDType(p.src.dtype),
      shape: p.src.shape,
      data_offsets: [offset, offset + p.byteLength],
    };
    offset += p.byteLength;
  }
  const text = new TextEncoder().encode(JSON.stringify(json));
  const padded = Math.ceil(text.byteLength / 8) * 8;
  const header = new Uint8Array(8 + padded).fill(0x20);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(text, 8);
  return { header, order };
}

function checkLoaded(file: string, p: Planned, data: Uint8Array): Uint8Array {
  if (data.byteLength !== p.byteLength) {
    throw invalid(file, `tensor "${p.name}": load() returned ${data.byteLength} bytes, expected ${p.byteLength}`);
  }
  return data;
}

/**
 * Writes a safetensors file atomically: a temp file beside `path` receives the header and then
 * each tensor in turn (lazy tensors are loaded one at a time), is fsynced, and renamed over `path`.
 */
export async function writeSafetensors(
  path: string,
  tensors: TensorMap<TensorSource>,
  metadata?: Record<string, string>,
): Promise<void> {
  const { header, order } = plan(path, tensors, metadata);
  await writeAtomic(path, async (h: fs.promises.FileHandle) => {
    await writeAll(h, header);
    for (const p of order) {
      const data = 'data' in p.src ? p.src.data : checkLoaded(path, p, await p.src.load());
      await writeAll(h, data);
    }
  });
}

export function writeSafetensorsSync(
  path: string,
  tensors: TensorMap<TensorSource>,
  metadata?: Record<string, string>,
): void {
  const { header, order } = plan(path, tensors, metadata);
  writeAtomicSync(path, (fd) => {
    writeAllSync(fd, header);
    for (const p of order) {
      let data: Uint8Array;
      if ('data' in p.src) data = p.src.data;
      else {
        const loaded = p.src.load();
        if (loaded instanceof Promise) throw invalid(path, `tensor "${p.name}": load() is async; use writeSafetensors`);
        data = checkLoaded(path, p, loaded);
      }
      writeAllSync(fd, data);
    }
  });
}
