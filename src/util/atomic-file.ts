/**
 * Atomic file writes at the bottom of the house: a temp file in the same folder, fsync, rename, fsync the
 * folder, so a file appears complete under its final name or not at all. Errors are the file system's own;
 * src/io (weight files) and src/util/atomic.ts (JSON, folders) turn them into their users' errors.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { faultPoint, faultWriteNumber } from './fault.js';

// fs.write takes an int32 length; stay well below it.
const MAX_CHUNK = 1 << 30;

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

// These stream, so a large checkpoint is written tensor by tensor without assembling it first.

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
    throw err;
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
    throw err;
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
