/**
 * Decoding limits, in a module of their own so that the command line can show them without loading the
 * image libraries.
 */

/** PIL's decompression-bomb error threshold (2 x Image.MAX_IMAGE_PIXELS): pixels per image at most. */
export const DEFAULT_MAX_PIXELS = 178_956_970;
