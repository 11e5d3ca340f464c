/**
 * Positioned reads and atomic writes shared by the weight-file readers and writers.
 * Reads go straight into a caller-supplied buffer so a large file is never held twice.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { WeightFileError } from './errors.js';
import { faultPoint, faultWriteNumber } from '../util/fault.js';

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

export function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // already closed
  }
}

/** A temp file next to `target`, so the final rename stays on one file system (and is atomic). */
function tempPathFor(target: string): string {
  return path.join(
    path.dirname(target),
    `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`,
  );
}

/** fsyncs a folder so a rename in it is durable; best effort. */
export function syncDirQuietly(dir: string): void {
  // Makes the rename itself durable; not possible on every platform/file system, hence best effort.
  try {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    /* best effort */
  }
}

/** File-system failures (ENOSPC, EACCES...) become a WeightFileError; a caller's own errors pass through. */
function writeFailed(target: string, err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (err instanceof WeightFileError || typeof code !== 'string' || !code.startsWith('E')) return err;
  const why = code === 'ENOSPC' ? 'disk full' : (err as Error).message;
  return new WeightFileError('WEIGHTS_IO', target, `could not write: ${why}`, { cause: err });
}

// These stream, so a large checkpoint is written tensor by tensor without
// assembling it first; src/util/atomic.ts builds on them for in-memory data.

/** Writes through `write(fd)` into a temp file, fsyncs and renames it over `target`; never leaves a partial target. */
export function writeAtomicSync(target: string, write: (fd: number) => void): void {
  const tmp = tempPathFor(target);
  const nth = faultWriteNumber('file');
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'w', 0o644);
    write(fd);
    faultPoint('file', nth, 'partial', fd);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    faultPoint('file', nth, 'before-rename');
    fs.renameSync(tmp, target);
  } catch (err) {
    if (fd !== undefined) closeQuietly(fd);
    fs.rmSync(tmp, { force: true });
    throw writeFailed(target, err);
  }
  faultPoint('file', nth, 'after-rename');
  syncDirQuietly(path.dirname(target));
}

export async function writeAtomic(target: string, write: (h: fs.promises.FileHandle) => Promise<void>): Promise<void> {
  const tmp = tempPathFor(target);
  const nth = faultWriteNumber('file');
  let h: fs.promises.FileHandle | undefined;
  try {
    h = await fs.promises.open(tmp, 'w', 0o644);
    await write(h);
    faultPoint('file', nth, 'partial', h.fd);
    await h.sync();
    const closing = h;
    h = undefined;
    await closing.close();
    faultPoint('file', nth, 'before-rename');
    await fs.promises.rename(tmp, target);
  } catch (err) {
    if (h !== undefined) await h.close().catch(() => undefined);
    await fs.promises.rm(tmp, { force: true });
    throw writeFailed(target, err);
  }
  faultPoint('file', nth, 'after-rename');
  syncDirQuietly(path.dirname(target));
}

/** Writes all of `data` at the current position of fd. */
export function writeAllSync(fd: number, data: Uint8Array): void {
  let done = 0;
  while (done < data.byteLength) {
    done += fs.writeSync(fd, data, done, Math.min(MAX_CHUNK, data.byteLength - done));
  }
}

export async function writeAll(h: fs.promises.FileHandle, data: Uint8Array): Promise<void> {
  let done = 0;
  while (done < data.byteLength) {
    const { bytesWritten } = await h.write(data, done, Math.min(MAX_CHUNK, data.byteLength - done));
    done += bytesWritten;
  }
}
