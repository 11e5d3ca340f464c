// Crash-safe writes: a file or folder appears complete under its final name
// or not at all (temp name in the same folder, fsync, rename, fsync folder).
// Files go through the streaming writer of atomic-file.ts; this adds folders
// and the user-facing error.
import { mkdirSync, renameSync, rmSync, existsSync, readdirSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { writeAtomicSync, writeAllSync, syncDirQuietly } from './atomic-file.js';
import { faultPoint, faultWriteNumber } from './fault.js';

export class WriteError extends Error {
  constructor(
    readonly path: string,
    cause: unknown,
  ) {
    const e = cause as NodeJS.ErrnoException;
    const why =
      e.code === 'ENOSPC'
        ? 'disk full'
        : e.code === 'EACCES' || e.code === 'EPERM'
          ? 'permission denied'
          : e.code === 'EROFS'
            ? 'read-only filesystem'
            : e.message;
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
    throw new WriteError(path, e);
  }
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}

/**
 * Fills a temp folder with fill(tmpDir) and renames it to finalDir in one
 * step. An existing finalDir is replaced only after the new one is complete.
 * `createParent: false` fails when finalDir's parent is gone instead of creating
 * it again (a folder moved meanwhile must not reappear at its old path).
 */
export async function writeDirAtomic(
  finalDir: string,
  fill: (tmpDir: string) => Promise<void> | void,
  o: { createParent?: boolean } = {},
): Promise<void> {
  const parent = dirname(finalDir);
  const tmp = join(parent, `.${basename(finalDir)}.tmp-${process.pid}-${Date.now()}`);
  const nth = faultWriteNumber('dir');
  try {
    recoverDirAtomic(finalDir, true);
    mkdirSync(tmp, { recursive: o.createParent ?? true });
    await fill(tmp);
    faultPoint('dir', nth, 'before-rename');
    if (existsSync(finalDir)) {
      const old = join(parent, `.${basename(finalDir)}.old-${process.pid}-${Date.now()}`);
      renameSync(finalDir, old);
      faultPoint('dir', nth, 'swapped');
      renameSync(tmp, finalDir);
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(tmp, finalDir);
    }
    faultPoint('dir', nth, 'after-rename');
    syncDirQuietly(parent);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e instanceof WriteError ? e : new WriteError(finalDir, e);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Undoes what a killed writeDirAtomic left next to finalDir: when it died after moving the old folder aside
 * and before renaming the new one in, the old (complete) folder is put back. With `clean`, the leftover temp
 * and old folders of dead processes are deleted too. Best effort (a read-only file system stays as it is).
 */
export function recoverDirAtomic(finalDir: string, clean = false): void {
  const parent = dirname(finalDir);
  const prefix = `.${basename(finalDir)}.`;
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return;
  }
  const left = names
    .map((n) => ({ n, m: /^(tmp|old)-(\d+)-(\d+)$/.exec(n.slice(prefix.length)) }))
    .filter((x) => x.n.startsWith(prefix) && x.m && !alive(Number(x.m[2])))
    .sort((a, b) => Number(b.m![3]) - Number(a.m![3]));
  try {
    const old = left.find((x) => x.m![1] === 'old');
    if (old && !existsSync(finalDir)) {
      renameSync(join(parent, old.n), finalDir);
      syncDirQuietly(parent);
    }
    if (clean) for (const x of left) rmSync(join(parent, x.n), { recursive: true, force: true });
  } catch {
    /* best effort */
  }
}
