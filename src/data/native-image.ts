/**
 * The data layer's native kernels (build/Release/goodsrec_image.node): libjpeg-turbo decoding with
 * DCT-domain downscaling, PIL-exact bilinear resampling, ColorJitter and float conversion. Each is
 * bit-identical to the TypeScript version beside it, which stays as the portable path when the addon
 * is not built, or when GOODSREC_NATIVE_IMAGE=0 (the tests compare the two).
 *
 * The calls are synchronous: the DataLoader makes them in its worker threads.
 */
import { loadOptionalAddon } from '../util/addon.js';

export interface JpegHeaderInfo {
  width: number;
  height: number;
  components: number;
  orientation: number;
  supported: boolean;
}

/** What libjpeg-turbo reports decoding a whole file (its jerror.h codes), for classifying bad files. */
export interface JpegCheckResult {
  /** The header was read. */
  header: boolean;
  /** Decoded through to the end-of-image marker without a fatal error. */
  complete: boolean;
  /** A fatal error (errorCode) stopped the decode. */
  fatal: boolean;
  /** The data ended before the end-of-image marker (JWRN_JPEG_EOF). */
  eof: boolean;
  errorCode: number;
  /** Corrupt-data warnings. */
  warnings: number;
  firstWarningCode: number;
  /** libjpeg's text for the deciding fact (this decode's own, not shared). */
  message: string;
}

export type NativeDecodeResult =
  | { status: 'ok'; data: Uint8Array; width: number; height: number }
  | { status: 'unsupported' | 'failed'; message: string };

/** [x0, y0, w, h, r, g, b]: a window of the decoded image; pixels outside the image get colour r, g, b. */
export type JpegWindow = readonly [number, number, number, number, number, number, number];

/** [lo, hi, in0, in1]: the filter reads input [lo, hi); the output spans input [in0, in1). */
export type ResampleAxis = [number, number, number, number];

export interface NativeImage {
  /** Header only; null when it is not a readable JPEG header. `orientation` is the EXIF tag (1..8). */
  jpegInfo(buf: Uint8Array): JpegHeaderInfo | null;
  /** Decodes the whole file (any colour space, at 1/8) only to learn what is wrong with it. */
  jpegCheck(buf: Uint8Array): JpegCheckResult;
  /**
   * Decodes to 8-bit RGB at 1/scaleDenom (1, 2, 4, 8), EXIF orientation applied. 'unsupported' for CMYK,
   * 12-bit or over maxPixels; 'failed' on any libjpeg error or warning (the caller's sharp path then
   * classifies the file). With `window` [x0, y0, w, h, r, g, b] (coordinates in the scaled, oriented
   * image; parts outside it get colour r, g, b), only what the window needs is decompressed and the
   * result is the window, pixel for pixel what a full decode gives there. With `resample`
   * [outW, outH, x, y], the result is the window resampled (see `resample`).
   */
  decodeJpeg(
    buf: Uint8Array,
    scaleDenom: number,
    maxPixels: number,
    window?: JpegWindow | null,
    resample?: readonly [number, number, ResampleAxis, ResampleAxis],
  ): NativeDecodeResult;
  /** PIL's bilinear resample (see resample.ts); with `resample` on decodeJpeg the decoded pixels never reach JS. */
  resample(
    src: Uint8Array,
    width: number,
    height: number,
    outW: number,
    outH: number,
    x: ResampleAxis,
    y: ResampleAxis,
  ): { data: Uint8Array; width: number; height: number };
  /** In place; order holds op ids (0 brightness, 1 contrast, 2 saturation, 3 hue); NaN skips a factor. */
  colorJitter(
    data: Uint8Array,
    order: readonly number[],
    brightness: number,
    contrast: number,
    saturation: number,
    hue: number,
  ): void;
  /** PIL's bilinear affine transform (resample.ts affineBilinear); a new image of the same size. */
  affine(
    src: Uint8Array,
    width: number,
    height: number,
    matrix: readonly number[],
    fill: readonly number[],
  ): Uint8Array;
  /** PIL ImageEnhance.Sharpness, in place. */
  sharpness(data: Uint8Array, width: number, height: number, factor: number): void;
  /** data[i] = lut[i % 3][data[i]], in place; each table has 256 entries. */
  applyLuts(data: Uint8Array, lut0: Uint8Array, lut1: Uint8Array, lut2: Uint8Array): void;
  /** Per-channel histograms: channel c's count of value v at c * 256 + v. */
  histograms(data: Uint8Array): Uint32Array;
  /** Into `out` when given (its length must be width * height * 3), else into a new array. */
  toFloatChw(
    src: Uint8Array,
    width: number,
    height: number,
    mean: readonly number[],
    std: readonly number[],
    flip: boolean,
    out?: Float32Array,
  ): Float32Array;
}

let loaded: NativeImage | null | undefined;

/** The native kernels, or null when they are unavailable or disabled (GOODSREC_NATIVE_IMAGE=0). */
export function nativeImage(): NativeImage | null {
  // Once per thread (null included: the warning is given once).
  if (loaded === undefined)
    loaded = loadOptionalAddon<NativeImage>(
      'image',
      'images are decoded with sharp and transformed in TypeScript, which is slower',
    );
  return loaded;
}

/** Width and height as displayed: EXIF orientations 5-8 swap the stored ones. */
export function orientedSize(info: JpegHeaderInfo): [number, number] {
  return info.orientation >= 5 ? [info.height, info.width] : [info.width, info.height];
}

/** True for data that starts like a JPEG (SOI marker followed by another marker). */
export function looksLikeJpeg(b: Uint8Array): boolean {
  return b.length > 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;
}
