/**
 * Image decoding with sharp into 8-bit RGB (HWC), with bad-file classification.
 *
 * EXIF orientation is applied; grayscale, CMYK, palette and 16-bit images are converted to 8-bit sRGB;
 * alpha is dropped (like PIL's convert('RGB'), which torchvision's ImageFolder uses) or flattened.
 * The file is only read, never written.
 */
import { closeSync, constants, fstatSync, open, openSync, readFile, readFileSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';
import sharp, { type Sharp } from 'sharp';
import { DEFAULT_MAX_PIXELS } from './limits.js';
import { BadImageError, classifyBadImage } from './bad-image.js';
import { isStartOfFrame, jpegSegments } from './jpeg-markers.js';
import { looksLikeJpeg, nativeImage } from './native-image.js';

/** 8-bit RGB image, rows top to bottom, interleaved channels (HWC). */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

export { BadImageError, type BadFileReason } from './bad-image.js';

export { DEFAULT_MAX_PIXELS };

export interface DecodeOptions {
  /** Refuse images with more pixels than this (decompression bombs). */
  maxPixels?: number;
  /** What to do with an alpha channel: 'drop' (PIL convert('RGB')), or flatten onto black/white. */
  alpha?: 'drop' | 'black' | 'white';
  /**
   * Reduced-size decoding: resize inside libvips (JPEG shrink-on-load, bilinear) to width x height,
   * either stretched ('fill') or aspect kept and padded with `background` ('contain', the letterbox).
   * Faster than decoding at full size, but not bit-equal to PIL.
   */
  resize?: {
    width: number;
    height: number;
    fit: 'fill' | 'contain';
    background: readonly [number, number, number];
    /** libvips kernel (default linear). */
    kernel?: 'linear' | 'cubic';
  };
}

const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/**
 * Reads a file, rejecting missing, unreadable, empty and non-regular ones (FIFOs, sockets, folders) with a
 * BadImageError. The file is opened non-blocking and checked with fstat before any read, so a FIFO never
 * blocks. In a worker thread the read blocks: it is cheaper than the round trip through libuv's thread
 * pool, and nothing else waits.
 */
export async function readImageFile(path: string): Promise<Buffer> {
  let fd: number | undefined;
  try {
    fd = isMainThread
      ? await new Promise<number>((res, rej) => open(path, OPEN_FLAGS, (e, f) => (e ? rej(e) : res(f))))
      : openSync(path, OPEN_FLAGS);
    const st = fstatSync(fd);
    if (!st.isFile()) {
      const what = st.isDirectory()
        ? 'a folder'
        : st.isFIFO()
          ? 'a named pipe'
          : st.isSocket()
            ? 'a socket'
            : 'not a regular file';
      throw new BadImageError(path, 'unreadable', `${what}, not a file`);
    }
    if ((st.mode & 0o444) === 0) throw new BadImageError(path, 'unreadable', 'no read permission (mode 000)');
    const f = fd;
    const buf = isMainThread
      ? await new Promise<Buffer>((res, rej) => readFile(f, (e, b) => (e ? rej(e) : res(b))))
      : readFileSync(f);
    if (buf.length === 0) throw new BadImageError(path, 'empty', '0 bytes');
    return buf;
  } catch (e) {
    if (e instanceof BadImageError) throw e;
    throw new BadImageError(path, 'unreadable', (e as NodeJS.ErrnoException).code ?? String(e));
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK;

/** Builds the sharp pipeline that yields 8-bit sRGB, 3 channels. */
function rgbPipeline(input: Buffer, opts: DecodeOptions): Sharp {
  let s = sharp(input, {
    failOn: 'error',
    limitInputPixels: opts.maxPixels ?? DEFAULT_MAX_PIXELS,
    autoOrient: true,
    sequentialRead: true,
  });
  if (opts.alpha === 'black' || opts.alpha === 'white')
    s = s.flatten({ background: opts.alpha === 'black' ? '#000000' : '#ffffff' });
  s = s.removeAlpha().toColourspace('srgb');
  if (opts.resize) {
    const [r, g, b] = opts.resize.background;
    s = s.resize(opts.resize.width, opts.resize.height, {
      fit: opts.resize.fit,
      kernel: opts.resize.kernel ?? 'linear',
      background: { r, g, b, alpha: 1 },
    });
  }
  return s;
}

/** Decodes an encoded image buffer to RGB. `path` is only used in error messages. */
export async function decodeBuffer(input: Buffer, path: string, opts: DecodeOptions = {}): Promise<RgbImage> {
  if (input.length === 0) throw new BadImageError(path, 'empty', '0 bytes');
  if (!opts.resize) {
    const fast = decodeJpegNative(input, 1, opts.maxPixels);
    if (fast) return fast;
  }
  try {
    const { data, info } = await rgbPipeline(input, opts).raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`expected 3 channels after conversion, got ${info.channels}`);
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height };
  } catch (e) {
    if (e instanceof BadImageError) throw e;
    throw await classifyBadImage(path, input, {
      maxPixels: opts.maxPixels ?? DEFAULT_MAX_PIXELS,
      decoderMessage: messageOf(e),
    });
  }
}

/**
 * JPEG through the native libjpeg-turbo decoder (PIL's settings, so the same pixels as PIL), at
 * 1/scaleDenom. Null when the addon is unavailable, the data is not a plain 8-bit JPEG, or libjpeg
 * complains in any way: the caller then uses sharp, which classifies bad files.
 */
export function decodeJpegNative(
  input: Uint8Array,
  scaleDenom: 1 | 2 | 4 | 8,
  maxPixels = DEFAULT_MAX_PIXELS,
): RgbImage | null {
  const nat = nativeImage();
  if (!nat || !looksLikeJpeg(input)) return null;
  const r = nat.decodeJpeg(input, scaleDenom, maxPixels);
  return r.status === 'ok' ? { data: r.data, width: r.width, height: r.height } : null;
}

/** Reads and decodes an image file to RGB; throws BadImageError for bad files. */
export async function decodeImage(path: string, opts: DecodeOptions = {}): Promise<RgbImage> {
  return decodeBuffer(await readImageFile(path), path, opts);
}

export interface ImageHeader {
  width: number;
  height: number;
  format: string;
  /** Size after applying EXIF orientation. */
  orientedWidth: number;
  orientedHeight: number;
  channels: number;
  space: string;
  depth: string;
}

/**
 * Stored width/height from a JPEG (SOF marker) or PNG (IHDR) header without libvips; null for other
 * formats or malformed headers. EXIF orientation is not applied.
 */
export function imageSizeFromHeader(b: Uint8Array): { width: number; height: number } | null {
  if (b.length > 24 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) {
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    return { width: v.getUint32(16), height: v.getUint32(20) };
  }
  for (const seg of jpegSegments(b)) {
    if (isStartOfFrame(seg.marker) && seg.at + 9 <= b.length) {
      const p = seg.at;
      return { height: (b[p + 5]! << 8) | b[p + 6]!, width: (b[p + 7]! << 8) | b[p + 8]! };
    }
  }
  return null;
}

/** Header-only probe (no pixel decode). */
export async function probeImage(input: Buffer, path: string, maxPixels = DEFAULT_MAX_PIXELS): Promise<ImageHeader> {
  try {
    const m = await sharp(input, { limitInputPixels: maxPixels }).metadata();
    if (!m.width || !m.height || !m.format) throw new Error('unsupported image format');
    if (m.width * m.height > maxPixels) throw new Error(`Input image exceeds pixel limit (${m.width}x${m.height})`);
    const swap = (m.orientation ?? 1) >= 5;
    return {
      width: m.width,
      height: m.height,
      format: m.format,
      orientedWidth: swap ? m.height : m.width,
      orientedHeight: swap ? m.width : m.height,
      channels: m.channels ?? 0,
      space: m.space ?? 'unknown',
      depth: m.depth ?? 'unknown',
    };
  } catch (e) {
    throw await classifyBadImage(path, input, { maxPixels, decoderMessage: messageOf(e) });
  }
}
