/** JPEG header segments, walked without a decoder (for sizes and bad-file facts). */

export interface JpegSegment {
  /** The marker's second byte (0xC0 SOF0, 0xDA SOS, ...). */
  marker: number;
  /** Offset of the 0xFF that starts the segment. */
  at: number;
  /** The segment's length field (it counts itself, not the marker). */
  length: number;
}

/**
 * The header's marker segments in order, up to and including the first SOS (after it comes entropy-coded
 * data). Stops at the first byte that is not a marker, or where a length field would lie past the data;
 * a segment whose body runs past the data is still yielded (the caller checks what it reads).
 */
export function* jpegSegments(b: Uint8Array): Generator<JpegSegment> {
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return;
  let p = 2;
  while (p + 4 <= b.length) {
    if (b[p] !== 0xff) return;
    const m = b[p + 1]!;
    if (m === 0xff) {
      p++; // fill byte
      continue;
    }
    if (m === 0xd8 || m === 0x01 || (m >= 0xd0 && m <= 0xd7)) {
      p += 2; // markers without a length
      continue;
    }
    const length = (b[p + 2]! << 8) | b[p + 3]!;
    yield { marker: m, at: p, length };
    if (m === 0xda) return;
    p += 2 + length;
  }
}

/** SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC): the frame header with the image size. */
export const isStartOfFrame = (m: number): boolean => m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;
