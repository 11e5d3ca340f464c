// The gallery file: one safetensors file holding the L2-normalised embeddings
// [N, D] (float32, or float16 / int8 when the gallery was built with
// `--vectors f16|i8`: meta.vectors, see vectors.ts) and, in its metadata, JSON
// with each row's class and source photo plus the hash of the weights that made
// them. Files from before meta.vectors hold float32 and read as before. An f16/i8
// gallery may also keep its f32 rows as a second tensor, `refine` (float32 [N, D],
// meta.refine 'f32'), which is never loaded: search re-scores its candidates
// from it with positioned reads (refine.ts). One file renamed into place (src/io's
// atomic writer) means a kill leaves the old or the new gallery, never a mix.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { SafetensorsReader, writeSafetensorsSync } from '../io/safetensors.js';
import { checkpointWeightsFile } from '../run/layout.js';
import type { PreprocessConfig } from '../run/pipelines.js';
import {
  appendRefine,
  bindRefineFile,
  materialiseRefine,
  openGalleryFile,
  refineFileOf,
  pinRefineFile,
  REFINE_TENSOR,
  refineInMemory,
  refineLength,
  selectRefine,
  type OpenedGallery,
  type RefineFile,
  type RefineRows,
} from './refine.js';
import {
  concatRows,
  decodeRows,
  encodeRows,
  isVectorPrecision,
  selectRows,
  type StoredRows,
  type VectorPrecision,
} from './vectors.js';

export const GALLERY_FORMAT = 'goodsrec-gallery-1';

export interface GalleryEntry {
  class: string;
  /** Source photo (absolute path) the row was computed from. */
  path: string;
}

/** The model a gallery belongs to. */
export interface GalleryModel {
  /** sha256 of the weights file the embeddings came from (model or EMA safetensors). */
  hash: string;
  /** The checkpoint folder it was loaded from (used by `gallery add` when no model is named). */
  checkpoint: string;
  name: string;
  /** 'pooled': the backbone's pooled feature (softmax runs); 'neck': the embedding head's output. */
  embedding: 'pooled' | 'neck';
  preprocess: PreprocessConfig;
}

export interface Calibration {
  threshold: number;
  targetFar: number;
  /** Measured on the calibration photos at the threshold. */
  far: number;
  tar: number;
  auroc: number;
  known: number;
  unknown: number;
  at: string;
}

export interface GalleryMeta {
  format: typeof GALLERY_FORMAT;
  model: GalleryModel;
  dim: number;
  entries: GalleryEntry[];
  /** Neighbours that vote (default 5). */
  k: number;
  /** Best-match cosine below which the answer is "unknown product" (null: never). */
  threshold: number | null;
  calibration?: Calibration;
  /** Search settings: approximate (HNSW) from this many photos on (default open-index.ts), graph settings. */
  search?: { approximateFrom?: number; hnsw?: Partial<import('./hnsw-index.js').HnswSettings> };
  /** Precision of the stored vectors, in the file and in the search index (absent, as in older files: f32). */
  vectors?: VectorPrecision;
  /** 'f32': the file also holds the f32 rows (tensor `refine`) that search re-scores candidates with (f16/i8 only). */
  refine?: 'f32';
}

export interface Gallery {
  meta: GalleryMeta;
  /**
   * Row-major [entries.length, dim], each row of unit length: as computed for an f32 gallery, decoded from
   * `stored` for an f16/i8 one (on first read, which allocates entries x dim x 4 bytes; search does not read it).
   */
  embeddings: Float32Array;
  /** The rows in the gallery's precision (meta.vectors) when it is not f32: what the file and the index hold. */
  stored?: StoredRows;
  /** Where the f32 rows are when meta.refine is set: plain data (a file's identity, row map, unwritten rows). */
  refine?: RefineRows;
}

/** Whether the gallery keeps f32 rows to re-rank with. */
export function hasRefine(g: Gallery): boolean {
  return g.refine !== undefined;
}

/** The precision a gallery stores its vectors in. */
export function galleryPrecision(g: Gallery): VectorPrecision {
  return g.meta.vectors ?? 'f32';
}

/** The gallery's rows in its precision (an f32 gallery's embeddings, not copied). */
export function storedRowsOf(g: Gallery): StoredRows {
  const p = galleryPrecision(g);
  if (g.stored?.precision === p) return g.stored;
  if (p === 'f32') return { precision: 'f32', data: g.embeddings };
  return encodeRows(g.embeddings, g.meta.dim, p); // meta.vectors set on an f32 gallery by hand
}

/**
 * A gallery over stored rows: f32 rows are its embeddings; f16/i8 rows are decoded to `embeddings` only when
 * that is read. The property is lazy and non-enumerable, so that a copy sent to a worker carries `stored`
 * only (see reviveGallery); for the same reason a spread copy ({ ...g }) lacks it: build copies with this.
 */
export function galleryFromStored(meta0: GalleryMeta, stored: StoredRows, refine?: RefineRows): Gallery {
  const { refine: _, ...rest } = meta0;
  const meta: GalleryMeta = refine ? { ...rest, refine: 'f32' } : rest;
  if (stored.precision === 'f32') {
    if (refine) throw new GalleryError('refine rows are for f16/i8 galleries: f32 rows are already exact');
    return { meta, embeddings: stored.data };
  }
  let decoded: Float32Array | null = null;
  const g = (refine ? { meta, stored, refine } : { meta, stored }) as Gallery;
  Object.defineProperty(g, 'embeddings', {
    get: () => (decoded ??= decodeRows(stored, meta.dim)),
    enumerable: false,
    configurable: true,
  });
  return g;
}

/** A gallery received by structured clone (worker_threads), with its lazy `embeddings` restored. */
export function reviveGallery(g: Gallery): Gallery {
  return g.stored ? galleryFromStored(g.meta, g.stored, g.refine) : g;
}

/**
 * The gallery with its vectors in another precision, with or without f32 refine rows (`refine` undefined: kept
 * if it has them, never for f32). Rows are quantized from the f32 rows when it has refine rows (to f32: those
 * rows, exactly), else from its current embeddings (to f32 from f16/i8: the decoded rows, not the lost
 * precision back). The result's embeddings are what a file written from it reads back.
 */
export function withPrecision(g: Gallery, p: VectorPrecision, refine?: boolean): Gallery {
  const meta = { ...g.meta, vectors: p };
  const from = galleryPrecision(g);
  const want = p !== 'f32' && (refine ?? hasRefine(g));
  if (p === 'f32' && refine) throw new GalleryError('refine rows are for f16/i8 galleries: f32 rows are already exact');
  if (want && !g.refine && from !== 'f32')
    throw new GalleryError(
      `a ${from} gallery without refine rows has no f32 rows to keep (build it again with --refine, or convert an f32 gallery)`,
    );
  // f32 rows: read from the refine rows only when quantizing from them (the stored rows otherwise stay as they are)
  const exact = (): Float32Array => (g.refine ? materialiseRefine(g.refine, g.meta.dim) : g.embeddings);
  if (p === 'f32') return galleryFromStored(meta, { precision: 'f32', data: from === 'f32' ? g.embeddings : exact() });
  const rows = from === p ? storedRowsOf(g) : encodeRows(exact(), g.meta.dim, p);
  const keep = want ? (g.refine ?? refineInMemory(g.embeddings)) : undefined;
  return galleryFromStored(meta, rows, keep);
}

/** Sorted class names of a gallery. */
export function galleryClasses(g: Gallery): string[] {
  return [...new Set(g.meta.entries.map((e) => e.class))].sort();
}

/** The safetensors dtype of each precision's embeddings tensor. */
const FILE_DTYPE = { f32: 'float32', f16: 'float16', i8: 'int8' } as const satisfies Record<VectorPrecision, string>;

/** sha256 of a file, streamed (weights files can be large). */
export function hashFile(path: string): string {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 22);
    for (let n: number; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** The weights file a recognizer loaded from its checkpoint folder. */
export function weightsFileOf(checkpointDir: string, ema: boolean): string {
  return checkpointWeightsFile(checkpointDir, ema);
}

export class GalleryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GalleryError';
  }
}

function check(g: Gallery, where: string): void {
  const m = g.meta;
  if (m.format !== GALLERY_FORMAT)
    throw new GalleryError(`${where}: not a goodsrec gallery (format ${JSON.stringify(m.format)})`);
  if (!Number.isInteger(m.dim) || m.dim < 1) throw new GalleryError(`${where}: bad embedding width ${m.dim}`);
  if (m.vectors !== undefined && !isVectorPrecision(m.vectors))
    throw new GalleryError(`${where}: unknown vector precision ${JSON.stringify(m.vectors)} (expected f32, f16 or i8)`);
  const values = (g.stored ?? { data: g.embeddings }).data.length; // never decodes a lazy gallery
  if (!Array.isArray(m.entries) || values !== m.entries.length * m.dim) {
    throw new GalleryError(`${where}: ${m.entries?.length} entries but ${values / m.dim} embedding rows`);
  }
  if (m.refine !== undefined && m.refine !== 'f32')
    throw new GalleryError(`${where}: unknown refine rows ${JSON.stringify(m.refine)} (expected f32)`);
  if ((m.refine === 'f32') !== (g.refine !== undefined))
    throw new GalleryError(
      `${where}: meta.refine ${m.refine === 'f32' ? 'is set without' : 'is not set with'} refine rows`,
    );
  if (g.refine && (m.vectors ?? 'f32') === 'f32')
    throw new GalleryError(`${where}: refine rows are for f16/i8 galleries: f32 rows are already exact`);
  if (g.refine && refineLength(g.refine, m.dim) !== m.entries.length)
    throw new GalleryError(`${where}: ${m.entries.length} entries but ${refineLength(g.refine, m.dim)} refine rows`);
  if (typeof m.model?.hash !== 'string') throw new GalleryError(`${where}: no model hash`);
}

export function readGallery(path: string): Gallery {
  if (!existsSync(path)) throw new GalleryError(`${path}: no such gallery`);
  // opened first: refine rows are bound to the file whose header and rows are read below
  let opened: OpenedGallery | null;
  let r: SafetensorsReader;
  try {
    opened = openGalleryFile(path);
    try {
      r = SafetensorsReader.openSync(path);
    } catch (e) {
      closeSync(opened.fd);
      throw e;
    }
  } catch (e) {
    throw new GalleryError(`${path}: not a gallery file: ${(e as Error).message}`);
  }
  try {
    const text = r.metadata?.gallery;
    if (typeof text !== 'string') throw new GalleryError(`${path}: a safetensors file without gallery metadata`);
    const meta = JSON.parse(text) as GalleryMeta;
    const p = meta.vectors ?? 'f32';
    if (!isVectorPrecision(p))
      throw new GalleryError(`${path}: unknown vector precision ${JSON.stringify(p)} (expected f32, f16 or i8)`);
    const raw = r.readSync('embeddings');
    if (raw.dtype !== FILE_DTYPE[p])
      throw new GalleryError(`${path}: embeddings are ${raw.dtype}, expected ${FILE_DTYPE[p]} (vectors ${p})`);
    const bytes = raw.data.buffer.slice(raw.data.byteOffset, raw.data.byteOffset + raw.data.byteLength);
    const stored: StoredRows =
      p === 'f32'
        ? { precision: p, data: new Float32Array(bytes) }
        : p === 'f16'
          ? { precision: p, data: new Uint16Array(bytes) }
          : { precision: p, data: new Int8Array(bytes) };
    if (meta.refine !== undefined && meta.refine !== 'f32')
      throw new GalleryError(`${path}: unknown refine rows ${JSON.stringify(meta.refine)} (expected f32)`);
    // the f32 rows stay on disk: only their place and the file's identity are kept (and this thread's fd)
    let refine: RefineRows | undefined;
    if (meta.refine) {
      const info = r.has(REFINE_TENSOR) ? r.info(REFINE_TENSOR) : null;
      const o = opened;
      opened = null; // refineFileOf keeps or closes it
      refine = { file: refineFileOf(o, info, meta.entries?.length ?? 0, meta.dim), map: null, extra: null };
    }
    const g = galleryFromStored(meta, stored, refine);
    check(g, path);
    return g;
  } finally {
    r.close();
    if (opened) closeSync(opened.fd);
  }
}

/**
 * Writes the gallery atomically: the previous file stays intact until the new one is complete and synced.
 * Refine rows are materialised only while writing (rows of the file it was read from, which may be `path`
 * itself, are read before the rename). Returns the gallery as written: its refine rows bound to the new file
 * (`pin` false: without keeping an fd in this thread, for a writer that hands the gallery to another thread).
 */
export function writeGallery(path: string, g: Gallery, o: { pin?: boolean } = {}): Gallery {
  check(g, path);
  const n = g.meta.entries.length;
  const s = storedRowsOf(g);
  const data = new Uint8Array(s.data.buffer, s.data.byteOffset, s.data.byteLength);
  const { refine } = g;
  writeSafetensorsSync(
    path,
    {
      embeddings: { dtype: FILE_DTYPE[s.precision], shape: [n, g.meta.dim], data },
      ...(refine
        ? {
            [REFINE_TENSOR]: {
              dtype: 'float32' as const,
              shape: [n, g.meta.dim],
              load: () => {
                const rows = materialiseRefine(refine, g.meta.dim);
                return new Uint8Array(rows.buffer, rows.byteOffset, rows.byteLength);
              },
            },
          }
        : {}),
    },
    { format: GALLERY_FORMAT, gallery: JSON.stringify(g.meta) },
  );
  if (!refine) return g;
  const file = bindRefineFile(path, n, g.meta.dim, o.pin ?? true);
  return galleryFromStored(g.meta, s, { file, map: null, extra: null });
}

/**
 * The gallery with its refine rows bound to `file`, the descriptor a writer in another thread returned for the
 * file it wrote; the file is opened and checked now (pinned in this thread).
 */
export function withRefineFile(g: Gallery, file: RefineFile | null): Gallery {
  if (!g.refine || !file) return g;
  pinRefineFile(file);
  return galleryFromStored(g.meta, storedRowsOf(g), { file, map: null, extra: null });
}

/** Throws unless the gallery was made by the weights with this hash. */
export function checkSameModel(g: Gallery, hash: string, galleryPath: string, modelPath: string): void {
  if (g.meta.model.hash !== hash) {
    throw new GalleryError(
      `${galleryPath}: built with another model (weights sha256 ${g.meta.model.hash.slice(0, 12)}… from ` +
        `${g.meta.model.checkpoint}) than ${modelPath} (${hash.slice(0, 12)}…); rebuild it with goodsrec gallery build`,
    );
  }
}

/** A copy with rows kept where keep(entry) is true (in the gallery's precision, without decoding). */
export function filterGallery(g: Gallery, keep: (e: GalleryEntry) => boolean): Gallery {
  const idx = g.meta.entries.flatMap((e, i) => (keep(e) ? [i] : []));
  const rows = selectRows(storedRowsOf(g), g.meta.dim, idx);
  const refine = g.refine ? selectRefine(g.refine, idx) : undefined;
  return galleryFromStored({ ...g.meta, entries: idx.map((i) => g.meta.entries[i]!) }, rows, refine);
}

/** A copy with rows appended (unit f32 rows, quantized to the gallery's precision). */
export function appendToGallery(g: Gallery, entries: readonly GalleryEntry[], embeddings: Float32Array): Gallery {
  if (embeddings.length !== entries.length * g.meta.dim)
    throw new GalleryError(`appendToGallery: ${entries.length} entries, ${embeddings.length / g.meta.dim} rows`);
  const mine = storedRowsOf(g);
  const rows = concatRows(mine, encodeRows(embeddings, g.meta.dim, mine.precision));
  const refine = g.refine ? appendRefine(g.refine, g.meta.dim, embeddings) : undefined;
  return galleryFromStored({ ...g.meta, entries: [...g.meta.entries, ...entries] }, rows, refine);
}
