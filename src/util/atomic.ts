// Crash-safe writes: a file or folder appears complete under its final name
// or not at all (temp name in the same folder, fsync, rename, fsync folder).
// Files go through src/io's streaming writer; this adds folders and the
// user-facing error.
import { mkdirSync, renameSync, rmSync, existsSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { writeAtomicSync, writeAllSync, syncDirQuietly } from '../io/file.js';

export class WriteError extends Error {
  constructor(readonly path: string, cause: unknown) {
    const e = cause as NodeJS.ErrnoException;
    const why = e.code === 'ENOSPC' ? 'disk full' : e.code === 'EACCES' || e.code === 'EPERM' ? 'permission denied'
      : e.code === 'EROFS' ? 'read-only filesystem' : e.message;
    super(`could not write ${path}: ${why}`, { cause });
    this.name = 'WriteError';
  }
}

/** Writes data to path atomically; on failure the previous file is untouched. */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  try {
    mkdirSync(dirname(path), { recursive: true });
    writeAtomicSync(path, (fd) => writeAllSync(fd, buf));
  } catch (e) {
    // src/io wraps file-system failures; report the underlying errno.
    throw new WriteError(path, (e as { cause?: unknown }).cause ?? e);
  }
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}

/**
 * Fills a temp folder with fill(tmpDir) and renames it to finalDir in one
 * step. An existing finalDir is replaced only after the new one is complete.
 */
export async function writeDirAtomic(finalDir: string, fill: (tmpDir: string) => Promise<void> | void): Promise<void> {
  const parent = dirname(finalDir);
  const tmp = join(parent, `.${basename(finalDir)}.tmp-${process.pid}-${Date.now()}`);
  try {
    mkdirSync(tmp, { recursive: true });
    await fill(tmp);
    if (existsSync(finalDir)) {
      const old = join(parent, `.${basename(finalDir)}.old-${process.pid}-${Date.now()}`);
      renameSync(finalDir, old);
      renameSync(tmp, finalDir);
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(tmp, finalDir);
    }
    syncDirQuietly(parent);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e instanceof WriteError ? e : new WriteError(finalDir, e);
  }
}
