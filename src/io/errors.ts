/**
 * One error type for every weight-file problem. The message always starts with the file's path,
 * and `code` is stable so callers (and tests) can branch on the kind of problem.
 */

export type WeightFileErrorCode =
  /** The file can't be opened or read (missing, permission, I/O error). */
  | 'WEIGHTS_IO'
  /** The file ends before the data its header or directory promises. */
  | 'WEIGHTS_TRUNCATED'
  /** A safetensors header that breaks the format (length, JSON, shapes, offsets, names). */
  | 'WEIGHTS_BAD_HEADER'
  /** An element type goodsrec doesn't handle (safetensors code or torch storage class). */
  | 'WEIGHTS_UNKNOWN_DTYPE'
  /** A .pth whose zip structure is broken or lacks a record torch.save writes. */
  | 'WEIGHTS_BAD_ZIP'
  /** A pickle that is malformed or truncated. */
  | 'WEIGHTS_BAD_PICKLE'
  /** A pickle that asks for a global outside the state-dict allow-list (possibly malicious). */
  | 'WEIGHTS_UNSAFE_PICKLE'
  /** A tensor whose size/stride/offset don't fit its storage. */
  | 'WEIGHTS_BAD_TENSOR'
  /** Pre-1.6 (non-zip) torch.save files and other formats goodsrec doesn't read. */
  | 'WEIGHTS_UNSUPPORTED_FORMAT'
  /** A name asked for that the file doesn't contain. */
  | 'WEIGHTS_NO_SUCH_TENSOR'
  /** Bad arguments to a writer (shape/data mismatch, bad names or metadata). */
  | 'WEIGHTS_INVALID_ARGUMENT';

export class WeightFileError extends Error {
  override readonly name = 'WeightFileError';
  constructor(
    readonly code: WeightFileErrorCode,
    /** The weight file the problem is in. */
    readonly file: string,
    /** The problem, without the file name. */
    readonly problem: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${problem}`, options);
  }
}
