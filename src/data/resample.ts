/**
 * Geometric operations on 8-bit RGB images (HWC), written to match PIL bit for bit where torchvision
 * uses PIL: bilinear resize is PIL's two-pass convolution (triangle filter widened by the scale factor,
 * i.e. antialiased when shrinking; 22-bit fixed-point coefficients; horizontal pass first, 8-bit
 * intermediate), so `resize`, `letterbox` and `centerCrop` agree with torchvision + PIL. Bicubic (PIL's
 * a = -0.5 kernel, support 2) is the same convolution with another filter; it serves evaluation of
 * weights whose data config asks for it, in TypeScript only (the native kernels are bilinear).
 */
import type { RgbImage } from './image.js';
import { nativeImage } from './native-image.js';
import {
  canvasBoxRegion,
  crop,
  padToSquare,
  regionBoxAxes,
  resampleTs,
  resizeOutput,
  type Axis,
  type CanvasBox,
  type Interpolation,
  type Rgb,
} from './pil-pixels.js';

// The portable arithmetic lives in pil-pixels.ts (shared with the browser page).
export {
  canvasBoxRegion,
  centerCrop,
  crop,
  padToSquare,
  regionBoxAxes,
  roundHalfEven,
  shorterSideSize,
  type CanvasBox,
  type Interpolation,
  type Rgb,
} from './pil-pixels.js';

/** PIL's two-pass resample over per-axis boxes: the native kernel when built (bilinear), else the same in TS. */
function resampleCore(
  img: RgbImage,
  outW: number,
  outH: number,
  ax: Axis,
  ay: Axis,
  filter: Interpolation = 'bilinear',
): RgbImage {
  const nat = filter === 'bilinear' ? nativeImage() : null;
  if (nat)
    return nat.resample(
      img.data,
      img.width,
      img.height,
      outW,
      outH,
      [ax.lo, ax.hi, ax.in0, ax.in1],
      [ay.lo, ay.hi, ay.in0, ay.in1],
    );
  return resampleTs(img, outW, outH, ax, ay, filter);
}

/**
 * Crops the window (x, y, w, h) of `img` (inside the image) and resizes it to outW x outH with PIL's
 * bilinear filter: equivalent to PIL `img.crop(box).resize((outW, outH), BILINEAR)`, without the copy.
 */
export function resizeBilinear(
  img: RgbImage,
  outW: number,
  outH: number,
  win?: { x: number; y: number; w: number; h: number },
): RgbImage {
  return resizeWith(img, outW, outH, 'bilinear', win);
}

/** resizeBilinear with a choice of filter: PIL `img.crop(box).resize((outW, outH), BILINEAR | BICUBIC)`. */
export function resizeWith(
  img: RgbImage,
  outW: number,
  outH: number,
  filter: Interpolation,
  win?: { x: number; y: number; w: number; h: number },
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

/** Structure-retention resize: pad to square (PIL paste offsets), then resize (bilinear by default). */
export function letterbox(
  img: RgbImage,
  size: number | undefined,
  fill: Rgb = [0, 0, 0],
  filter: Interpolation = 'bilinear',
): RgbImage {
  const sq = padToSquare(img, fill);
  return size === undefined || size === sq.width ? sq : resizeWith(sq, size, size, filter);
}

/** torchvision Resize: the shorter side to `size`, a squash to size x size, or exactly [height, width]. */
export function resize(
  img: RgbImage,
  size: number | [number, number],
  mode: 'shorter' | 'squash' = 'shorter',
  filter: Interpolation = 'bilinear',
): RgbImage {
  const [w, h] = resizeOutput(img.width, img.height, size, mode);
  return w === img.width && h === img.height ? img : resizeWith(img, w, h, filter);
}

/** Resamples `box` (canvas coordinates) from `region`, the canvas pixels of canvasBoxRegion's result. */
export function resampleRegionBox(
  region: RgbImage,
  r: CanvasBox,
  box: CanvasBox,
  outW: number,
  outH: number,
): RgbImage {
  const [x, y] = regionBoxAxes(r, box);
  return resampleCore(
    region,
    outW,
    outH,
    { lo: x[0], hi: x[1], in0: x[2], in1: x[3] },
    { lo: y[0], hi: y[1], in0: y[2], in1: y[3] },
  );
}

/**
 * Resamples the fractional box [bx0, bx1) x [by0, by1) of a virtual canvas to outW x outH in one pass.
 * The canvas is `img` placed at (offX, offY) inside a canvasW x canvasH area of colour `fill`; the
 * filter support is clipped at the canvas edges (PIL `resize(size, box=...)` on the padded canvas).
 * Used to fuse letterbox + RandomResizedCrop into a single resampling.
 */
export function resampleCanvasBox(
  img: RgbImage,
  canvasW: number,
  canvasH: number,
  offX: number,
  offY: number,
  box: CanvasBox,
  outW: number,
  outH: number,
  fill: Rgb = [0, 0, 0],
): RgbImage {
  const r = canvasBoxRegion(canvasW, canvasH, box, outW, outH);
  // Region of the canvas the filter can touch, in image coordinates.
  const ix0 = r.x0 - offX,
    iy0 = r.y0 - offY;
  const rw = r.x1 - r.x0,
    rh = r.y1 - r.y0;
  if (ix0 >= 0 && iy0 >= 0 && ix0 + rw <= img.width && iy0 + rh <= img.height) {
    // Same coefficients as resampleRegionBox on a copy of the region (positions are relative to lo).
    return resampleCore(
      img,
      outW,
      outH,
      { lo: ix0, hi: ix0 + rw, in0: box.x0 - offX, in1: box.x1 - offX },
      { lo: iy0, hi: iy0 + rh, in0: box.y0 - offY, in1: box.y1 - offY },
    );
  }
  return resampleRegionBox(crop(img, ix0, iy0, rw, rh, fill), r, box, outW, outH);
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
        out[o] = fill[0];
        out[o + 1] = fill[1];
        out[o + 2] = fill[2];
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
      const p00 = (ya * w + xa) * 3,
        p01 = (ya * w + xb) * 3,
        p10 = (yb * w + xa) * 3,
        p11 = (yb * w + xb) * 3;
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
