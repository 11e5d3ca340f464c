/** Per-channel mean/std of a dataset split (for `normalize` with 'dataset' statistics). */
import sharp from 'sharp';
import { Rng } from '../util/rng.js';
import { resolveSamplePath, type Dataset } from './dataset.js';
import { readImageFile, DEFAULT_MAX_PIXELS, BadImageError } from './image.js';
import type { ChannelStats, Triple } from './transforms.js';

export interface StatsOptions {
  /** Use at most this many images (a seeded random choice). Default: all. */
  maxImages?: number;
  seed?: number;
  /** Images decoded at once (libvips threads work in parallel). Default 4. */
  concurrency?: number;
}

/** Runs `fn` over items with at most `n` in flight; results in input order. */
export async function mapPool<T, R>(items: readonly T[], n: number, fn: (t: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(n, items.length)) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

/**
 * Mean and std of R, G, B over all pixels (0..1 units) of the dataset's images, computed by libvips
 * (sum and sum of squares per channel). Bad files are skipped. Select the training split first.
 */
export async function computeChannelStats(
  ds: Dataset,
  opts: StatsOptions = {},
): Promise<ChannelStats & { images: number }> {
  let idx = ds.samples.map((_, i) => i);
  if (opts.maxImages !== undefined && opts.maxImages < idx.length) {
    const perm = new Rng(opts.seed ?? 0).permutation(idx.length);
    idx = Array.from(perm.subarray(0, opts.maxImages)).sort((a, b) => a - b);
  }
  const sum = [0, 0, 0],
    sq = [0, 0, 0];
  let pixels = 0,
    images = 0;
  await mapPool(idx, opts.concurrency ?? 4, async (i) => {
    const path = resolveSamplePath(ds, ds.samples[i]!);
    try {
      const buf = await readImageFile(path);
      const s = await sharp(buf, { limitInputPixels: DEFAULT_MAX_PIXELS, failOn: 'error' })
        .removeAlpha()
        .toColourspace('srgb')
        .stats();
      const m = await sharp(buf, { limitInputPixels: DEFAULT_MAX_PIXELS }).metadata();
      const n = (m.width ?? 0) * (m.height ?? 0);
      for (let c = 0; c < 3; c++) {
        const ch = s.channels[Math.min(c, s.channels.length - 1)]!;
        sum[c]! += ch.sum;
        sq[c]! += ch.squaresSum;
      }
      pixels += n;
      images++;
    } catch (e) {
      if (!(e instanceof BadImageError) && !(e instanceof Error)) throw e;
    }
  });
  if (pixels === 0) throw new Error(`computeChannelStats: no readable images in ${ds.root}`);
  const mean = sum.map((s) => s / pixels / 255) as Triple;
  const std = sq.map((q, c) => Math.sqrt(Math.max(0, q / pixels / 65025 - mean[c]! ** 2))) as Triple;
  return { mean, std, images };
}
