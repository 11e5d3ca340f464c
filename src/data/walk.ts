// The one safe walk over image folders (datasets, predict/eval inputs, analyze). Entries that are not
// readable regular files - dangling symlinks, symlink loops, FIFOs, sockets, devices, files without read
// permission, folders named like images - are reported with their path and reason and skipped; the walk
// never opens a file (a FIFO would block) and never follows a folder symlink into a cycle.
import { lstatSync, readdirSync, realpathSync, statSync, type Stats } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

export type SkipReason =
  | 'missing'
  | 'dangling-symlink'
  | 'symlink-loop'
  | 'unreadable'
  | 'fifo'
  | 'socket'
  | 'device'
  | 'folder-named-like-a-file';

/** An input that was not used, and why. */
export interface SkippedEntry {
  path: string;
  reason: SkipReason;
  detail: string;
}

export interface WalkOptions {
  /** Which regular files to keep, by name (others are ignored silently, e.g. README.txt). */
  accept: (name: string) => boolean;
  /** Names that mark an image file: a folder named so is reported (default: `accept`). */
  fileNamed?: (name: string) => boolean;
  /** Skip names starting with '.' silently (default true). */
  skipHidden?: boolean;
  /** Sort entries of a folder (default: by UTF-16 code unit). */
  compare?: (a: string, b: string) => number;
}

/** A folder entry as the walk sees it: a readable file, a folder to descend, or skipped. */
export type EntryKind =
  | { kind: 'file'; stats: Stats }
  | { kind: 'dir'; stats: Stats }
  | { kind: 'skip'; skipped: SkippedEntry };

function errCode(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? String(e);
}

/**
 * What `path` is, following symlinks, without opening it. A file with no read permission bit at all
 * (mode 000) counts as unreadable even for root, who could read it: the owner has said it is not to be
 * read, and the walk gives the same answer whoever runs it.
 */
export function classifyEntry(path: string): EntryKind {
  let st: Stats;
  try {
    st = statSync(path);
  } catch (e) {
    const code = errCode(e);
    const skip = (reason: SkipReason, detail: string): EntryKind => ({
      kind: 'skip',
      skipped: { path, reason, detail },
    });
    if (code === 'ELOOP') return skip('symlink-loop', 'too many levels of symbolic links');
    if (code === 'ENOENT') {
      let link = false;
      try {
        link = lstatSync(path).isSymbolicLink();
      } catch {
        /* missing itself */
      }
      return link ? skip('dangling-symlink', 'symlink to a missing target') : skip('missing', 'no such file or folder');
    }
    return skip('unreadable', code);
  }
  const skip = (reason: SkipReason, detail: string): EntryKind => ({ kind: 'skip', skipped: { path, reason, detail } });
  if (st.isDirectory()) return { kind: 'dir', stats: st };
  if (st.isFIFO()) return skip('fifo', 'a named pipe, not a file');
  if (st.isSocket()) return skip('socket', 'a socket, not a file');
  if (st.isCharacterDevice() || st.isBlockDevice()) return skip('device', 'a device, not a file');
  if (!st.isFile()) return skip('unreadable', 'not a regular file');
  if ((st.mode & 0o444) === 0) return skip('unreadable', 'no read permission (mode 000)');
  return { kind: 'file', stats: st };
}

export interface WalkResult {
  files: string[];
  skipped: SkippedEntry[];
}

/**
 * Image files under `dir` (recursively), sorted per folder. Folders reached twice through symlinks (a
 * cycle) are skipped as 'symlink-loop'; a folder whose name the `accept` test takes for a file (x.jpg/) is
 * skipped as 'folder-named-like-a-file'; unreadable folders are reported.
 */
export function walkFiles(dir: string, o: WalkOptions, into: WalkResult = { files: [], skipped: [] }): WalkResult {
  const seen = new Set<string>();
  const compare = o.compare ?? ((a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0));
  const named = o.fileNamed ?? o.accept;
  const id = (st: Stats): string => `${st.dev}:${st.ino}`;
  // Folders above the walk's root: a symlink back to one of them would walk a sibling (or itself) again.
  const above = new Set<string>();
  try {
    for (let d = dirname(realpathSync(resolve(dir))); ; d = dirname(d)) {
      above.add(id(statSync(d)));
      if (d === dirname(d)) break;
    }
  } catch {
    /* the root itself is reported below */
  }
  const visit = (d: string, st: Stats, stack: Set<string>): void => {
    if (above.has(id(st)) || stack.has(id(st))) {
      into.skipped.push({ path: d, reason: 'symlink-loop', detail: 'symlink to a folder that contains it' });
      return;
    }
    if (seen.has(id(st))) {
      into.skipped.push({
        path: d,
        reason: 'symlink-loop',
        detail: 'folder already walked (reached again through a symlink)',
      });
      return;
    }
    seen.add(id(st));
    const inner = new Set(stack).add(id(st));
    let names: string[];
    try {
      names = readdirSync(d);
    } catch (e) {
      into.skipped.push({ path: d, reason: 'unreadable', detail: `cannot list folder: ${errCode(e)}` });
      return;
    }
    for (const n of names.sort(compare)) {
      if ((o.skipHidden ?? true) && n.startsWith('.')) continue;
      const p = join(d, n);
      const e = classifyEntry(p);
      if (e.kind === 'dir') {
        if (named(n))
          into.skipped.push({ path: p, reason: 'folder-named-like-a-file', detail: 'a folder, not an image file' });
        else visit(p, e.stats, inner);
      } else if (e.kind === 'file') {
        if (o.accept(n)) into.files.push(p);
      } else if (o.accept(n) || e.skipped.reason !== 'missing') into.skipped.push(e.skipped);
    }
  };
  const root = classifyEntry(resolve(dir));
  if (root.kind === 'dir') visit(resolve(dir), root.stats, new Set());
  else if (root.kind === 'skip') into.skipped.push(root.skipped);
  else into.skipped.push({ path: dir, reason: 'missing', detail: 'not a folder' });
  return into;
}

/**
 * Expands inputs (files or folders) into files: folders are walked, files given by name are kept whatever
 * their extension (`accept` only filters inside folders), bad inputs are skipped and reported.
 */
export function expandInputs(inputs: readonly string[], o: WalkOptions): WalkResult {
  const out: WalkResult = { files: [], skipped: [] };
  for (const p of inputs) {
    const e = classifyEntry(resolve(p));
    if (e.kind === 'dir') walkFiles(p, o, out);
    else if (e.kind === 'file') out.files.push(resolve(p));
    else out.skipped.push({ ...e.skipped, path: p });
  }
  return out;
}

/** The stderr report of skipped entries: a heading that counts them (`what`: 'input(s)'), then formatSkipped's lines. */
export function skippedReport(skipped: readonly SkippedEntry[], what = 'input(s)'): string {
  return [`skipping ${skipped.length} ${what}:`, ...formatSkipped(skipped)].join('\n');
}

/** One line per skipped entry, for a summary (at most `max` lines, then a count). */
export function formatSkipped(skipped: readonly SkippedEntry[], max = 20): string[] {
  const lines = skipped.slice(0, max).map((s) => `  ${s.path}: ${s.reason} (${s.detail})`);
  if (skipped.length > max) lines.push(`  ... and ${skipped.length - max} more`);
  return lines;
}
