/**
 * Geometric operations on 8-bit RGB images (HWC), written to match PIL bit for bit where torchvision
 * uses PIL: bilinear resize is PIL's two-pass convolution (triangle filter widened by the scale factor,
 * i.e. antialiased when shrinking; 22-bit fixed-point coefficients; horizontal pass first, 8-bit
 * intermediate), so `resize`, `letterbox` and `centerCrop` agree with torchvision + PIL. Bicubic (PIL's
 * a = -0.5 kernel, support 2) is the same convolution with another filter; it serves evaluation of
 * weights whose data config asks for it, in TypeScript only (the native kernels are bilinear).
 */
import type { RgbImage } from './image.js';
import { nativeImage, type ResampleAxis } from './native-image.js';

export type Rgb = readonly [number, number, number];
/** The resampling filter of a resize (PIL's BILINEAR or BICUBIC). */
export type Interpolation = 'bilinear' | 'bicubic';

const PRECISION_BITS = 22;
const HALF = 1 << (PRECISION_BITS - 1);
const ONE = 1 << PRECISION_BITS;

interface Coeffs {
  ksize: number;
  bounds: Int32Array; // [xmin, count] per output pixel
  k: Int32Array; // fixed-point coefficients, sum 2^22
}

/** PIL's filters: support (at scale 1) and the kernel. */
const FILTERS: Record<Interpolation, { support: number; f: (t: number) => number }> = {
  bilinear: { support: 1, f: (t) => (t < 1 ? 1 - t : 0) },
  // PIL bicubic_filter with a = -0.5 (t >= 0).
  bicubic: {
    support: 2,
    f: (t) => (t < 1 ? (1.5 * t - 2.5) * t * t + 1 : t < 2 ? (((t - 5) * t + 8) * t - 4) * -0.5 : 0),
  },
};

/**
 * PIL precompute_coeffs + normalize_coeffs_8bpc for a filter: output pixel xx covers input
 * [in0, in1) scaled; the filter support is clipped to the valid input range [lo, hi). Positions are
 * computed relative to lo, as PIL does on the cropped image it resizes, so a window gives the same
 * coefficients wherever it sits in a larger image (the native windowed JPEG decode relies on that).
 */
function precompute(lo: number, hi: number, in0: number, in1: number, outSize: number, filter: Interpolation = 'bilinear'): Coeffs {
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

interface Axis { lo: number; hi: number; in0: number; in1: number }

/** Two-pass PIL resample of `img` over per-axis boxes (see precompute); 8-bit intermediate like PIL. */
function resampleCore(img: RgbImage, outW: number, outH: number, ax: Axis, ay: Axis, filter: Interpolation = 'bilinear'): RgbImage {
  const nat = filter === 'bilinear' ? nativeImage() : null;
  if (nat) return nat.resample(img.data, img.width, img.height, outW, outH, [ax.lo, ax.hi, ax.in0, ax.in1], [ay.lo, ay.hi, ay.in0, ay.in1]);
  const src = img.data;
  const sw = img.width;
  const needH = !(ax.in0 === ax.lo && ax.in1 === ax.hi && ax.hi - ax.lo === outW);
  const needV = !(ay.in0 === ay.lo && ay.in1 === ay.hi && ay.hi - ay.lo === outH);
  const cv = precompute(ay.lo, ay.hi, ay.in0, ay.in1, outH, filter);
  // Rows the vertical pass reads (PIL's ybox_first / ybox_last).
  let yFirst = needV ? cv.bounds[0]! : ay.lo;
  let yLast = needV ? cv.bounds[(outH - 1) * 2]! + cv.bounds[(outH - 1) * 2 + 1]! : ay.hi;
  if (yLast <= yFirst) { yFirst = ay.lo; yLast = ay.lo + 1; }
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
        let s0 = HALF, s1 = HALF, s2 = HALF;
        let p = rowBase + xmin * 3;
        for (let x = 0; x < n; x++, p += 3) {
          const c = k[kb + x]!;
          s0 = (s0 + src[p]! * c) | 0;
          s1 = (s1 + src[p + 1]! * c) | 0;
          s2 = (s2 + src[p + 2]! * c) | 0;
        }
        const o = outBase + xx * 3;
        s0 >>= PRECISION_BITS; s1 >>= PRECISION_BITS; s2 >>= PRECISION_BITS;
        tmp[o] = s0 < 0 ? 0 : s0 > 255 ? 255 : s0;
        tmp[o + 1] = s1 < 0 ? 0 : s1 > 255 ? 255 : s1;
        tmp[o + 2] = s2 < 0 ? 0 : s2 > 255 ? 255 : s2;
      }
    }
  } else {
    tw = ax.hi - ax.lo;
    tmp = new Uint8Array(tw * rows * 3);
    for (let y = 0; y < rows; y++) tmp.set(src.subarray(((yFirst + y) * sw + ax.lo) * 3, ((yFirst + y) * sw + ax.hi) * 3), y * tw * 3);
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

/**
 * Crops the window (x, y, w, h) of `img` (inside the image) and resizes it to outW x outH with PIL's
 * bilinear filter: equivalent to PIL `img.crop(box).resize((outW, outH), BILINEAR)`, without the copy.
 */
export function resizeBilinear(img: RgbImage, outW: number, outH: number, win?: { x: number; y: number; w: number; h: number }): RgbImage {
  return resizeWith(img, outW, outH, 'bilinear', win);
}

/** resizeBilinear with a choice of filter: PIL `img.crop(box).resize((outW, outH), BILINEAR | BICUBIC)`. */
export function resizeWith(
  img: RgbImage, outW: number, outH: number, filter: Interpolation, win?: { x: number; y: number; w: number; h: number },
): RgbImage {
  const x0 = win?.x ?? 0;
  const y0 = win?.y ?? 0;
  const cw = win?.w ?? img.width;
  const ch = win?.h ?? img.height;
  if (!(outW > 0 && outH > 0)) throw new Error(`resize: output size must be positive, got ${outW}x${outH}`);
  if (x0 < 0 || y0 < 0 || x0 + cw > img.width || y0 + ch > img.height || cw <= 0 || ch <= 0) {
    throw new Error(`resize: window ${x0},${y0} ${cw}x${ch} outside image ${img.width}x${img.height}`);
  }
  const ax = { lo: x0, hi: x0 + cw, in0: x0, in1: x0 + cw };
  return resampleCore(img, outW, outH, ax, { lo: y0, hi: y0 + ch, in0: y0, in1: y0 + ch }, filter);
}

export interface CanvasBox { x0: number; y0: number; x1: number; y1: number }

/**
 * The part [x0, x1) x [y0, y1) of a canvasW x canvasH canvas that resampling `box` to outW x outH can
 * read: the box plus the filter's reach, clipped to the canvas.
 */
export function canvasBoxRegion(canvasW: number, canvasH: number, box: CanvasBox, outW: number, outH: number): CanvasBox {
  const mx = Math.ceil(Math.max((box.x1 - box.x0) / outW, 1)) + 1;
  const my = Math.ceil(Math.max((box.y1 - box.y0) / outH, 1)) + 1;
  return {
    x0: Math.max(0, Math.floor(box.x0) - mx), x1: Math.min(canvasW, Math.ceil(box.x1) + mx),
    y0: Math.max(0, Math.floor(box.y0) - my), y1: Math.min(canvasH, Math.ceil(box.y1) + my),
  };
}

/** The resample axes ([lo, hi, in0, in1] for x and y) of `box` within the canvas region `r`. */
export function regionBoxAxes(r: CanvasBox, box: CanvasBox): [ResampleAxis, ResampleAxis] {
  return [[0, r.x1 - r.x0, box.x0 - r.x0, box.x1 - r.x0], [0, r.y1 - r.y0, box.y0 - r.y0, box.y1 - r.y0]];
}

/** Resamples `box` (canvas coordinates) from `region`, the canvas pixels of canvasBoxRegion's result. */
export function resampleRegionBox(region: RgbImage, r: CanvasBox, box: CanvasBox, outW: number, outH: number): RgbImage {
  const [x, y] = regionBoxAxes(r, box);
  return resampleCore(region, outW, outH, { lo: x[0], hi: x[1], in0: x[2], in1: x[3] }, { lo: y[0], hi: y[1], in0: y[2], in1: y[3] });
}

/**
 * Resamples the fractional box [bx0, bx1) x [by0, by1) of a virtual canvas to outW x outH in one pass.
 * The canvas is `img` placed at (offX, offY) inside a canvasW x canvasH area of colour `fill`; the
 * filter support is clipped at the canvas edges (PIL `resize(size, box=...)` on the padded canvas).
 * Used to fuse letterbox + RandomResizedCrop into a single resampling.
 */
export function resampleCanvasBox(img: RgbImage, canvasW: number, canvasH: number, offX: number, offY: number, box: CanvasBox, outW: number, outH: number, fill: Rgb = [0, 0, 0]): RgbImage {
  const r = canvasBoxRegion(canvasW, canvasH, box, outW, outH);
  // Region of the canvas the filter can touch, in image coordinates.
  const ix0 = r.x0 - offX, iy0 = r.y0 - offY;
  const rw = r.x1 - r.x0, rh = r.y1 - r.y0;
  if (ix0 >= 0 && iy0 >= 0 && ix0 + rw <= img.width && iy0 + rh <= img.height) {
    // Same coefficients as resampleRegionBox on a copy of the region (positions are relative to lo).
    return resampleCore(img, outW, outH,
      { lo: ix0, hi: ix0 + rw, in0: box.x0 - offX, in1: box.x1 - offX },
      { lo: iy0, hi: iy0 + rh, in0: box.y0 - offY, in1: box.y1 - offY });
  }
  return resampleRegionBox(crop(img, ix0, iy0, rw, rh, fill), r, box, outW, outH);
}

/** Integer crop; parts outside the image are filled with `fill` (torchvision pads a too-small image). */
export function crop(img: RgbImage, x: number, y: number, w: number, h: number, fill: Rgb = [0, 0, 0]): RgbImage {
  const out = new Uint8Array(w * h * 3);
  const inside = x >= 0 && y >= 0 && x + w <= img.width && y + h <= img.height;
  if (!inside && (fill[0] | fill[1] | fill[2]) !== 0) {
    for (let i = 0; i < w * h; i++) { out[i * 3] = fill[0]; out[i * 3 + 1] = fill[1]; out[i * 3 + 2] = fill[2]; }
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

/** torchvision Resize(int) output size: shorter side -> size, longer side int(size * long / short). */
export function shorterSideSize(w: number, h: number, size: number): [number, number] {
  if (w <= h) return [size, Math.trunc((size * h) / w)];
  return [Math.trunc((size * w) / h), size];
}

/** Mirrors left-right in place. */
export function hflipInPlace(img: RgbImage): RgbImage {
  const { data, width, height } = img;
  for (let y = 0; y < height; y++) {
    let a = y * width * 3;
    let b = a + (width - 1) * 3;
    while (a < b) {
      for (let c = 0; c < 3; c++) {
        const t = data[a + c]!;
        data[a + c] = data[b + c]!;
        data[b + c] = t;
      }
      a += 3;
      b -= 3;
    }
  }
  return img;
}

/**
 * PIL Image.transform(size, AFFINE, (a, b, c, d, e, f), BILINEAR, fillcolor): output pixel (x, y)
 * samples input (a x + b y + c, d x + e y + f), with pixel centres at +0.5.
 */
export function affineBilinear(img: RgbImage, m: readonly number[], fill: Rgb): RgbImage {
  const { width: w, height: h, data: src } = img;
  const nat = nativeImage();
  if (nat) return { data: nat.affine(src, w, h, m, fill), width: w, height: h };
  const out = new Uint8Array(w * h * 3);
  const [a, b, c, d, e, f] = m as [number, number, number, number, number, number];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const xin = a * (x + 0.5) + b * (y + 0.5) + c - 0.5;
      const yin = d * (x + 0.5) + e * (y + 0.5) + f - 0.5;
      const o = (y * w + x) * 3;
      // PIL leaves pixels whose centre maps outside the image at the fill colour.
      if (xin < -0.5 || yin < -0.5 || xin >= w - 0.5 || yin >= h - 0.5) {
        out[o] = fill[0]; out[o + 1] = fill[1]; out[o + 2] = fill[2];
        continue;
      }
      const x0 = Math.floor(xin);
      const y0 = Math.floor(yin);
      const dx = xin - x0;
      const dy = yin - y0;
      const xa = x0 < 0 ? 0 : x0;
      const xb = x0 + 1 >= w ? w - 1 : x0 + 1;
      const ya = y0 < 0 ? 0 : y0;
      const yb = y0 + 1 >= h ? h - 1 : y0 + 1;
      const p00 = (ya * w + xa) * 3, p01 = (ya * w + xb) * 3, p10 = (yb * w + xa) * 3, p11 = (yb * w + xb) * 3;
      for (let ch = 0; ch < 3; ch++) {
        const top = src[p00 + ch]! + (src[p01 + ch]! - src[p00 + ch]!) * dx;
        const bot = src[p10 + ch]! + (src[p11 + ch]! - src[p10 + ch]!) * dx;
        const v = top + (bot - top) * dy;
        out[o + ch] = v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v);
      }
    }
  }
  return { data: out, width: w, height: h };
}
