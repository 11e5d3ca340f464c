// What the commands do with a gallery: build it from a dataset, enrol and
// remove classes, answer for photos and score a dataset split. Each one checks
// that the gallery belongs to the loaded model (weights hash).
import { resolve } from 'node:path';
import { resolveSamplePath, type Dataset } from '../data/index.js';
import type { LoadedRecognizer } from '../eval/predictor.js';
import type { TtaView } from '../eval/evaluate.js';
import { embedDataset, embedFiles, hasEmbeddingHead } from './embed.js';
import {
  GALLERY_FORMAT,
  appendToGallery,
  writeGallery,
  checkSameModel,
  hashFile,
  weightsFileOf,
  withPrecision,
  GalleryError,
  type Gallery,
  type GalleryEntry,
} from './format.js';
import { GalleryMatcher, auroc, type GalleryAnswer } from './recognize.js';
import { ExactIndex } from './search.js';
import { isApproximate, openGalleryIndex } from './open-index.js';
import type { Device } from '../tensor/index.js';
import type { VectorPrecision } from './vectors.js';

/**
 * A matcher for a gallery: exact search on libtorch (on the model's device) below the gallery's size
 * threshold, the HNSW graph kept next to the gallery file (built and saved when missing) from it on.
 */
export function openMatcher(
  g: Gallery,
  path: string | null,
  o: { device?: Device; log?: (m: string) => void } = {},
): GalleryMatcher {
  const exact = (rows: Float32Array, dim: number): ExactIndex => new ExactIndex(rows, dim, o.device ?? 'cpu');
  return new GalleryMatcher(g, openGalleryIndex(g, { path, exact, ...(o.log ? { log: o.log } : {}) }));
}

/**
 * Writes a gallery atomically, then its HNSW graph when it is searched approximately (so queries find it ready).
 * Returns the gallery as written (refine rows bound to the new file).
 */
export function saveGallery(path: string, g: Gallery, log?: (m: string) => void): Gallery {
  const written = writeGallery(path, g);
  if (isApproximate(written)) openGalleryIndex(written, { path, ...(log ? { log } : {}) }).dispose();
  return written;
}

/** sha256 of the weights the recognizer loaded. */
export function recognizerHash(r: LoadedRecognizer): string {
  if (r.ensemble) throw new GalleryError(`${r.checkpointDir}: an ensemble has no single embedding; name one run`);
  return hashFile(weightsFileOf(r.checkpointDir, r.ema));
}

export interface BuildOptions {
  k?: number;
  /** Precision of the stored vectors (recorded as meta.vectors; absent: f32 without the field). */
  vectors?: VectorPrecision;
  /** f16/i8: also keep the f32 rows in the file, to re-rank search candidates with (meta.refine). */
  refine?: boolean;
  tta?: TtaView[];
  batchSize?: number;
  onBatch?: (done: number, total: number) => void;
}

/** A new gallery from every readable photo of a dataset (split already selected). */
export async function buildGallery(
  r: LoadedRecognizer,
  ds: Dataset,
  o: BuildOptions = {},
): Promise<{ gallery: Gallery; badFiles: { path: string; message: string }[] }> {
  if (ds.samples.length === 0) throw new GalleryError(`dataset ${ds.root}: no photos to build a gallery from`);
  const hash = recognizerHash(r);
  const e = await embedDataset(r, ds, o);
  const entries: GalleryEntry[] = [];
  const rows: number[] = [];
  ds.samples.forEach((s, i) => {
    if (e.ok[i]) {
      entries.push({ class: ds.classes[s.label]!, path: resolveSamplePath(ds, s) });
      rows.push(i);
    }
  });
  if (!entries.length)
    throw new GalleryError(`dataset ${ds.root}: none of its ${ds.samples.length} photos could be read`);
  const emb = new Float32Array(rows.length * e.dim);
  rows.forEach((i, j) => emb.set(e.embeddings.subarray(i * e.dim, (i + 1) * e.dim), j * e.dim));
  const gallery: Gallery = {
    meta: {
      format: GALLERY_FORMAT,
      model: {
        hash,
        checkpoint: r.checkpointDir,
        name: r.modelName,
        embedding: hasEmbeddingHead(r.model) ? 'neck' : 'pooled',
        preprocess: r.preprocess,
      },
      dim: e.dim,
      entries,
      k: o.k ?? 5,
      threshold: null,
    },
    embeddings: emb,
  };
  return { gallery: o.vectors ? withPrecision(gallery, o.vectors, o.refine) : gallery, badFiles: e.badFiles };
}

/** The gallery with photos of one class appended (bad photos are reported, not enrolled). */
export async function enrolPhotos(
  r: LoadedRecognizer,
  g: Gallery,
  className: string,
  paths: readonly string[],
  o: { tta?: TtaView[] } = {},
): Promise<{ gallery: Gallery; added: number; errors: { path: string; error: string }[] }> {
  if (!className.trim()) throw new GalleryError('--class: a class name is needed');
  const files = await embedFiles(r, paths, o);
  const good = files.filter((f) => f.embedding);
  const errors = files.filter((f) => !f.embedding).map((f) => ({ path: f.path, error: f.error ?? 'unreadable' }));
  if (!good.length)
    throw new GalleryError(
      `none of the ${paths.length} photo(s) for '${className}' could be read: ${errors.map((e) => `${e.path}: ${e.error}`).join('; ')}`,
    );
  const emb = new Float32Array(good.length * g.meta.dim);
  good.forEach((f, i) => {
    if (f.embedding!.length !== g.meta.dim)
      throw new GalleryError(`embedding width ${f.embedding!.length} differs from the gallery's ${g.meta.dim}`);
    emb.set(f.embedding!, i * g.meta.dim);
  });
  const gallery = appendToGallery(
    g,
    good.map((f) => ({ class: className, path: resolve(f.path) })),
    emb,
  );
  return { gallery, added: good.length, errors };
}

/** Throws unless the gallery belongs to this recognizer. */
export function checkGalleryModel(g: Gallery, r: LoadedRecognizer, galleryPath: string): void {
  checkSameModel(g, recognizerHash(r), galleryPath, r.checkpointDir);
}

export interface GalleryPrediction extends GalleryAnswer {
  path: string;
  error?: string;
}

/** Answers for photo files (a bad file gets an error entry). */
export async function predictWithGallery(
  r: LoadedRecognizer,
  m: GalleryMatcher,
  paths: readonly string[],
  o: { k?: number; tta?: TtaView[] } = {},
): Promise<GalleryPrediction[]> {
  const files = await embedFiles(r, paths, o);
  const good = files.filter((f) => f.embedding);
  const q = new Float32Array(good.length * m.gallery.meta.dim);
  good.forEach((f, i) => q.set(f.embedding!, i * m.gallery.meta.dim));
  const answers = m.match(q, {
    ...(o.k !== undefined ? { k: o.k } : {}),
    queryPaths: good.map((f) => resolve(f.path)),
  });
  let gi = 0;
  return files.map((f) =>
    f.embedding
      ? { path: f.path, ...answers[gi++]! }
      : {
          path: f.path,
          class: null,
          unknown: true,
          similarity: NaN,
          top: [],
          neighbours: [],
          error: f.error ?? 'unreadable',
        },
  );
}

export interface GalleryEvalResult {
  samples: number;
  /** Samples whose class is in the gallery / not in it. */
  known: number;
  unknown: number;
  /** Known samples: the vote's best class is right (threshold ignored). */
  top1: number;
  /** Known samples: right and above the threshold. */
  acceptedCorrect: number;
  /** Unknown samples answered "unknown" at the threshold. */
  unknownRejected: number;
  /** Known vs unknown best similarity. */
  auroc: number;
  threshold: number | null;
  predictions: { path: string; class: string; predicted: string | null; similarity: number }[];
  badFiles: { path: string; message: string }[];
}

/**
 * Scores a dataset split against the gallery: closed-set top-1 on photos of enrolled classes, open-set
 * rates at the threshold, and AUROC of known vs never-enrolled photos. A photo that is itself in the
 * gallery does not count as its own neighbour.
 */
export async function evaluateWithGallery(
  r: LoadedRecognizer,
  m: GalleryMatcher,
  ds: Dataset,
  o: { k?: number; tta?: TtaView[]; onBatch?: (d: number, t: number) => void } = {},
): Promise<GalleryEvalResult> {
  const e = await embedDataset(r, ds, o);
  const idx = ds.samples.flatMap((_, i) => (e.ok[i] ? [i] : []));
  const q = new Float32Array(idx.length * e.dim);
  idx.forEach((i, j) => q.set(e.embeddings.subarray(i * e.dim, (i + 1) * e.dim), j * e.dim));
  const paths = idx.map((i) => resolveSamplePath(ds, ds.samples[i]!));
  const answers = m.match(q, { ...(o.k !== undefined ? { k: o.k } : {}), queryPaths: paths });
  const enrolled = new Set(m.classes);
  const knownS: number[] = [];
  const unknownS: number[] = [];
  let top1 = 0;
  let acceptedCorrect = 0;
  let unknownRejected = 0;
  const predictions = answers.map((a, j) => {
    const cls = ds.classes[ds.samples[idx[j]!]!.label]!;
    if (enrolled.has(cls)) {
      knownS.push(a.similarity);
      if (a.top[0]?.class === cls) {
        top1++;
        if (!a.unknown) acceptedCorrect++;
      }
    } else {
      unknownS.push(a.similarity);
      if (a.unknown) unknownRejected++;
    }
    return { path: paths[j]!, class: cls, predicted: a.class, similarity: a.similarity };
  });
  const rate = (n: number, d: number): number => (d ? n / d : NaN);
  return {
    samples: answers.length,
    known: knownS.length,
    unknown: unknownS.length,
    top1: rate(top1, knownS.length),
    acceptedCorrect: rate(acceptedCorrect, knownS.length),
    unknownRejected: rate(unknownRejected, unknownS.length),
    auroc: auroc(knownS, unknownS),
    threshold: m.gallery.meta.threshold,
    predictions,
    badFiles: e.badFiles,
  };
}
