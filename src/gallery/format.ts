// The gallery file: one safetensors file holding the L2-normalised embeddings
// [N, D] (float32) and, in its metadata, JSON with each row's class and source
// photo plus the hash of the weights that made them. One file renamed into
// place (src/io's atomic writer) means a kill leaves the old or the new gallery,
// never a mix.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { SafetensorsReader, writeSafetensorsSync } from '../io/safetensors.js';
import { checkpointWeightsFile } from '../run/layout.js';
import type { PreprocessConfig } from '../run/pipelines.js';

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
}

export interface Gallery {
  meta: GalleryMeta;
  /** Row-major [entries.length, dim], each row of unit length. */
  embeddings: Float32Array;
}

/** Sorted class names of a gallery. */
export function galleryClasses(g: Gallery): string[] {
  return [...new Set(g.meta.entries.map((e) => e.class))].sort();
}

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
  if (!Array.isArray(m.entries) || g.embeddings.length !== m.entries.length * m.dim) {
    throw new GalleryError(`${where}: ${m.entries?.length} entries but ${g.embeddings.length / m.dim} embedding rows`);
  }
  if (typeof m.model?.hash !== 'string') throw new GalleryError(`${where}: no model hash`);
}

export function readGallery(path: string): Gallery {
  if (!existsSync(path)) throw new GalleryError(`${path}: no such gallery`);
  let r: SafetensorsReader;
  try {
    r = SafetensorsReader.openSync(path);
  } catch (e) {
    throw new GalleryError(`${path}: not a gallery file: ${(e as Error).message}`);
  }
  try {
    const text = r.metadata?.gallery;
    if (typeof text !== 'string') throw new GalleryError(`${path}: a safetensors file without gallery metadata`);
    const meta = JSON.parse(text) as GalleryMeta;
    const raw = r.readSync('embeddings');
    if (raw.dtype !== 'float32') throw new GalleryError(`${path}: embeddings are ${raw.dtype}, expected float32`);
    const embeddings = new Float32Array(
      raw.data.buffer.slice(raw.data.byteOffset, raw.data.byteOffset + raw.data.byteLength),
    );
    const g = { meta, embeddings };
    check(g, path);
    return g;
  } finally {
    r.close();
  }
}

/** Writes the gallery atomically: the previous file stays intact until the new one is complete and synced. */
export function writeGallery(path: string, g: Gallery): void {
  check(g, path);
  const n = g.meta.entries.length;
  const data = new Uint8Array(g.embeddings.buffer, g.embeddings.byteOffset, g.embeddings.byteLength);
  writeSafetensorsSync(
    path,
    { embeddings: { dtype: 'float32', shape: [n, g.meta.dim], data } },
    { format: GALLERY_FORMAT, gallery: JSON.stringify(g.meta) },
  );
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

/** A copy with rows kept where keep(entry) is true. */
export function filterGallery(g: Gallery, keep: (e: GalleryEntry) => boolean): Gallery {
  const d = g.meta.dim;
  const idx = g.meta.entries.flatMap((e, i) => (keep(e) ? [i] : []));
  const emb = new Float32Array(idx.length * d);
  idx.forEach((i, j) => emb.set(g.embeddings.subarray(i * d, (i + 1) * d), j * d));
  return { meta: { ...g.meta, entries: idx.map((i) => g.meta.entries[i]!) }, embeddings: emb };
}

/** A copy with rows appended. */
export function appendToGallery(g: Gallery, entries: readonly GalleryEntry[], embeddings: Float32Array): Gallery {
  if (embeddings.length !== entries.length * g.meta.dim)
    throw new GalleryError(`appendToGallery: ${entries.length} entries, ${embeddings.length / g.meta.dim} rows`);
  const emb = new Float32Array(g.embeddings.length + embeddings.length);
  emb.set(g.embeddings);
  emb.set(embeddings, g.embeddings.length);
  return { meta: { ...g.meta, entries: [...g.meta.entries, ...entries] }, embeddings: emb };
}
