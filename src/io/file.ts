/**
 * Positioned reads and atomic writes (src/util/atomic-file.ts, errors naming the weight file) shared by the
 * weight-file readers and writers.
 * Reads go straight into a caller-supplied buffer so a large file is never held twice.
 */
import * as fs from 'node:fs';
import { WeightFileError } from './errors.js';
import {
  closeQuietly,
  syncDirQuietly,
  writeAll,
  writeAllSync,
  writeAtomic as fileWriteAtomic,
  writeAtomicSync as fileWriteAtomicSync,
} from '../util/atomic-file.js';

export { closeQuietly, syncDirQuietly, writeAll, writeAllSync };

// fs.read takes an int32 length; stay well below it.
const MAX_CHUNK = 1 << 30;

function readFailed(file: string, err: unknown): WeightFileError {
  const msg = err instanceof Error ? err.message : String(err);
  return new WeightFileError('WEIGHTS_IO', file, `read failed: ${msg}`, { cause: err });
}

function truncated(file: string, position: number, length: number, got: number): WeightFileError {
  return new WeightFileError(
    'WEIGHTS_TRUNCATED',
    file,
    `file is truncated: needed ${length} bytes at offset ${position} but only ${got} could be read`,
  );
}

/** Fills `into` (or a new buffer of `length` bytes) from `position`; throws if the file ends first. */
export function readAtSync(fd: number, file: string, position: number, length: number, into?: Uint8Array): Uint8Array {
  const out = into ?? new Uint8Array(length);
  if (out.byteLength < length) throw new RangeError(`buffer of ${out.byteLength} bytes is smaller than ${length}`);
  let done = 0;
  while (done < length) {
    let n: number;
    try {
      n = fs.readSync(fd, out, done, Math.min(MAX_CHUNK, length - done), position + done);
    } catch (err) {
      throw readFailed(file, err);
    }
    if (n === 0) throw truncated(file, position, length, done);
    done += n;
  }
  return out.byteLength === length ? out : out.subarray(0, length);
}

function readOnce(fd: number, buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.read(fd, buf, offset, length, position, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

/** Async twin of readAtSync (reads run on libuv's thread pool, the event loop stays free). */
export async function readAt(
  fd: number,
  file: string,
  position: number,
  length: number,
  into?: Uint8Array,
): Promise<Uint8Array> {
  const out = into ?? new Uint8Array(length);
  if (out.byteLength < length) throw new RangeError(`buffer of ${out.byteLength} bytes is smaller than ${length}`);
  let done = 0;
  while (done < length) {
    let n: number;
    try {
      n = await readOnce(fd, out, done, Math.min(MAX_CHUNK, length - done), position + done);
    } catch (err) {
      throw readFailed(file, err);
    }
    if (n === 0) throw truncated(file, position, length, done);
    done += n;
  }
  return out.byteLength === length ? out : out.subarray(0, length);
}

function cannotOpen(file: string, err: unknown): WeightFileError {
  const msg = err instanceof Error ? err.message : String(err);
  return new WeightFileError('WEIGHTS_IO', file, `cannot open: ${msg}`, { cause: err });
}

export function openSync(file: string): { fd: number; size: number } {
  try {
    const fd = fs.openSync(file, 'r');
    try {
      return { fd, size: fs.fstatSync(fd).size };
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  } catch (err) {
    throw cannotOpen(file, err);
  }
}

export async function open(file: string): Promise<{ fd: number; size: number }> {
  try {
    const fd = await new Promise<number>((res, rej) => fs.open(file, 'r', (e, fd) => (e ? rej(e) : res(fd))));
    try {
      const st = await new Promise<fs.Stats>((res, rej) => fs.fstat(fd, (e, s) => (e ? rej(e) : res(s))));
      return { fd, size: st.size };
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  } catch (err) {
    throw cannotOpen(file, err);
  }
}

/** File-system failures (ENOSPC, EACCES...) become a WeightFileError; a caller's own errors pass through. */
function writeFailed(target: string, err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (err instanceof WeightFileError || typeof code !== 'string' || !code.startsWith('E')) return err;
  const why = code === 'ENOSPC' ? 'disk full' : (err as Error).message;
  return new WeightFileError('WEIGHTS_IO', target, `could not write: ${why}`, { cause: err });
}

/** Writes through `write(fd)` atomically (src/util/atomic-file.ts); file-system failures name the weight file. */
export function writeAtomicSync(target: string, write: (fd: number) => void): void {
  try {
    fileWriteAtomicSync(target, write);
  } catch (err) {
    throw writeFailed(target, err);
  }
}

/** Streams through `write(handle)` atomically (src/util/atomic-file.ts); file-system failures name the weight file. */
export async function writeAtomic(target: string, write: (h: fs.promises.FileHandle) => Promise<void>): Promise<void> {
  try {
    await fileWriteAtomic(target, write);
  } catch (err) {
    throw writeFailed(target, err);
  }
}
