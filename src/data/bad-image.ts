/**
 * Why an image that failed to decode is bad, decided from facts of its own bytes and of goodsrec's own
 * decoder: the format's signature, its end marker or declared length, libjpeg-turbo's error and warning
 * codes, the header's pixel count. Never from the text of libvips' error buffer: libvips keeps one for
 * the whole process, so a photo decoded at the same moment can put its message there, or clear ours
 * (measured: 22 of 100 truncated decodes beside a corrupt one read another message or "Unknown error").
 */
import sharp from 'sharp';
import { jpegSegments } from './jpeg-markers.js';
import { nativeImage } from './native-image.js';

export type BadFileReason = 'empty' | 'unreadable' | 'not-an-image' | 'truncated' | 'too-large' | 'corrupt';

export class BadImageError extends Error {
  readonly path: string;
  readonly reason: BadFileReason;
  constructor(path: string, reason: BadFileReason, detail: string) {
    super(`${path}: ${reason} (${detail})`);
    this.name = 'BadImageError';
    this.path = path;
    this.reason = reason;
  }
}

/** Formats recognised by their signature; `sharp` names the libvips loader that reads them. */
export type SniffedFormat = 'jpeg' | 'png' | 'gif' | 'webp' | 'tiff' | 'heif' | 'bmp' | 'svg' | 'jp2k' | 'jxl' | 'ico';

const ascii = (b: Uint8Array, at: number, s: string): boolean => {
  if (b.length < at + s.length) return false;
  for (let i = 0; i < s.length; i++) if (b[at + i] !== s.charCodeAt(i)) return false;
  return true;
};

/** The format its first bytes announce, or null for data that starts like no image format. */
export function sniffFormat(b: Uint8Array): SniffedFormat | null {
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (ascii(b, 0, '\x89PNG\r\n\x1a\n')) return 'png';
  if (ascii(b, 0, 'GIF87a') || ascii(b, 0, 'GIF89a')) return 'gif';
  if (ascii(b, 0, 'RIFF') && ascii(b, 8, 'WEBP')) return 'webp';
  if (ascii(b, 0, 'II*\0') || ascii(b, 0, 'MM\0*')) return 'tiff';
  if (ascii(b, 4, 'ftyp')) {
    const brand = String.fromCharCode(...b.subarray(8, 12));
    if (/^(heic|heix|hevc|heim|heis|mif1|msf1|avif|avis)$/.test(brand)) return 'heif';
    if (brand === 'jp2 ') return 'jp2k';
  }
  if (ascii(b, 0, '\0\0\0\x0cjP  ')) return 'jp2k';
  if ((b[0] === 0xff && b[1] === 0x0a) || ascii(b, 0, '\0\0\0\x0cJXL ')) return 'jxl';
  if (ascii(b, 0, 'BM')) return 'bmp';
  if (ascii(b, 0, '\0\0\x01\0')) return 'ico';
  const head = new TextDecoder().decode(b.subarray(0, 256)).trimStart();
  if (head.startsWith('<svg') || (head.startsWith('<?xml') && head.includes('<svg'))) return 'svg';
  return null;
}

/** Whether this build of sharp/libvips can read the format from a buffer. */
function sharpReads(f: SniffedFormat): boolean {
  const info = (sharp.format as unknown as Record<string, { input?: { buffer?: boolean } } | undefined>)[f];
  return info?.input?.buffer === true;
}

/**
 * Where a JPEG's entropy-coded data begins (just past the first SOS segment), walking the marker
 * segments; null when the header ends before one.
 */
function jpegScanStart(b: Uint8Array): number | null {
  for (const seg of jpegSegments(b))
    if (seg.marker === 0xda) return seg.at + 2 + seg.length <= b.length ? seg.at + 2 + seg.length : null;
  return null;
}

/**
 * Whether the JPEG has its end-of-image marker after the start of its scan data. Entropy-coded data
 * stuffs every 0xFF with 0x00, so an FF D9 there can only be the marker (an EXIF thumbnail's own EOI
 * lies in the header, before the scan).
 */
export function jpegHasEndMarker(b: Uint8Array): boolean {
  const start = jpegScanStart(b);
  if (start === null) return false;
  for (let i = b.length - 2; i >= start; i--) if (b[i] === 0xff && b[i + 1] === 0xd9) return true;
  return false;
}

/** PNG: does the chunk list reach an IEND chunk inside the data? */
function pngComplete(b: Uint8Array): boolean {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let p = 8;
  while (p + 8 <= b.length) {
    const len = v.getUint32(p);
    const end = p + 12 + len;
    if (end > b.length) return false;
    if (ascii(b, p + 4, 'IEND')) return true;
    p = end;
  }
  return false;
}

/** The end-of-data fact for formats that have one: false when the data stops before its end. */
function formatComplete(f: SniffedFormat, b: Uint8Array): boolean | null {
  switch (f) {
    case 'jpeg':
      return jpegHasEndMarker(b);
    case 'png':
      return pngComplete(b);
    case 'gif':
      return b[b.length - 1] === 0x3b;
    case 'webp':
      return b.length >= 12 && new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(4, true) + 8 <= b.length;
    default:
      return null;
  }
}

const FORMAT_NAMES: Record<SniffedFormat, string> = {
  jpeg: 'JPEG',
  png: 'PNG',
  gif: 'GIF',
  webp: 'WebP',
  tiff: 'TIFF',
  heif: 'HEIF/AVIF',
  bmp: 'BMP',
  svg: 'SVG',
  jp2k: 'JPEG 2000',
  jxl: 'JPEG XL',
  ico: 'ICO',
};

export interface ClassifyOptions {
  /** The pixel limit the decode ran with. */
  maxPixels: number;
  /** The decoder's own words, kept only as a hint in the detail where the bytes say nothing more. */
  decoderMessage?: string;
}

/**
 * Classifies a file that failed to decode. The reason depends only on `buf` (and the pixel limit), so the
 * same file gets the same reason however many other photos are decoded at the same moment.
 */
export async function classifyBadImage(path: string, buf: Uint8Array, opts: ClassifyOptions): Promise<BadImageError> {
  if (buf.length === 0) return new BadImageError(path, 'empty', '0 bytes');
  const format = sniffFormat(buf);
  if (format === null)
    return new BadImageError(path, 'not-an-image', 'unsupported image format: its first bytes match none');
  const name = FORMAT_NAMES[format];
  if (!sharpReads(format))
    return new BadImageError(
      path,
      'not-an-image',
      `unsupported image format: ${name} data, which goodsrec does not read`,
    );
  // The header's size; only success and the numbers are used, never the failure text.
  const size = await sharp(buf, { limitInputPixels: false })
    .metadata()
    .then((m) => (m.width && m.height ? { width: m.width, height: m.height } : null))
    .catch(() => null);
  if (size && size.width * size.height > opts.maxPixels)
    return new BadImageError(
      path,
      'too-large',
      `${size.width}x${size.height} is over the pixel limit of ${opts.maxPixels} (raise --max-pixels to read it)`,
    );
  const hint = opts.decoderMessage ? `; libvips said: ${opts.decoderMessage.split('\n')[0]}` : '';
  if (format === 'jpeg') {
    const check = nativeImage()?.jpegCheck(buf);
    const ended = !jpegHasEndMarker(buf);
    if (check?.eof || ended)
      return new BadImageError(
        path,
        'truncated',
        `JPEG data ends after ${buf.length} bytes without its end-of-image marker${check?.message ? ` (libjpeg-turbo: ${check.message})` : ''}`,
      );
    if (check && (check.fatal || check.warnings > 0))
      return new BadImageError(path, 'corrupt', `JPEG data damaged (libjpeg-turbo: ${check.message})`);
    return new BadImageError(path, 'corrupt', `JPEG ${size ? 'data' : 'header'} not readable${hint}`);
  }
  if (formatComplete(format, buf) === false)
    return new BadImageError(path, 'truncated', `${name} data ends after ${buf.length} bytes, before its end`);
  return new BadImageError(path, 'corrupt', `${name} ${size ? 'data' : 'header'} not readable${hint}`);
}
