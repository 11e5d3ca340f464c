// huggingface_hub's cache layout, so either tool finds what the other downloaded:
//   <cache>/models--{org}--{name}/blobs/<etag>
//   <cache>/models--{org}--{name}/refs/<revision>             (holds the commit hash, no newline)
//   <cache>/models--{org}--{name}/snapshots/<commit>/<file>   (relative symlink to ../../blobs/<etag>)
//   <cache>/.locks/models--{org}--{name}/<etag>.lock           (huggingface_hub's filelock)
import { existsSync, mkdirSync, readFileSync, renameSync, symlinkSync, unlinkSync, lstatSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';

export const COMMIT_HASH = /^[0-9a-f]{40}$/;

/** models--org--name (huggingface_hub's repo_folder_name for model repos). */
export function repoFolderName(repo: string): string {
  return ['models', ...repo.split('/')].join('--');
}

export interface RepoCache {
  storage: string;
  blob(etag: string): string;
  pointer(commit: string, file: string): string;
  ref(revision: string): string;
  lock(etag: string): string;
}

export function repoCache(cacheDir: string, repo: string): RepoCache {
  const folder = repoFolderName(repo);
  const storage = join(cacheDir, folder);
  return {
    storage,
    blob: (etag) => join(storage, 'blobs', etag),
    pointer: (commit, file) => join(storage, 'snapshots', commit, ...file.split('/')),
    ref: (revision) => join(storage, 'refs', ...revision.split('/')),
    // Our own lock name next to huggingface_hub's: its filelock files stay on disk after release,
    // so "the file exists" cannot be our lock protocol on the same name.
    lock: (etag) => join(cacheDir, '.locks', folder, `${etag}.goodsrec.lock`),
  };
}

/** The commit a revision points to in the cache (the revision itself when it is a commit hash). */
export function cachedCommit(c: RepoCache, revision: string): string | null {
  if (COMMIT_HASH.test(revision)) return revision;
  const ref = c.ref(revision);
  if (!existsSync(ref)) return null;
  const commit = readFileSync(ref, 'utf8').trim();
  return COMMIT_HASH.test(commit) ? commit : null;
}

/** huggingface_hub's try_to_load_from_cache: the snapshot file of revision, or null. */
export function cachedFile(c: RepoCache, revision: string, file: string): string | null {
  const commit = cachedCommit(c, revision);
  if (!commit) return null;
  const p = c.pointer(commit, file);
  return existsSync(p) ? p : null;
}

/** Records revision -> commit (atomically; only when it changed, as huggingface_hub does). */
export function writeRef(c: RepoCache, revision: string, commit: string): void {
  if (revision === commit) return;
  const ref = c.ref(revision);
  if (existsSync(ref) && readFileSync(ref, 'utf8') === commit) return;
  writeFileAtomic(ref, commit);
}

/** snapshots/<commit>/<file> -> ../../blobs/<etag> as a relative symlink, replaced atomically. */
export function linkSnapshot(c: RepoCache, commit: string, file: string, etag: string): string {
  const pointer = c.pointer(commit, file);
  mkdirSync(dirname(pointer), { recursive: true });
  const target = relative(dirname(pointer), c.blob(etag));
  const tmp = `${pointer}.${process.pid}.tmp-link`;
  try {
    if (lstatSync(tmp)) unlinkSync(tmp);
  } catch {
    /* none */
  }
  symlinkSync(target, tmp);
  renameSync(tmp, pointer);
  return pointer;
}
