/**
 * Cutout (DeVries & Taylor 2017) and Random Erasing (Zhong et al. 2017, timm's RandomErasing), applied
 * after normalisation as in the recipe and in timm. Plans hold the random draws; apply functions work on
 * a normalised float32 CHW image, or on an 8-bit HWC image that will be normalised later (then a zero of
 * the normalised space is the mean colour, and a normal deviate is mean + std * N(0, 1)).
 */
import type { Rng } from '../util/rng.js';

export interface Rect {
  top: number;
  left: number;
  h: number;
  w: number;
}

export interface RandomErasingOptions {
  /** Probability of erasing at all (timm default 0.5). */
  p?: number;
  /** Range of the erased area as a fraction of the image (timm default [0.02, 1/3]). */
  scale?: [number, number];
  /** Aspect ratio range (timm default [0.3, 1/0.3]), sampled log-uniformly. */
  ratio?: [number, number];
  /** 'const': zeros; 'rand': one normal value per channel; 'pixel': a normal value per pixel. */
  mode?: 'const' | 'rand' | 'pixel';
  /** Number of rectangles [min, max] (timm min_count / max_count, default [1, 1]). */
  count?: [number, number];
}

export interface ErasePlan {
  rects: Rect[];
  mode: 'const' | 'rand' | 'pixel';
}

/** timm RandomErasing._erase draws. Returns no rectangles when the probability gate says no. */
export function planRandomErasing(rng: Rng, o: RandomErasingOptions, h: number, w: number): ErasePlan {
  const p = o.p ?? 0.5;
  const [minA, maxA] = o.scale ?? [0.02, 1 / 3];
  const minR = o.ratio?.[0] ?? 0.3;
  const maxR = o.ratio?.[1] ?? 1 / minR;
  const [minC, maxC] = o.count ?? [1, 1];
  const mode = o.mode ?? 'const';
  const rects: Rect[] = [];
  if (rng.random() > p) return { rects, mode };
  const area = h * w;
  const count = minC === maxC ? minC : rng.int(minC, maxC + 1);
  const lo = Math.log(minR),
    hi = Math.log(maxR);
  for (let n = 0; n < count; n++) {
    for (let attempt = 0; attempt < 10; attempt++) {
      const target = (rng.uniform(minA, maxA) * area) / count;
      const ar = Math.exp(rng.uniform(lo, hi));
      const eh = Math.round(Math.sqrt(target * ar));
      const ew = Math.round(Math.sqrt(target / ar));
      if (ew < w && eh < h) {
        rects.push({ top: rng.int(0, h - eh + 1), left: rng.int(0, w - ew + 1), h: eh, w: ew });
        break;
      }
    }
  }
  return { rects, mode };
}

/** DeVries Cutout: `holes` squares of side `length` centred uniformly in the image, clipped. */
export function planCutout(rng: Rng, length: number, holes: number, h: number, w: number): Rect[] {
  const rects: Rect[] = [];
  const half = Math.floor(length / 2);
  for (let i = 0; i < holes; i++) {
    const y = rng.int(0, h),
      x = rng.int(0, w);
    const y1 = Math.min(Math.max(y - half, 0), h),
      y2 = Math.min(Math.max(y + half, 0), h);
    const x1 = Math.min(Math.max(x - half, 0), w),
      x2 = Math.min(Math.max(x + half, 0), w);
    rects.push({ top: y1, left: x1, h: y2 - y1, w: x2 - x1 });
  }
  return rects;
}

/** Fills rectangles of a normalised float32 CHW image. */
export function eraseFloatChw(
  data: Float32Array,
  h: number,
  w: number,
  rects: Rect[],
  mode: 'const' | 'rand' | 'pixel',
  rng: Rng,
): void {
  const plane = h * w;
  for (const r of rects) {
    for (let c = 0; c < 3; c++) {
      const v = mode === 'rand' ? rng.normal() : 0;
      for (let y = r.top; y < r.top + r.h; y++) {
        const base = c * plane + y * w;
        for (let x = r.left; x < r.left + r.w; x++) data[base + x] = mode === 'pixel' ? rng.normal() : v;
      }
    }
  }
}

/** Same on an 8-bit HWC image that is normalised later with mean/std (in 0..1 units). */
export function eraseUint8Hwc(
  data: Uint8Array,
  w: number,
  rects: Rect[],
  mode: 'const' | 'rand' | 'pixel',
  rng: Rng,
  mean: readonly number[],
  std: readonly number[],
): void {
  const to8 = (c: number, z: number) => {
    const v = Math.round((mean[c]! + std[c]! * z) * 255);
    return v < 0 ? 0 : v > 255 ? 255 : v;
  };
  for (const r of rects) {
    const cv = [0, 1, 2].map((c) => to8(c, mode === 'rand' ? rng.normal() : 0));
    for (let y = r.top; y < r.top + r.h; y++) {
      for (let x = r.left; x < r.left + r.w; x++) {
        const o = (y * w + x) * 3;
        for (let c = 0; c < 3; c++) data[o + c] = mode === 'pixel' ? to8(c, rng.normal()) : cv[c]!;
      }
    }
  }
}
