/**
 * The pixel arithmetic of evaluation pre-processing in plain TypeScript with no Node imports, so the
 * same code runs on the server (the portable path beside the native kernels, which are bit-identical
 * to it) and in the browser page (served compiled from dist/src/data/pil-pixels.js):
 * PIL's bilinear resample (two-pass convolution, triangle filter widened by the scale factor,
 * 22-bit fixed-point coefficients, horizontal pass first, 8-bit intermediate), torchvision's crops,
 * normalisation to float32 CHW, the JPEG DCT-domain scale choice of fastDecode and the canvas geometry
 * of a fused crop.
 */
import type { RgbImage } from './image.js';
import type { ResampleAxis } from './native-image.js';

export type Rgb = readonly [number, number, number];

const PRECISION_BITS = 22;
const HALF = 1 << (PRECISION_BITS - 1);
const ONE = 1 << PRECISION_BITS;

interface Coeffs {
  ksize: number;
  bounds: Int32Array; // [xmin, count] per output pixel
  k: Int32Array; // fixed-point coefficients, sum 2^22
}

/**
 * PIL precompute_coeffs + normalize_coeffs_8bpc for a filter (bilinear or bicubic): output pixel xx covers input
 * [in0, in1) scaled; the filter support is clipped to the valid input range [lo, hi). Positions are
 * computed relative to lo, as PIL does on the cropped image it resizes, so a window gives the same
 * coefficients wherever it sits in a larger image (the native windowed JPEG decode relies on that).
 */
/** The resampling filter of a resize (PIL's BILINEAR or BICUBIC). */
export type Interpolation = 'bilinear' | 'bicubic';

/** PIL's filters: support (at scale 1) and the kernel. */
const FILTERS: Record<Interpolation, { support: number; f: (t: number) => number }> = {
  bilinear: { support: 1, f: (t) => (t < 1 ? 1 - t : 0) },
  // PIL bicubic_filter with a = -0.5 (t >= 0).
  bicubic: {
    support: 2,
    f: (t) => (t < 1 ? (1.5 * t - 2.5) * t * t + 1 : t < 2 ? (((t - 5) * t + 8) * t - 4) * -0.5 : 0),
  },
};

function precompute(
  lo: number,
  hi: number,
  in0: number,
  in1: number,
  outSize: number,
  filter: Interpolation = 'bilinear',
): Coeffs {
  const { support: base, f } = FILTERS[filter];
  const scale = (in1 - in0) / outSize;
  const filterscale = Math.max(scale, 1);
  const support = base * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const k = new Int32Array(outSize * ksize);
  const ss = 1 / filterscale;
  const w = new Float64Array(ksize + 2);
  const rel0 = in0 - lo;
  const n = hi - lo;
  for (let xx = 0; xx < outSize; xx++) {
    const center = rel0 + (xx + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > n) xmax = n;
    xmax -= xmin;
    if (xmax > ksize) xmax = ksize;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      let t = (x + xmin - center + 0.5) * ss;
      if (t < 0) t = -t;
      const v = f(t);
      w[x] = v;
      ww += v;
    }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0 ? w[x]! / ww : w[x]!;
      k[xx * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE);
    }
    bounds[xx * 2] = xmin + lo;
    bounds[xx * 2 + 1] = Math.max(0, xmax);
  }
  return { ksize, bounds, k };
}

export interface Axis {
  lo: number;
  hi: number;
  in0: number;
  in1: number;
}

/** Two-pass PIL resample of `img` over per-axis boxes (see precompute); 8-bit intermediate like PIL. */
export function resampleTs(
  img: RgbImage,
  outW: number,
  outH: number,
  ax: Axis,
  ay: Axis,
  filter: Interpolation = 'bilinear',
): RgbImage {
  const src = img.data;
  const sw = img.width;
  const needH = !(ax.in0 === ax.lo && ax.in1 === ax.hi && ax.hi - ax.lo === outW);
  const needV = !(ay.in0 === ay.lo && ay.in1 === ay.hi && ay.hi - ay.lo === outH);
  const cv = precompute(ay.lo, ay.hi, ay.in0, ay.in1, outH, filter);
  // Rows the vertical pass reads (PIL's ybox_first / ybox_last).
  let yFirst = needV ? cv.bounds[0]! : ay.lo;
  let yLast = needV ? cv.bounds[(outH - 1) * 2]! + cv.bounds[(outH - 1) * 2 + 1]! : ay.hi;
  if (yLast <= yFirst) {
    yFirst = ay.lo;
    yLast = ay.lo + 1;
  }
  const rows = yLast - yFirst;
  let tmp: Uint8Array;
  let tw: number;
  if (needH) {
    const { ksize, bounds, k } = precompute(ax.lo, ax.hi, ax.in0, ax.in1, outW, filter);
    tw = outW;
    tmp = new Uint8Array(outW * rows * 3);
    for (let y = 0; y < rows; y++) {
      const rowBase = (yFirst + y) * sw * 3;
      const outBase = y * outW * 3;
      for (let xx = 0; xx < outW; xx++) {
        const xmin = bounds[xx * 2]!;
        const n = bounds[xx * 2 + 1]!;
        const kb = xx * ksize;
        let s0 = HALF,
          s1 = HALF,
          s2 = HALF;
        let p = rowBase + xmin * 3;
        for (let x = 0; x < n; x++, p += 3) {
          const c = k[kb + x]!;
          s0 = (s0 + src[p]! * c) | 0;
          s1 = (s1 + src[p + 1]! * c) | 0;
          s2 = (s2 + src[p + 2]! * c) | 0;
        }
        const o = outBase + xx * 3;
        s0 >>= PRECISION_BITS;
        s1 >>= PRECISION_BITS;
        s2 >>= PRECISION_BITS;
        tmp[o] = s0 < 0 ? 0 : s0 > 255 ? 255 : s0;
        tmp[o + 1] = s1 < 0 ? 0 : s1 > 255 ? 255 : s1;
        tmp[o + 2] = s2 < 0 ? 0 : s2 > 255 ? 255 : s2;
      }
    }
  } else {
    tw = ax.hi - ax.lo;
    tmp = new Uint8Array(tw * rows * 3);
    for (let y = 0; y < rows; y++)
      tmp.set(src.subarray(((yFirst + y) * sw + ax.lo) * 3, ((yFirst + y) * sw + ax.hi) * 3), y * tw * 3);
  }
  if (!needV) return { data: tmp, width: tw, height: rows };
  const { ksize, bounds, k } = cv;
  const out = new Uint8Array(tw * outH * 3);
  const rowLen = tw * 3;
  // Row-wise accumulation: sequential memory access over each source row.
  const acc = new Int32Array(rowLen);
  for (let yy = 0; yy < outH; yy++) {
    const ymin = bounds[yy * 2]! - yFirst;
    const n = bounds[yy * 2 + 1]!;
    const kb = yy * ksize;
    const ob = yy * rowLen;
    acc.fill(HALF);
    for (let y = 0; y < n; y++) {
      const c = k[kb + y]!;
      if (c === 0) continue;
      const rb = (ymin + y) * rowLen;
      for (let xi = 0; xi < rowLen; xi++) acc[xi] = (acc[xi]! + tmp[rb + xi]! * c) | 0;
    }
    for (let xi = 0; xi < rowLen; xi++) {
      const s = acc[xi]! >> PRECISION_BITS;
      out[ob + xi] = s < 0 ? 0 : s > 255 ? 255 : s;
    }
  }
  return { data: out, width: tw, height: outH };
}

/** The whole image resized to w x h (PIL `resize((w, h), filter)`); the image itself when already that size. */
export function resizeWhole(img: RgbImage, w: number, h: number, filter: Interpolation = 'bilinear'): RgbImage {
  if (w === img.width && h === img.height) return img;
  const ax = { lo: 0, hi: img.width, in0: 0, in1: img.width };
  return resampleTs(img, w, h, ax, { lo: 0, hi: img.height, in0: 0, in1: img.height }, filter);
}

export interface CanvasBox {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/**
 * The part [x0, x1) x [y0, y1) of a canvasW x canvasH canvas that resampling `box` to outW x outH can
 * read: the box plus the filter's reach, clipped to the canvas.
 */
export function canvasBoxRegion(
  canvasW: number,
  canvasH: number,
  box: CanvasBox,
  outW: number,
  outH: number,
): CanvasBox {
  const mx = Math.ceil(Math.max((box.x1 - box.x0) / outW, 1)) + 1;
  const my = Math.ceil(Math.max((box.y1 - box.y0) / outH, 1)) + 1;
  return {
    x0: Math.max(0, Math.floor(box.x0) - mx),
    x1: Math.min(canvasW, Math.ceil(box.x1) + mx),
    y0: Math.max(0, Math.floor(box.y0) - my),
    y1: Math.min(canvasH, Math.ceil(box.y1) + my),
  };
}

/** The resample axes ([lo, hi, in0, in1] for x and y) of `box` within the canvas region `r`. */
export function regionBoxAxes(r: CanvasBox, box: CanvasBox): [ResampleAxis, ResampleAxis] {
  return [
    [0, r.x1 - r.x0, box.x0 - r.x0, box.x1 - r.x0],
    [0, r.y1 - r.y0, box.y0 - r.y0, box.y1 - r.y0],
  ];
}

/** Integer crop; parts outside the image are filled with `fill` (torchvision pads a too-small image). */
export function crop(img: RgbImage, x: number, y: number, w: number, h: number, fill: Rgb = [0, 0, 0]): RgbImage {
  const out = new Uint8Array(w * h * 3);
  const inside = x >= 0 && y >= 0 && x + w <= img.width && y + h <= img.height;
  if (!inside && (fill[0] | fill[1] | fill[2]) !== 0) {
    for (let i = 0; i < w * h; i++) {
      out[i * 3] = fill[0];
      out[i * 3 + 1] = fill[1];
      out[i * 3 + 2] = fill[2];
    }
  }
  const xs = Math.max(0, x);
  const xe = Math.min(img.width, x + w);
  if (xe <= xs) return { data: out, width: w, height: h };
  for (let yy = Math.max(0, y); yy < Math.min(img.height, y + h); yy++) {
    out.set(img.data.subarray((yy * img.width + xs) * 3, (yy * img.width + xe) * 3), ((yy - y) * w + (xs - x)) * 3);
  }
  return { data: out, width: w, height: h };
}

/** Pads to a square of side max(w, h), image placed at ((S-w)//2, (S-h)//2) like a PIL paste. */
export function padToSquare(img: RgbImage, fill: Rgb = [0, 0, 0]): RgbImage {
  const s = Math.max(img.width, img.height);
  if (s === img.width && s === img.height) return img;
  return crop(img, -Math.floor((s - img.width) / 2), -Math.floor((s - img.height) / 2), s, s, fill);
}

/** Python's round(): half to even (torchvision's center crop offsets use it). */
export function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** torchvision CenterCrop (pads with zeros when the crop is larger than the image). */
export function centerCrop(img: RgbImage, cw: number, chh: number, fill: Rgb = [0, 0, 0]): RgbImage {
  const top = roundHalfEven((img.height - chh) / 2);
  const left = roundHalfEven((img.width - cw) / 2);
  if (cw > img.width || chh > img.height) {
    // torchvision pads first ((cw - w) // 2 left ...), then crops.
    const padL = cw > img.width ? Math.floor((cw - img.width) / 2) : 0;
    const padT = chh > img.height ? Math.floor((chh - img.height) / 2) : 0;
    const pw = img.width + (cw > img.width ? cw - img.width : 0);
    const ph = img.height + (chh > img.height ? chh - img.height : 0);
    const padded = crop(img, -padL, -padT, pw, ph, fill);
    return centerCrop(padded, cw, chh, fill);
  }
  return crop(img, left, top, cw, chh, fill);
}

/** HWC uint8 -> normalised CHW float32 ((v / 255 - mean) / std), optionally mirrored left-right. */
export function normalizeChw(
  img: RgbImage,
  mean: readonly number[],
  std: readonly number[],
  flip = false,
  into?: Float32Array,
): Float32Array {
  const { data, width, height } = img;
  const plane = width * height;
  const out = into ?? new Float32Array(plane * 3);
  const lut = new Float32Array(768);
  for (let c = 0; c < 3; c++) for (let v = 0; v < 256; v++) lut[c * 256 + v] = (v / 255 - mean[c]!) / std[c]!;
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      const p = (row + (flip ? width - 1 - x : x)) * 3;
      const i = row + x;
      out[i] = lut[data[p]!]!;
      out[plane + i] = lut[256 + data[p + 1]!]!;
      out[2 * plane + i] = lut[512 + data[p + 2]!]!;
    }
  }
  return out;
}

/**
 * Largest JPEG DCT scale 1/d (d in 8, 4, 2) leaving at least `gap` x (`w` x `h`) pixels of a `bw` x `bh`
 * area; 1 if none. `gap` is PIL's reducing_gap: the resampling filter, not the DCT, does the last `gap`x.
 */
export function dctScale(bw: number, bh: number, w: number, h: number, gap = 1): 1 | 2 | 4 | 8 {
  for (const d of [8, 4, 2] as const) if (bw / d >= gap * w && bh / d >= gap * h) return d;
  return 1;
}

/** torchvision Resize(int) output size: shorter side -> size, longer side int(size * long / short). */
export function shorterSideSize(w: number, h: number, size: number): [number, number] {
  if (w <= h) return [size, Math.trunc((size * h) / w)];
  return [Math.trunc((size * w) / h), size];
}

/** A resize's output [width, height]: [h, w] exact, a number squashed to a square or given to the shorter side. */
export function resizeOutput(
  w: number,
  h: number,
  size: number | [number, number],
  mode: 'shorter' | 'squash' = 'shorter',
): [number, number] {
  if (Array.isArray(size)) return [size[1], size[0]];
  return mode === 'squash' ? [size, size] : shorterSideSize(w, h, size);
}
