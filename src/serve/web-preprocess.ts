/**
 * The browser page's pre-processing: the server's evaluation pipeline (GET /v1/model `pipeline`, built by
 * evalPipeline from the model's sidecar) run on pixels the browser decoded. No Node imports: the page
 * loads this file compiled (dist/src/serve/web-preprocess.js) with ../data/pil-pixels.js, the resampler
 * the server's portable path uses (the native kernels are bit-identical to it).
 *
 * One step cannot be the server's: with `fastDecode` the server decodes a large JPEG at 1/d in the DCT
 * domain (libjpeg-turbo), which no browser API exposes. The page decodes at full size and takes the
 * mean of each d x d block, aligned like the JPEG's 8 x 8 blocks: close to what the scaled IDCT gives
 * (about half a grey level RMS on the test photos), not bit-equal. Without that step (d = 1) the tensor is
 * the server's bit for bit wherever the browser's JPEG decoder matches libjpeg-turbo's accurate IDCT.
 */
import type { RgbImage } from '../data/image.js';
import type { PipelineConfig } from '../data/transforms.js';
import {
  centerCrop,
  dctScale,
  normalizeChw,
  padToSquare,
  resampleTs,
  shorterSideSize,
  type Interpolation,
  type Rgb,
} from '../data/pil-pixels.js';

/** What the page knows of the encoded file: JPEG or not, and its EXIF orientation (1..8). */
export interface EncodedInfo {
  jpeg: boolean;
  orientation: number;
}

const rd16 = (b: Uint8Array, i: number, le: boolean): number =>
  le ? b[i]! | (b[i + 1]! << 8) : (b[i]! << 8) | b[i + 1]!;
const rd32 = (b: Uint8Array, i: number, le: boolean): number =>
  le ? rd16(b, i, true) + rd16(b, i + 2, true) * 65536 : rd16(b, i, false) * 65536 + rd16(b, i + 2, false);

/** JPEG or not, and the EXIF orientation tag of IFD0 (1 when absent or malformed), as the native decoder reads it. */
export function encodedInfo(b: Uint8Array): EncodedInfo {
  const jpeg = b.length > 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;
  if (!jpeg) return { jpeg, orientation: 1 };
  let i = 2;
  while (i + 4 <= b.length && b[i] === 0xff) {
    const marker = b[i + 1]!;
    if (marker === 0xda || marker === 0xd9) break; // start of scan: no more headers
    const len = rd16(b, i + 2, false);
    const p = i + 4;
    if (marker === 0xe1 && len >= 16 && String.fromCharCode(...b.subarray(p, p + 6)) === 'Exif\0\0') {
      return { jpeg, orientation: tiffOrientation(b.subarray(p + 6, i + 2 + len)) };
    }
    i += 2 + len;
  }
  return { jpeg, orientation: 1 };
}

function tiffOrientation(t: Uint8Array): number {
  if (t.length < 8) return 1;
  const le = t[0] === 0x49 && t[1] === 0x49;
  if (!le && !(t[0] === 0x4d && t[1] === 0x4d)) return 1;
  if (rd16(t, 2, le) !== 42) return 1;
  const ifd = rd32(t, 4, le);
  if (ifd + 2 > t.length) return 1;
  const count = rd16(t, ifd, le);
  for (let k = 0; k < count; k++) {
    const e = ifd + 2 + k * 12;
    if (e + 12 > t.length) return 1;
    if (rd16(t, e, le) === 0x0112) {
      const v = rd16(t, e + 8, le);
      return v >= 1 && v <= 8 ? v : 1;
    }
  }
  return 1;
}

/**
 * Stand-in for libjpeg's 1/d DCT-domain decode of the displayed (oriented) image `img`: the rounded mean
 * of each d x d block, the blocks anchored at the stored image's top-left corner (where the JPEG's own
 * blocks start), which EXIF orientation `o` moves to another corner. Size ceil(W/d) x ceil(H/d).
 */
export function blockMean(img: RgbImage, d: number, o: number): RgbImage {
  const { width: W, height: H, data } = img;
  const w = Math.ceil(W / d),
    h = Math.ceil(H / d);
  // Orientations whose stored origin is at the displayed right / bottom edge.
  const fromRight = o === 2 || o === 3 || o === 6 || o === 7;
  const fromBottom = o === 3 || o === 4 || o === 7 || o === 8;
  const x0 = fromRight ? W - w * d : 0,
    y0 = fromBottom ? H - h * d : 0;
  const out = new Uint8Array(w * h * 3);
  for (let by = 0; by < h; by++) {
    const ya = Math.max(0, y0 + by * d),
      yb = Math.min(H, y0 + by * d + d);
    for (let bx = 0; bx < w; bx++) {
      const xa = Math.max(0, x0 + bx * d),
        xb = Math.min(W, x0 + bx * d + d);
      let r = 0,
        g = 0,
        b = 0;
      for (let y = ya; y < yb; y++) {
        for (let x = xa; x < xb; x++) {
          const p = (y * W + x) * 3;
          r += data[p]!;
          g += data[p + 1]!;
          b += data[p + 2]!;
        }
      }
      const n = (yb - ya) * (xb - xa),
        q = (by * w + bx) * 3;
      out[q] = Math.round(r / n);
      out[q + 1] = Math.round(g / n);
      out[q + 2] = Math.round(b / n);
    }
  }
  return { data: out, width: w, height: h };
}

const resizeWhole = (img: RgbImage, w: number, h: number, filter: Interpolation = 'bilinear'): RgbImage =>
  w === img.width && h === img.height
    ? img
    : resampleTs(
        img,
        w,
        h,
        { lo: 0, hi: img.width, in0: 0, in1: img.width },
        { lo: 0, hi: img.height, in0: 0, in1: img.height },
        filter,
      );
const hw = (s: number | [number, number]): [number, number] => (typeof s === 'number' ? [s, s] : s);
const fillOf = (f: unknown): Rgb => (Array.isArray(f) ? [f[0], f[1], f[2]] : [0, 0, 0]);

/**
 * The server's evaluation pipeline on decoded pixels (displayed orientation, RGB HWC): the reduced decode
 * (see blockMean), then letterbox / resize (squash, fixed or shorter side; bilinear or bicubic) / center crop /
 * normalize exactly as the data layer
 * does them. Any other op is refused: evaluation pipelines have none.
 */
export function evalTensor(img: RgbImage, pipeline: PipelineConfig, enc: EncodedInfo): Float32Array {
  const first = pipeline.ops[0];
  const target =
    first?.op === 'letterbox' && first.size !== undefined
      ? [first.size, first.size]
      : first?.op === 'resize' && (Array.isArray(first.size) || first.mode === 'squash')
        ? hw(first.size)
        : null;
  if (pipeline.fastDecode && enc.jpeg && target && first) {
    const S = Math.max(img.width, img.height);
    const d =
      first.op === 'letterbox'
        ? dctScale(S, S, target[1]!, target[0]!)
        : dctScale(img.width, img.height, target[1]!, target[0]!);
    if (d > 1) img = blockMean(img, d, enc.orientation);
  }
  for (const o of pipeline.ops) {
    switch (o.op) {
      case 'letterbox': {
        const sq = padToSquare(img, fillOf(o.fill));
        img = o.size === undefined ? sq : resizeWhole(sq, o.size, o.size, o.interpolation);
        break;
      }
      case 'resize': {
        const [w, h] = Array.isArray(o.size)
          ? [o.size[1], o.size[0]]
          : o.mode === 'squash'
            ? [o.size, o.size]
            : shorterSideSize(img.width, img.height, o.size);
        img = resizeWhole(img, w, h, o.interpolation);
        break;
      }
      case 'centerCrop': {
        const [h, w] = hw(o.size);
        img = centerCrop(img, w, h);
        break;
      }
      case 'normalize':
        if (!Array.isArray(o.mean) || !Array.isArray(o.std)) {
          throw new Error('web pre-processing: normalize needs resolved mean and std');
        }
        return normalizeChw(img, o.mean, o.std);
      default:
        throw new Error(`web pre-processing: op '${o.op}' is not part of an evaluation pipeline`);
    }
  }
  throw new Error('web pre-processing: the pipeline has no normalize op');
}

/** Browser RGBA (ImageData) -> RGB HWC. */
export function rgbaToRgb(rgba: Uint8Array | Uint8ClampedArray, width: number, height: number): RgbImage {
  const n = width * height;
  const data = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    data[3 * i] = rgba[4 * i]!;
    data[3 * i + 1] = rgba[4 * i + 1]!;
    data[3 * i + 2] = rgba[4 * i + 2]!;
  }
  return { data, width, height };
}
