// The refine rows: an f16/i8 gallery may keep its f32 rows in the same file, as a second safetensors tensor
// (`refine`, float32 [N, D]; meta.refine 'f32'), that is never loaded: the few candidates a search re-scores
// are read from the file with positioned reads (FAISS's "refine" re-rank), so the scores are the exact f32
// inner products while only the f16/i8 rows stay in memory. A gallery holds plain data about them (it is
// sent to worker_threads by structured clone): the file's identity when it was read (device, inode, size,
// mtime) and the tensor's offset. Rows are only ever read from that file: its fd is kept open per thread (so
// an atomic replacement by `gallery add` leaves this gallery its own rows), and a thread that opens the path
// later and finds another file refuses. Rows appended since the file was read are held in memory until the
// gallery is written.
import { closeSync, fstatSync, openSync, readSync, statSync, type BigIntStats } from 'node:fs';
import { SafetensorsReader, type SafetensorsTensorInfo } from '../io/safetensors.js';
import { GalleryError } from './format.js';

/** Name of the tensor holding the f32 rows. */
export const REFINE_TENSOR = 'refine';

/** A gallery file's refine tensor, bound to the file it was read from. */
export interface RefineFile {
  path: string;
  /** The file's identity (bigint stats as decimal strings): dev, inode, size, mtime in ns. */
  identity: string;
  /** Byte offset of row 0 of the tensor in the file. */
  offset: number;
  /** Rows in the tensor. */
  rows: number;
  dim: number;
}

/** Where each of a gallery's f32 rows is. */
export interface RefineRows {
  /** The file the gallery was read from (null: none yet, every row is in `extra`). */
  file: RefineFile | null;
  /** Row i is the file's row map[i] (>= 0) or extra's row -1 - map[i]; null: row i is the file's row i. */
  map: Int32Array | null;
  /** f32 rows not in the file (appended since it was read, or a gallery not written yet), row-major. */
  extra: Float32Array | null;
}

const identityOf = (s: BigIntStats): string => `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}`;

// Per thread: one fd per file identity, shared by every gallery over that file, closed when the last of their
// RefineFile objects is garbage collected (an open fd keeps a replaced file's rows readable, and its disk space
// in use, so it must not outlive the galleries).
interface Held {
  fd: number;
  refs: number;
  closed: boolean;
}
const open = new Map<string, Held>();
const held = new WeakMap<RefineFile, Held>();
const release = new FinalizationRegistry<{ key: string; e: Held }>(({ key, e }) => {
  if (--e.refs > 0 || e.closed) return;
  e.closed = true;
  if (open.get(key) === e) open.delete(key);
  try {
    closeSync(e.fd);
  } catch {
    /* already closed */
  }
});
const keyOf = (f: RefineFile): string => `${f.path}\0${f.identity}`;

function changed(f: RefineFile): GalleryError {
  return new GalleryError(`${f.path}: changed on disk since it was read; reload it (its f32 refine rows are gone)`);
}

/** Opens the file and checks it is the one described; the caller closes the fd. */
function openChecked(f: RefineFile): number {
  let fd: number;
  try {
    fd = openSync(f.path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw changed(f);
    throw new GalleryError(`${f.path}: cannot open it for its f32 refine rows: ${(e as Error).message}`);
  }
  if (identityOf(fstatSync(fd, { bigint: true })) !== f.identity) {
    closeSync(fd);
    throw changed(f);
  }
  return fd;
}

/** This thread's fd for the file (opened and checked on first use, then kept while the gallery lives). */
function fdOf(f: RefineFile, opened?: number): number {
  const mine = held.get(f);
  if (mine && !mine.closed) {
    if (opened !== undefined && opened !== mine.fd) closeSync(opened);
    return mine.fd;
  }
  const key = keyOf(f);
  let e = open.get(key);
  if (e && opened !== undefined) closeSync(opened); // this thread already holds the same file
  if (!e) {
    e = { fd: opened ?? openChecked(f), refs: 0, closed: false };
    open.set(key, e);
  }
  e.refs++;
  held.set(f, e);
  release.register(f, { key, e });
  return e.fd;
}

/** Opens (and checks) this thread's fd for the file now, so a later replacement of the path cannot take the rows away. */
export function pinRefineFile(f: RefineFile): void {
  fdOf(f);
}

/** Closes this thread's refine fds (a worker thread before it ends; tests); galleries reopen the path when used. */
export function closeRefineFiles(): void {
  for (const e of open.values()) {
    e.closed = true;
    try {
      closeSync(e.fd);
    } catch {
      /* already closed */
    }
  }
  open.clear();
}

/** A gallery file opened before its header is read, so that its identity is the file that was read. */
export interface OpenedGallery {
  path: string;
  fd: number;
  identity: string;
}

export function openGalleryFile(path: string): OpenedGallery {
  const fd = openSync(path, 'r');
  try {
    return { path, fd, identity: identityOf(fstatSync(fd, { bigint: true })) };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/**
 * The refine tensor of a gallery file opened with openGalleryFile and read since (`info`: its header entry,
 * null when it has none): checked against rows x dim, and against the path still naming the opened file (a
 * file once replaced never comes back, so the header read in between was this file's). The fd is kept for
 * this thread (`keep`) or closed (a writer that hands the descriptor to another thread); closed on errors.
 */
export function refineFileOf(
  o: OpenedGallery,
  info: SafetensorsTensorInfo | null,
  rows: number,
  dim: number,
  keep = true,
): RefineFile {
  let f: RefineFile;
  try {
    if (!info) throw new GalleryError(`${o.path}: meta.refine is set but there is no refine tensor`);
    if (info.dtype !== 'float32' || info.shape.length !== 2 || info.shape[0] !== rows || info.shape[1] !== dim)
      throw new GalleryError(
        `${o.path}: the refine tensor is ${info.dtype} [${info.shape.join(', ')}], expected float32 [${rows}, ${dim}]`,
      );
    if (identityOf(statSync(o.path, { bigint: true })) !== o.identity)
      throw new GalleryError(`${o.path}: replaced while it was being read; read it again`);
    f = { path: o.path, identity: o.identity, offset: info.offset, rows, dim };
  } catch (e) {
    closeSync(o.fd);
    throw e;
  }
  if (!keep) {
    closeSync(o.fd);
    return f;
  }
  fdOf(f, o.fd);
  return f;
}

/** The refine tensor of the gallery file at `path` now (a writer binding the file it has just written). */
export function bindRefineFile(path: string, rows: number, dim: number, keep = true): RefineFile {
  const o = openGalleryFile(path);
  let info: SafetensorsTensorInfo | null;
  try {
    const r = SafetensorsReader.openSync(path);
    try {
      info = r.has(REFINE_TENSOR) ? r.info(REFINE_TENSOR) : null;
    } finally {
      r.close();
    }
  } catch (e) {
    closeSync(o.fd);
    throw e;
  }
  return refineFileOf(o, info, rows, dim, keep);
}

function readFull(fd: number, f: RefineFile, buf: Uint8Array, position: number): void {
  let done = 0;
  while (done < buf.byteLength) {
    const n = readSync(fd, buf, done, buf.byteLength - done, position + done);
    if (n === 0) throw new GalleryError(`${f.path}: the refine tensor ends early (truncated file)`);
    done += n;
  }
}

/** Number of rows a RefineRows describes. */
export function refineLength(r: RefineRows, dim: number): number {
  if (r.map) return r.map.length;
  return (r.file?.rows ?? 0) + (r.extra ? r.extra.length / dim : 0);
}

/** Where gallery row i is: [file row, -1] or [-1, extra row]. */
function locate(r: RefineRows, i: number): number {
  if (r.map) return r.map[i]!;
  const inFile = r.file?.rows ?? 0;
  return i < inFile ? i : -1 - (i - inFile);
}

/**
 * Exact inner products (float64) of query row `qOffset` with gallery rows `rows`, reading each file row with
 * one positioned read (4 x dim bytes) on this thread's fd for the file.
 */
export function refineSimilarities(
  r: RefineRows,
  dim: number,
  rows: readonly number[],
  query: Float32Array,
  qOffset: number,
): number[] {
  const buf = new Float32Array(dim);
  const bytes = new Uint8Array(buf.buffer);
  return rows.map((i) => {
    const at = locate(r, i);
    let v: Float32Array;
    if (at >= 0) {
      const f = r.file!;
      readFull(fdOf(f), f, bytes, f.offset + at * dim * 4);
      v = buf;
    } else v = r.extra!.subarray((-1 - at) * dim, -at * dim);
    let dot = 0;
    for (let j = 0; j < dim; j++) dot += query[qOffset + j]! * v[j]!;
    return dot;
  });
}

/** Reads file rows [from, from + n) into out at row `to` with one read (a run of consecutive rows). */
function readRun(fd: number, f: RefineFile, out: Float32Array, to: number, from: number, n: number): void {
  const dim = f.dim;
  readFull(fd, f, new Uint8Array(out.buffer, out.byteOffset + to * dim * 4, n * dim * 4), f.offset + from * dim * 4);
}

/**
 * Every row, materialised (for writing a file or converting precision; the only time they are all in memory):
 * consecutive file rows are read in one positioned read. Uses this thread's fd when it has one, else opens and
 * checks the file for the duration (a write worker leaves no fd behind).
 */
export function materialiseRefine(r: RefineRows, dim: number): Float32Array {
  if (!r.file && !r.map && r.extra) return r.extra; // all in memory already (not copied)
  const n = refineLength(r, dim);
  const out = new Float32Array(n * dim);
  const f = r.file;
  let fd = -1;
  let temporary = false;
  if (f) {
    const mine = held.get(f) ?? open.get(keyOf(f));
    if (mine && !mine.closed) fd = mine.fd;
    else {
      fd = openChecked(f);
      temporary = true;
    }
  }
  try {
    for (let i = 0; i < n; ) {
      const at = locate(r, i);
      if (at < 0) {
        const e = -1 - at;
        out.set(r.extra!.subarray(e * dim, (e + 1) * dim), i * dim);
        i++;
        continue;
      }
      let run = 1;
      while (i + run < n && locate(r, i + run) === at + run) run++;
      readRun(fd, f!, out, i, at, run);
      i += run;
    }
  } finally {
    if (temporary) closeSync(fd);
  }
  return out;
}

/** The refine rows of rows `idx` of r, in order (no row is read: the map is composed). */
export function selectRefine(r: RefineRows, idx: readonly number[]): RefineRows {
  const map = Int32Array.from(idx, (i) => locate(r, i));
  return { file: r.file, map, extra: r.extra };
}

/** r's rows then `rows` (f32, row-major), held in memory until written. */
export function appendRefine(r: RefineRows, dim: number, rows: Float32Array): RefineRows {
  const n = refineLength(r, dim);
  const had = r.extra ? r.extra.length / dim : 0;
  const extra = new Float32Array((had + rows.length / dim) * dim);
  if (r.extra) extra.set(r.extra);
  extra.set(rows, had * dim);
  const map = new Int32Array(n + rows.length / dim);
  for (let i = 0; i < n; i++) map[i] = locate(r, i);
  for (let j = 0; j < rows.length / dim; j++) map[n + j] = -1 - (had + j);
  return { file: r.file, map, extra };
}

/** Rows held in memory only (a gallery made from f32 rows, not written yet). */
export const refineInMemory = (rows: Float32Array): RefineRows => ({ file: null, map: null, extra: rows });
