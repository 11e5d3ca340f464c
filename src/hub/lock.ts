// A lock between processes on one machine: the lock file is created exclusively
// and holds the owner's pid; a lock whose owner is gone is taken over. Within one
// process, callers of the same lock queue on a promise instead.
import { closeSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const held = new Map<string, Promise<void>>();

function ownerAlive(path: string): boolean {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return true; // gone or unreadable: try to create it again
  }
  // Empty: its owner created it and has not written its pid yet (taking it over then let two processes in).
  // An empty file older than 10 s is a leftover of a process killed in between.
  if (text === '') {
    try {
      return Date.now() - statSync(path).mtimeMs < 10_000;
    } catch {
      return true;
    }
  }
  const pid = Number.parseInt(text, 10);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return false; // this process's callers queue on `held`: a leftover
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function tryCreate(path: string): boolean {
  try {
    const fd = openSync(path, 'wx');
    try {
      writeSync(fd, String(process.pid));
    } finally {
      closeSync(fd);
    }
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    return false;
  }
}

/** Runs fn while holding the lock at path; onWait is told once when another process holds it. */
export async function withFileLock<X>(path: string, fn: () => Promise<X>, onWait?: () => void): Promise<X> {
  while (held.has(path)) await held.get(path)!.catch(() => undefined);
  let release!: () => void;
  held.set(
    path,
    new Promise<void>((r) => {
      release = r;
    }),
  );
  try {
    mkdirSync(dirname(path), { recursive: true });
    let told = false;
    while (!tryCreate(path)) {
      if (!ownerAlive(path)) {
        try {
          unlinkSync(path);
        } catch {
          /* another waiter took it over */
        }
        continue;
      }
      if (!told) {
        told = true;
        onWait?.();
      }
      await sleep(100);
    }
    try {
      return await fn();
    } finally {
      try {
        unlinkSync(path);
      } catch {
        /* already gone */
      }
    }
  } finally {
    held.delete(path);
    release();
  }
}
