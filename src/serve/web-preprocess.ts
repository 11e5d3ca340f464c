/**
 * The browser page's pre-processing: the server's evaluation pipeline (GET /v1/model `pipeline`, built by
 * evalPipeline from the model's sidecar) run on pixels the browser decoded, each op by its registry
 * entry's browser version (src/data/ops/). No Node imports anywhere in its module graph: the page loads
 * this file compiled (dist/src/serve/web-preprocess.js) with the modules it imports (web-modules.ts).
 *
 * One step cannot be the server's: with `fastDecode` the server decodes a large JPEG at 1/d in the DCT
 * domain (libjpeg-turbo), which no browser API exposes. The page decodes at full size and takes the
 * mean of each d x d block, aligned like the JPEG's 8 x 8 blocks: close to what the scaled IDCT gives
 * (about half a grey level RMS on the test photos), not bit-equal. Without that step (d = 1) the tensor is
 * the server's bit for bit wherever the browser's JPEG decoder matches libjpeg-turbo's accurate IDCT.
 */
import type { RgbImage } from '../data/image.js';
import type { PipelineConfig } from '../data/transforms.js';
import { leadingShrink, prefixJpegScale } from '../data/decode-plan.js';
import { findOp } from '../data/ops/registry.js';

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

/**
 * The server's evaluation pipeline on decoded pixels (displayed orientation, RGB HWC): the reduced decode
 * (see blockMean), then each op's browser version up to normalize, whose tensor is the result. An op
 * that is not an evaluation op, or has no browser version, is refused.
 */
export function evalTensor(img: RgbImage, pipeline: PipelineConfig, enc: EncodedInfo): Float32Array {
  const shrink = enc.jpeg ? leadingShrink(pipeline) : null;
  if (shrink) {
    const d = prefixJpegScale(shrink, img.width, img.height);
    if (d > 1) img = blockMean(img, d, enc.orientation);
  }
  for (const o of pipeline.ops) {
    const spec = findOp(o.op);
    if (!spec?.eval) throw new Error(`web pre-processing: op '${o.op}' is not part of an evaluation pipeline`);
    if (spec.browser === 'server-only') throw new Error(`web pre-processing: op '${o.op}' runs on the server only`);
    const out = spec.browser.apply(o, img);
    if (out instanceof Float32Array) return out;
    img = out;
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
