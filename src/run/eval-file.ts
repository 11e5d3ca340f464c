// The evaluation file (`goodsrec eval --out`, default <run>/eval-<split>.json, and with --gallery
// <run>/eval-<split>-gallery.json): one versioned schema for both kinds, described by
// schemas/eval-file.schema.json. Common fields at the top level, the numbers under `metrics`, one
// record per photo under `predictions`; `kind` says which metrics and predictions. Files written before
// the schema had a version (no `format`) are read as they were meant: a gallery evaluation then kept its
// numbers at the top level.
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../util/atomic.js';
import type { PreprocessConfig } from './pipelines.js';

export const EVAL_FILE_FORMAT = 'goodsrec-eval-2';

/** One class's numbers (eval/metrics.ts computes them). */
export interface ClassMetricsRecord {
  name: string;
  support: number;
  correct: number;
  accuracy: number;
  precision: number;
  recall: number;
  f1: number;
}

/** The evaluated photos of the classes with a given number of training photos. */
export interface FrequencyGroupRecord {
  /** Classes of the group with at least one evaluated photo. */
  classes: number;
  samples: number;
  correct: number;
  /** correct / samples; null when the group has no evaluated photo. */
  top1: number | null;
  /** Mean of the group's per-class accuracies; null when none has an evaluated photo. */
  meanClassAccuracy: number | null;
}

/** One of the tail's worst classes: its training photos, its accuracy and where its photos went most. */
export interface TailClassRecord {
  name: string;
  train: number;
  support: number;
  correct: number;
  accuracy: number;
  /** The class its photos were most often mistaken for; null when none was. */
  confusedWith: string | null;
}

/**
 * Accuracy by training frequency, as the long-tail literature splits it: many (> 100 training photos), medium
 * (20-100) and few (< 20); and the few-shot group's worst classes. Absent in files from before it (and for
 * ensembles and runs whose training counts are unknown).
 */
export interface FrequencyBreakdown {
  /** Where the training counts came from: the run's dataset.json, or a count of the dataset's train split. */
  source: string;
  many: FrequencyGroupRecord;
  medium: FrequencyGroupRecord;
  few: FrequencyGroupRecord;
  /** The few-shot classes with evaluated photos, worst first (at most 20). */
  worstTail: TailClassRecord[];
}

/** A classifier's numbers: top-k accuracy, per-class numbers, confusion counts (confusion[true][predicted]). */
export interface ClassifierMetrics {
  samples: number;
  top1: number;
  top5: number;
  meanClassAccuracy: number;
  loss: number | null;
  perClass: ClassMetricsRecord[];
  confusion: number[][];
  /** Accuracy by training frequency (goodsrec eval of a run whose training counts are known). */
  byFrequency?: FrequencyBreakdown;
}

/** One photo's classifier answer: top-k class indices, best first, and their probabilities. */
export interface ClassifierPrediction {
  index: number;
  path: string;
  label: number;
  top: number[];
  probs: number[];
}

/** Nearest-neighbour scoring against a gallery; a rate with nothing to count (0/0) is null. */
export interface GalleryMetrics {
  samples: number;
  /** Photos whose class is in the gallery / not in it. */
  known: number;
  unknown: number;
  /** Known photos: the vote's best class is right (threshold ignored). */
  top1: number | null;
  /** Known photos: right and above the threshold. */
  acceptedCorrect: number | null;
  /** Unknown photos answered "unknown" at the threshold. */
  unknownRejected: number | null;
  /** Known vs unknown best similarity. */
  auroc: number | null;
  threshold: number | null;
}

export interface GalleryPrediction {
  path: string;
  class: string;
  /** null: answered "unknown product". */
  predicted: string | null;
  similarity: number;
}

/** A photo that could not be decoded. */
export interface EvalBadFile {
  path: string;
  reason?: string;
  message: string;
}

/** A folder entry that is not a readable image file (dangling symlink, FIFO, ...), never opened. */
export interface EvalSkippedEntry {
  path: string;
  reason: string;
  detail: string;
}

interface EvalFileCommon {
  format: typeof EVAL_FILE_FORMAT;
  /** The model's name (for an ensemble: its members'). */
  model: string;
  /** The checkpoint folder (or ensemble file) evaluated. */
  checkpoint: string | null;
  data: string;
  split: string;
  /** The pre-processing evaluated with (older files may lack parts). */
  preprocess?: Partial<PreprocessConfig> & { size: number };
  tta: string[];
  badFiles: EvalBadFile[];
  skipped: EvalSkippedEntry[];
  seconds?: number;
  /** An exported graph evaluated in onnxruntime (absent: the engine ran the checkpoint). */
  onnx?: { path: string; precision: 'fp32' | 'int8'; sha256: string };
}

/** One member of an evaluated ensemble (`goodsrec ensemble --out`) with its own numbers. */
export interface EnsembleMemberRecord {
  member: string;
  checkpoint: string;
  weight: number;
  top1: number;
  top5: number;
}

/** `goodsrec eval` (a run, a checkpoint or an ensemble file) and `goodsrec ensemble --out`: a classifier's evaluation. */
export interface ClassifierEvalFile extends EvalFileCommon {
  kind: 'classifier';
  /** The model's class list: labels and predictions index it. */
  classes: string[];
  metrics: ClassifierMetrics;
  predictions: ClassifierPrediction[];
  /** `goodsrec ensemble --out`: the members and how their scores were combined. */
  members?: EnsembleMemberRecord[];
  mean?: 'logits' | 'probs';
}

/** `goodsrec eval --gallery`: nearest-neighbour scoring against a gallery file. */
export interface GalleryEvalFile extends EvalFileCommon {
  kind: 'gallery';
  /** The gallery file. */
  gallery: string;
  metrics: GalleryMetrics;
  predictions: GalleryPrediction[];
}

export type AnyEvalFile = ClassifierEvalFile | GalleryEvalFile;
export type EvalFileKind = AnyEvalFile['kind'];

/** The classifier evaluation (what `goodsrec report` reads). */
export type EvalFile = ClassifierEvalFile;

/** What a writer gives: everything but the format, which the writer stamps. */
export type EvalFileInput = Omit<ClassifierEvalFile, 'format'> | Omit<GalleryEvalFile, 'format'>;

/** NaN (a rate of nothing) as null, the way the file stores it. */
export function rateOrNull(v: number | null): number | null {
  return v === null || Number.isNaN(v) ? null : v;
}

/** Writes an eval file atomically in the current format. */
export function writeEvalFile(path: string, ev: EvalFileInput): void {
  writeFileAtomic(path, serializeEvalFile({ format: EVAL_FILE_FORMAT, ...ev }));
}

/**
 * Indented JSON with one line per confusion row and per prediction (issue 28): indenting every number of the dense
 * K x K confusion matrix made a 2,388-class evaluation of 2,388 photos 64 MB (5.7 M lines); one row per line is
 * the same JSON value in about a fifth of the bytes.
 */
export function serializeEvalFile(v: AnyEvalFile): string {
  const CONFUSION = '\u0001confusion';
  const PREDICTIONS = '\u0001predictions';
  const compact = (rows: readonly unknown[], indent: string): string =>
    rows.length ? `[\n${rows.map((r) => indent + JSON.stringify(r)).join(',\n')}\n${indent.slice(2)}]` : '[]';
  const metrics = v.kind === 'classifier' ? { ...v.metrics, confusion: CONFUSION } : v.metrics;
  let text = JSON.stringify({ ...v, metrics, predictions: PREDICTIONS }, null, 2);
  // A string value cannot contain an unescaped quote, so `"key": "\u0001..."` only matches the placeholders.
  text = text.replace(
    `"predictions": ${JSON.stringify(PREDICTIONS)}`,
    () => `"predictions": ${compact(v.predictions, '    ')}`,
  );
  if (v.kind === 'classifier')
    text = text.replace(
      `"confusion": ${JSON.stringify(CONFUSION)}`,
      () => `"confusion": ${compact(v.metrics.confusion, '      ')}`,
    );
  return text + '\n';
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** An eval file as read: the current format as is, an unversioned one brought to it. */
export function migrateEvalFile(raw: unknown, where: string): AnyEvalFile {
  const notEval = (why: string): Error => new Error(`${where}: not an evaluation written by goodsrec eval (${why})`);
  if (!isObject(raw)) throw notEval('not a JSON object');
  if (raw.format !== undefined && raw.format !== EVAL_FILE_FORMAT) {
    const m = /^goodsrec-eval-(\d+)$/.exec(String(raw.format));
    throw m
      ? new Error(
          `${where}: eval file format ${m[1]} is newer than this goodsrec reads (${EVAL_FILE_FORMAT}); update goodsrec`,
        )
      : notEval(`unknown format ${JSON.stringify(raw.format)}`);
  }
  // Fields older files may lack get their meaning then: no TTA, nothing bad, nothing skipped.
  const v: Record<string, unknown> = {
    tta: [],
    badFiles: [],
    skipped: [],
    ...(raw.format === undefined ? legacy(raw) : raw),
  };
  checkShape(v, notEval);
  return v;
}

/** The fields the readers rely on (the full contract is the JSON Schema; see test/eval-file.test.ts). */
function checkShape(
  v: Record<string, unknown>,
  notEval: (why: string) => Error,
): asserts v is Record<string, unknown> & AnyEvalFile {
  if (!Array.isArray(v.predictions) || !isObject(v.metrics)) throw notEval('needs metrics and predictions');
  if (v.kind === 'classifier') {
    if (!Array.isArray(v.classes) || !Array.isArray(v.metrics.confusion))
      throw notEval('needs classes, metrics with confusion, predictions');
  } else if (v.kind === 'gallery') {
    if (typeof v.gallery !== 'string') throw notEval('a gallery evaluation without its gallery');
  } else throw notEval(`unknown kind ${JSON.stringify(v.kind)}`);
}

/** Unversioned files: a classifier evaluation as now (without format and kind); a gallery one with its numbers at the top. */
function legacy(raw: Record<string, unknown>): Record<string, unknown> {
  if (typeof raw.gallery === 'string' && !('metrics' in raw)) {
    const { samples, known, unknown, top1, acceptedCorrect, unknownRejected, auroc, threshold, ...rest } = raw;
    return {
      format: EVAL_FILE_FORMAT,
      kind: 'gallery',
      ...rest,
      metrics: { samples, known, unknown, top1, acceptedCorrect, unknownRejected, auroc, threshold },
    };
  }
  return { format: EVAL_FILE_FORMAT, kind: 'classifier', ...raw };
}

/** Reads an eval file of either kind (older files included); errors name the file and what is missing. */
export function readAnyEvalFile(path: string): AnyEvalFile {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
  return migrateEvalFile(raw, path);
}

/** Reads a classifier evaluation (older files included); a gallery evaluation is refused with a clear error. */
export function readEvalFile(path: string): ClassifierEvalFile {
  const ev = readAnyEvalFile(path);
  if (ev.kind !== 'classifier')
    throw new Error(
      `${path}: a gallery evaluation (eval --gallery); this needs a classifier evaluation (goodsrec eval without --gallery)`,
    );
  return ev;
}
