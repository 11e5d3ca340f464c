/**
 * Geometric operations on 8-bit RGB images (HWC), written to match PIL bit for bit where torchvision
 * uses PIL: bilinear resize is PIL's two-pass convolution (triangle filter widened by the scale factor,
 * i.e. antialiased when shrinking; 22-bit fixed-point coefficients; horizontal pass first, 8-bit
 * intermediate), so `resize`, `letterbox` and `centerCrop` agree with torchvision + PIL.
 */
import type { RgbImage } from './image.js';

export type Rgb = readonly [number, number, number];

const PRECISION_BITS = 22;
const HALF = 1 << (PRECISION_BITS - 1);
const ONE = 1 << PRECISION_BITS;

interface Coeffs {
  ksize: number;
  bounds: Int32Array; // [xmin, count] per output pixel
  k: Float64Array; // integer fixed-point coefficients (exact in float64)
}

/** PIL precompute_coeffs + normalize_coeffs_8bpc for the bilinear filter over input window [in0, in1). */
function precompute(inSize: number, in0: number, in1: number, outSize: number): Coeffs {
  const scale = (in1 - in0) / outSize;
  const filterscale = Math.max(scale, 1);
  const support = 1.0 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const k = new Float64Array(outSize * ksize);
  const ss = 1 / filterscale;
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = in0 + (xx + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      let t = (x + xmin - center + 0.5) * ss;
      if (t < 0) t = -t;
      const v = t < 1 ? 1 - t : 0;
      w[x] = v;
      ww += v;
    }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0 ? w[x]! / ww : w[x]!;
      k[xx * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, k };
}

function clip8(v: number): number {
  const r = Math.floor(v / ONE);
  return r < 0 ? 0 : r > 255 ? 255 : r;
}

/**
 * Crops the window (x0, y0, w, h) of `img` (all inside the image) and resizes it to outW x outH with
 * PIL's bilinear filter. Equivalent to PIL `img.crop(box).resize((outW, outH), BILINEAR)`.
 */
export function resizeBilinear(img: RgbImage, outW: number, outH: number, win?: { x: number; y: number; w: number; h: number }): RgbImage {
  const x0 = win?.x ?? 0;
  const y0 = win?.y ?? 0;
  const cw = win?.w ?? img.width;
  const ch = win?.h ?? img.height;
  if (!(outW > 0 && outH > 0)) throw new Error(`resize: output size must be positive, got ${outW}x${outH}`);
  if (x0 < 0 || y0 < 0 || x0 + cw > img.width || y0 + ch > img.height || cw <= 0 || ch <= 0) {
    throw new Error(`resize: window ${x0},${y0} ${cw}x${ch} outside image ${img.width}x${img.height}`);
  }
  const src = img.data;
  const sw = img.width;
  // Horizontal pass (over the rows of the window) into an 8-bit intermediate of outW x ch.
  let tmp: Uint8Array;
  let tw: number;
  if (cw !== outW) {
    const { ksize, bounds, k } = precompute(cw, 0, cw, outW);
    tmp = new Uint8Array(outW * ch * 3);
    tw = outW;
    for (let y = 0; y < ch; y++) {
      const rowBase = ((y0 + y) * sw + x0) * 3;
      const outBase = y * outW * 3;
      for (let xx = 0; xx < outW; xx++) {
        const xmin = bounds[xx * 2]!;
        const n = bounds[xx * 2 + 1]!;
        const kb = xx * ksize;
        let s0 = HALF, s1 = HALF, s2 = HALF;
        let p = rowBase + xmin * 3;
        for (let x = 0; x < n; x++, p += 3) {
          const c = k[kb + x]!;
          s0 += src[p]! * c;
          s1 += src[p + 1]! * c;
          s2 += src[p + 2]! * c;
        }
        const o = outBase + xx * 3;
        tmp[o] = clip8(s0);
        tmp[o + 1] = clip8(s1);
        tmp[o + 2] = clip8(s2);
      }
    }
  } else {
    // No horizontal resampling: the window rows as they are.
    tw = cw;
    if (x0 === 0 && cw === sw && y0 === 0 && ch === img.height) tmp = src;
    else {
      tmp = new Uint8Array(cw * ch * 3);
      for (let y = 0; y < ch; y++) tmp.set(src.subarray(((y0 + y) * sw + x0) * 3, ((y0 + y) * sw + x0 + cw) * 3), y * cw * 3);
    }
  }
  if (ch === outH) return { data: tmp === src ? new Uint8Array(src) : tmp, width: tw, height: outH };
  // Vertical pass.
  const { ksize, bounds, k } = precompute(ch, 0, ch, outH);
  const out = new Uint8Array(outW * outH * 3);
  const rowLen = tw * 3;
  for (let yy = 0; yy < outH; yy++) {
    const ymin = bounds[yy * 2]!;
    const n = bounds[yy * 2 + 1]!;
    const kb = yy * ksize;
    const ob = yy * rowLen;
    for (let xi = 0; xi < rowLen; xi++) {
      let s = HALF;
      let p = ymin * rowLen + xi;
      for (let y = 0; y < n; y++, p += rowLen) s += tmp[p]! * k[kb + y]!;
      out[ob + xi] = clip8(s);
    }
  }
  return { data: out, width: outW, height: outH };
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
