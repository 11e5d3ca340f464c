/**
 * Dataset analysis: classes and images per class (long tail), aspect ratios (the reason for the
 * letterbox resize), image sizes, exact duplicates by content hash within and across splits, bad files.
 * Reads files only.
 */
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { loadDataset, resolveSamplePath, splitNames, type Dataset } from './dataset.js';
import type { SkippedEntry } from './walk.js';
import {
  BadImageError,
  DEFAULT_MAX_PIXELS,
  decodeBuffer,
  probeImage,
  readImageFile,
  type BadFileReason,
} from './image.js';
import { mapPool } from './stats.js';

export interface HistogramBin {
  lo: number;
  hi: number;
  count: number;
}

export interface DuplicateGroup {
  sha256: string;
  files: { path: string; split: string; class: string }[];
  /** 'within-split' when all copies are in one split, else 'cross-split' (train/test leakage). */
  kind: 'within-split' | 'cross-split';
  /** The copies carry different labels. */
  conflictingLabels: boolean;
}

export interface DatasetAnalysis {
  root: string;
  images: number;
  splits: Record<string, number>;
  classes: { name: string; total: number; perSplit: Record<string, number> }[];
  longTail: {
    maxPerClass: number;
    minPerClass: number;
    medianPerClass: number;
    imbalanceRatio: number;
    classesUnder10: number;
    emptyInSplit: Record<string, number>;
  };
  aspect: {
    histogram: HistogramBin[];
    median: number;
    fractionTallerThan1_5: number;
    fractionWiderThan1_5: number;
    perSplit: Record<string, HistogramBin[]>;
  };
  sizes: {
    widths: HistogramBin[];
    heights: HistogramBin[];
    minWidth: number;
    minHeight: number;
    maxWidth: number;
    maxHeight: number;
    medianWidth: number;
    medianHeight: number;
    common: { size: string; count: number }[];
    formats: Record<string, number>;
  };
  duplicates: {
    groups: DuplicateGroup[];
    withinSplit: number;
    crossSplit: number;
    conflictingLabels: number;
    redundantFiles: number;
  };
  badFiles: { path: string; reason: BadFileReason; message: string }[];
  badByReason: Partial<Record<BadFileReason, number>>;
  /** Folder entries that are not readable files (dangling symlinks, FIFOs, ...), never opened. */
  skipped: SkippedEntry[];
  /** Whether pixel data was decoded (finds truncated files) or only headers were read. */
  decoded: boolean;
}

export interface AnalyzeOptions {
  splits?: string[];
  /** Decode every image to find truncated/corrupt ones (slower). Default true. */
  decode?: boolean;
  concurrency?: number;
  maxPixels?: number;
  onProgress?: (done: number, total: number) => void;
}

/** Aspect ratio bins (height / width), log-spaced so 1/2 and 2 are symmetric. */
const ASPECT_EDGES = [0, 0.25, 0.33, 0.5, 0.67, 0.8, 0.91, 1.1, 1.25, 1.5, 2, 2.5, 3, 3.5, 4, Infinity];

function histogram(values: number[], edges: number[]): HistogramBin[] {
  const bins = edges.slice(0, -1).map((lo, i) => ({ lo, hi: edges[i + 1]!, count: 0 }));
  for (const v of values) {
    const b = bins.find((x) => v >= x.lo && v < x.hi);
    if (b) b.count++;
  }
  return bins;
}

function sizeEdges(values: number[]): number[] {
  const max = Math.max(1, maxOf(values));
  const step = Math.max(32, 2 ** Math.ceil(Math.log2(max / 16)));
  const edges: number[] = [];
  for (let e = 0; e <= max + step; e += step) edges.push(e);
  return edges;
}

function maxOf(v: number[]): number {
  let m = -Infinity;
  for (const x of v) if (x > m) m = x;
  return m;
}
function minOf(v: number[]): number {
  let m = Infinity;
  for (const x of v) if (x < m) m = x;
  return m;
}

function median(v: number[]): number {
  if (!v.length) return 0;
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Analyses a dataset (a Dataset object or any path loadDataset accepts). */
export async function analyzeDataset(input: Dataset | string, opts: AnalyzeOptions = {}): Promise<DatasetAnalysis> {
  const ds = typeof input === 'string' ? loadDataset(input, opts.splits ? { splits: opts.splits } : {}) : input;
  const decode = opts.decode ?? true;
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  const splits = splitNames(ds);
  const n = ds.samples.length;
  const info = new Array<{ w: number; h: number; format: string; hash: string } | null>(n).fill(null);
  const badFiles: DatasetAnalysis['badFiles'] = [];
  let done = 0;
  await mapPool(ds.samples, opts.concurrency ?? Math.max(2, availableParallelism() * 2), async (s, i) => {
    const path = resolveSamplePath(ds, s);
    try {
      const buf = await readImageFile(path);
      const hash = createHash('sha256').update(buf).digest('hex');
      const hdr = await probeImage(buf, path, maxPixels);
      if (decode) await decodeBuffer(buf, path, { maxPixels });
      info[i] = { w: hdr.orientedWidth, h: hdr.orientedHeight, format: hdr.format, hash };
    } catch (e) {
      if (!(e instanceof BadImageError)) throw e;
      badFiles.push({ path: s.path, reason: e.reason, message: e.message });
    }
    done++;
    opts.onProgress?.(done, n);
  });
  badFiles.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));

  const splitCounts: Record<string, number> = Object.fromEntries(splits.map((sp) => [sp, 0]));
  const perClass = ds.classes.map((name) => ({
    name,
    total: 0,
    perSplit: Object.fromEntries(splits.map((sp) => [sp, 0])) as Record<string, number>,
  }));
  for (const s of ds.samples) {
    splitCounts[s.split]!++;
    perClass[s.label]!.total++;
    perClass[s.label]!.perSplit[s.split]!++;
  }
  const totals = perClass.map((c) => c.total);
  const maxC = maxOf(totals),
    minC = minOf(totals);

  const good = info.map((x, i) => ({ x, s: ds.samples[i]! })).filter((r) => r.x !== null) as {
    x: NonNullable<(typeof info)[number]>;
    s: Dataset['samples'][number];
  }[];
  const aspects = good.map((r) => r.x.h / r.x.w);
  const widths = good.map((r) => r.x.w),
    heights = good.map((r) => r.x.h);
  const sizeCount = new Map<string, number>();
  const formats: Record<string, number> = {};
  for (const r of good) {
    const k = `${r.x.w}x${r.x.h}`;
    sizeCount.set(k, (sizeCount.get(k) ?? 0) + 1);
    formats[r.x.format] = (formats[r.x.format] ?? 0) + 1;
  }

  const byHash = new Map<string, number[]>();
  info.forEach((x, i) => {
    if (x) {
      const g = byHash.get(x.hash);
      if (g) g.push(i);
      else byHash.set(x.hash, [i]);
    }
  });
  const groups: DuplicateGroup[] = [];
  for (const [hash, idx] of byHash) {
    if (idx.length < 2) continue;
    const files = idx.map((i) => ({
      path: ds.samples[i]!.path,
      split: ds.samples[i]!.split,
      class: ds.classes[ds.samples[i]!.label]!,
    }));
    groups.push({
      sha256: hash,
      files,
      kind: new Set(files.map((f) => f.split)).size > 1 ? 'cross-split' : 'within-split',
      conflictingLabels: new Set(files.map((f) => f.class)).size > 1,
    });
  }
  groups.sort((a, b) => b.files.length - a.files.length || (a.files[0]!.path < b.files[0]!.path ? -1 : 1));
  const badByReason: Partial<Record<BadFileReason, number>> = {};
  for (const b of badFiles) badByReason[b.reason] = (badByReason[b.reason] ?? 0) + 1;

  const we = sizeEdges(widths),
    he = sizeEdges(heights);
  return {
    root: ds.root,
    images: n,
    splits: splitCounts,
    classes: [...perClass].sort((a, b) => b.total - a.total || (a.name < b.name ? -1 : 1)),
    longTail: {
      maxPerClass: maxC,
      minPerClass: minC,
      medianPerClass: median(totals),
      imbalanceRatio: minC > 0 ? maxC / minC : Infinity,
      classesUnder10: totals.filter((t) => t < 10).length,
      emptyInSplit: Object.fromEntries(splits.map((sp) => [sp, perClass.filter((c) => c.perSplit[sp] === 0).length])),
    },
    aspect: {
      histogram: histogram(aspects, ASPECT_EDGES),
      median: median(aspects),
      fractionTallerThan1_5: aspects.length ? aspects.filter((a) => a >= 1.5).length / aspects.length : 0,
      fractionWiderThan1_5: aspects.length ? aspects.filter((a) => a <= 1 / 1.5).length / aspects.length : 0,
      perSplit: Object.fromEntries(
        splits.map((sp) => [
          sp,
          histogram(
            good.filter((r) => r.s.split === sp).map((r) => r.x.h / r.x.w),
            ASPECT_EDGES,
          ),
        ]),
      ),
    },
    sizes: {
      widths: histogram(widths, we),
      heights: histogram(heights, he),
      minWidth: widths.length ? minOf(widths) : 0,
      minHeight: heights.length ? minOf(heights) : 0,
      maxWidth: widths.length ? maxOf(widths) : 0,
      maxHeight: heights.length ? maxOf(heights) : 0,
      medianWidth: median(widths),
      medianHeight: median(heights),
      common: [...sizeCount]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 10)
        .map(([size, count]) => ({ size, count })),
      formats,
    },
    duplicates: {
      groups,
      withinSplit: groups.filter((g) => g.kind === 'within-split').length,
      crossSplit: groups.filter((g) => g.kind === 'cross-split').length,
      conflictingLabels: groups.filter((g) => g.conflictingLabels).length,
      redundantFiles: groups.reduce((a, g) => a + g.files.length - 1, 0),
    },
    badFiles,
    badByReason,
    skipped: ds.skipped ?? [],
    decoded: decode,
  };
}
