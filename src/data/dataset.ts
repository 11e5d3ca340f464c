/**
 * Dataset descriptions and readers.
 *
 * A dataset is a plain JSON-able object: the class list (index = position) and the samples with their
 * split. The class index is ONE index for all splits: the union of class names over every split, sorted
 * by Unicode code point (the original recipe code built it per split, which silently mislabels when the
 * split folders differ). It is stored with every model.
 *
 * Readers never write to the dataset folder.
 */
import { readdirSync, readFileSync, statSync, existsSync } from 'node:fs';
import { basename, dirname, extname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { Rng } from '../util/rng.js';
import { classifyEntry, walkFiles, type SkippedEntry } from './walk.js';

export interface Sample {
  /** Image path relative to `Dataset.root` (POSIX separators), or absolute. */
  path: string;
  /** Index into `Dataset.classes`. */
  label: number;
  /** Split name, e.g. 'train', 'val', 'test'. */
  split: string;
}

export interface Dataset {
  /** Folder that sample paths are relative to. */
  root: string;
  /** Class names; the label of a sample is its class's position in this list. */
  classes: string[];
  samples: Sample[];
  /** Entries of a folder dataset that were skipped (dangling symlinks, FIFOs, unreadable files...). */
  skipped?: SkippedEntry[];
}

export const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set([
  '.jpg',
  '.jpeg',
  '.png',
  '.webp',
  '.tif',
  '.tiff',
  '.gif',
  '.avif',
]);

export function isImageFile(name: string): boolean {
  return IMAGE_EXTENSIONS.has(extname(name).toLowerCase());
}

/** Compares two strings by Unicode code point (not UTF-16 code unit, which differs above U+FFFF). */
export function compareCodePoints(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done) return y.done ? 0 : -1;
    if (y.done) return 1;
    const cx = x.value.codePointAt(0)!;
    const cy = y.value.codePointAt(0)!;
    if (cx !== cy) return cx < cy ? -1 : 1;
  }
}

/** The class index rule: unique names sorted by code point. */
export function buildClassIndex(names: Iterable<string>): string[] {
  return [...new Set(names)].sort(compareCodePoints);
}

/** Absolute path of a sample's image. */
export function resolveSamplePath(ds: Pick<Dataset, 'root'>, s: Pick<Sample, 'path'>): string {
  return isAbsolute(s.path) ? s.path : resolve(ds.root, s.path);
}

function toPosix(p: string): string {
  return sep === '/' ? p : p.split(sep).join('/');
}

/** Sub-folders and image files of `dir` (sorted); bad entries go to `skipped`. */
function listDir(dir: string, skipped: SkippedEntry[]): { name: string; isDir: boolean }[] {
  const out: { name: string; isDir: boolean }[] = [];
  for (const name of readdirSync(dir).sort(compareCodePoints)) {
    if (name.startsWith('.')) continue;
    const e = classifyEntry(join(dir, name));
    if (e.kind === 'skip') {
      if (isImageFile(name) || e.skipped.reason !== 'missing') skipped.push(e.skipped);
    } else out.push({ name, isDir: e.kind === 'dir' });
  }
  return out;
}

function collectImages(dir: string, out: string[], skipped: SkippedEntry[]): void {
  const r = walkFiles(dir, { accept: isImageFile, compare: compareCodePoints });
  out.push(...r.files);
  skipped.push(...r.skipped);
}

export interface FolderReadOptions {
  /** Splits to read (sub-folders of root); default: every sub-folder. */
  splits?: string[];
}

/**
 * Folder layout `root/<split>/<class>/<image>` (RP2K's `all/train`, `all/test`). Images nested deeper
 * inside a class folder belong to that class. If `root` holds class folders with images directly
 * (`root/<class>/<image>`), it is read as a single split named 'all'.
 */
export function readFolderDataset(root: string, opts: FolderReadOptions = {}): Dataset {
  const absRoot = resolve(root);
  if (!existsSync(absRoot) || !statSync(absRoot).isDirectory())
    throw new Error(`dataset folder ${absRoot}: not a folder`);
  const skipped: SkippedEntry[] = [];
  const top = listDir(absRoot, skipped).filter((e) => e.isDir);
  // Single-split layout: some top folder contains images directly.
  const single = top.some((d) => listDir(join(absRoot, d.name), []).some((e) => !e.isDir && isImageFile(e.name)));
  const raw: { path: string; cls: string; split: string }[] = [];
  const readSplit = (splitDir: string, split: string) => {
    for (const c of listDir(splitDir, skipped).filter((e) => e.isDir)) {
      const files: string[] = [];
      collectImages(join(splitDir, c.name), files, skipped);
      for (const f of files) raw.push({ path: toPosix(relative(absRoot, f)), cls: c.name.normalize('NFC'), split });
    }
  };
  if (single) {
    readSplit(absRoot, 'all');
  } else {
    const wanted = opts.splits ? new Set(opts.splits) : null;
    for (const s of top) if (!wanted || wanted.has(s.name)) readSplit(join(absRoot, s.name), s.name);
    if (wanted)
      for (const w of wanted)
        if (!top.some((t) => t.name === w)) throw new Error(`dataset folder ${absRoot}: split folder '${w}' not found`);
  }
  if (raw.length === 0)
    throw new Error(`dataset folder ${absRoot}: no images found (expected root/<split>/<class>/<image>)`);
  const ds = finish(absRoot, raw);
  return skipped.length ? { ...ds, skipped } : ds;
}

function finish(
  root: string,
  raw: { path: string; cls: string; split: string }[],
  classNames?: Iterable<string>,
): Dataset {
  const classes = buildClassIndex(classNames ?? raw.map((r) => r.cls));
  const idx = new Map(classes.map((c, i) => [c, i]));
  const samples = raw.map((r) => {
    const label = idx.get(r.cls);
    if (label === undefined) throw new Error(`class '${r.cls}' of ${r.path} is not in the class list`);
    return { path: r.path, label, split: r.split };
  });
  return { root, classes, samples };
}

/** Minimal RFC 4180 CSV parser (quoted fields, doubled quotes, CRLF). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let i = 0;
  let quoted = false;
  if (text.charCodeAt(0) === 0xfeff) i = 1;
  for (; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      field = '';
      if (row.length > 1 || row[0] !== '') rows.push(row);
      row = [];
    } else field += ch;
  }
  if (field !== '' || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

export interface ManifestReadOptions {
  /** Split files to read, default: every `<split>.txt` beside the classes file. */
  splits?: string[];
  /** Classes file name, default 'classes.csv'. */
  classesFile?: string;
}

/**
 * Manifest layout as in the grocery-store dataset: `<dir>/<split>.txt` with lines `path, class_id[, ...]`
 * (paths relative to `<dir>`) plus `<dir>/classes.csv` mapping class ids to names (columns whose header
 * starts with 'Class Name' and 'Class ID', else the first two columns). `dir` may also be a folder that
 * holds such a `dataset/` folder. Class names come from the classes file; the index is re-sorted by
 * code point like every goodsrec dataset.
 */
export function readManifestDataset(dir: string, opts: ManifestReadOptions = {}): Dataset {
  let d = resolve(dir);
  const cf = opts.classesFile ?? 'classes.csv';
  if (!existsSync(join(d, cf)) && existsSync(join(d, 'dataset', cf))) d = join(d, 'dataset');
  const classesPath = join(d, cf);
  if (!existsSync(classesPath)) throw new Error(`manifest dataset ${d}: classes file ${cf} not found`);
  const rows = parseCsv(readFileSync(classesPath, 'utf8'));
  if (rows.length < 2) throw new Error(`${classesPath}: no class rows`);
  const header = rows[0]!.map((h) => h.trim().toLowerCase());
  let nameCol = header.findIndex((h) => h.startsWith('class name'));
  let idCol = header.findIndex((h) => h.startsWith('class id'));
  if (nameCol < 0) nameCol = 0;
  if (idCol < 0) idCol = 1;
  const idToName = new Map<number, string>();
  for (const [k, r] of rows.slice(1).entries()) {
    const name = r[nameCol]?.trim();
    const id = Number(r[idCol]);
    if (!name || !Number.isInteger(id))
      throw new Error(`${classesPath}:${k + 2}: expected a class name and an integer id`);
    idToName.set(id, name.normalize('NFC'));
  }
  const splits =
    opts.splits ??
    readdirSync(d)
      .filter((f) => f.endsWith('.txt'))
      .map((f) => basename(f, '.txt'))
      .sort(compareCodePoints);
  const raw: { path: string; cls: string; split: string }[] = [];
  for (const split of splits) {
    const file = join(d, `${split}.txt`);
    if (!existsSync(file)) throw new Error(`manifest dataset ${d}: split file ${split}.txt not found`);
    const lines = readFileSync(file, 'utf8').split(/\r?\n/);
    lines.forEach((line, n) => {
      if (line.trim() === '' || line.startsWith('#')) return;
      // One line at a time (so errors name it) through the CSV parser: a quoted path may hold a comma.
      const parts = (parseCsv(line)[0] ?? []).map((p) => p.trim());
      const id = Number(parts[1]);
      const cls = idToName.get(id);
      if (parts.length < 2 || !parts[0] || cls === undefined)
        throw new Error(`${file}:${n + 1}: expected 'path, class_id' with a class id from ${cf}, got '${line}'`);
      raw.push({ path: toPosix(relative(d, resolve(d, parts[0]))), cls, split });
    });
  }
  return finish(d, raw, idToName.values());
}

/**
 * goodsrec's own manifest: JSON `{ "classes"?: [...], "samples": [{ "path", "class", "split" }] }` or CSV
 * with header `path,class,split`. Paths are relative to the manifest's folder. If `classes` is given,
 * it must contain every class used; it is still sorted by code point.
 */
export function readGoodsrecManifest(file: string): Dataset {
  const f = resolve(file);
  const root = dirname(f);
  const text = readFileSync(f, 'utf8');
  const raw: { path: string; cls: string; split: string }[] = [];
  let classNames: string[] | undefined;
  if (extname(f).toLowerCase() === '.json') {
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch (e) {
      throw new Error(`${f}: invalid JSON (${(e as Error).message})`);
    }
    const o = obj as { classes?: unknown; samples?: unknown };
    if (!o || !Array.isArray(o.samples)) throw new Error(`${f}: expected an object with a 'samples' array`);
    if (o.classes !== undefined) {
      if (!Array.isArray(o.classes) || !o.classes.every((c) => typeof c === 'string'))
        throw new Error(`${f}: 'classes' must be an array of strings`);
      classNames = (o.classes as string[]).map((c) => c.normalize('NFC'));
    }
    o.samples.forEach((s: unknown, i: number) => {
      const r = s as { path?: unknown; class?: unknown; split?: unknown };
      // An empty path named the manifest's own folder (found by fuzzing).
      if (typeof r?.path !== 'string' || r.path.trim() === '' || typeof r.class !== 'string') {
        throw new Error(`${f}: samples[${i}] needs a non-empty string 'path' and a string 'class'`);
      }
      raw.push({ path: r.path, cls: r.class.normalize('NFC'), split: typeof r.split === 'string' ? r.split : 'train' });
    });
  } else {
    const rows = parseCsv(text);
    const header = rows[0]?.map((h) => h.trim().toLowerCase()) ?? [];
    const pc = header.indexOf('path');
    const cc = header.indexOf('class');
    const sc = header.indexOf('split');
    if (pc < 0 || cc < 0)
      throw new Error(`${f}: CSV header must name 'path' and 'class' columns (and optionally 'split')`);
    rows.slice(1).forEach((r, i) => {
      const p = r[pc]?.trim();
      const c = r[cc]?.trim();
      if (!p || !c) throw new Error(`${f}:${i + 2}: missing path or class`);
      raw.push({ path: p, cls: c.normalize('NFC'), split: sc >= 0 && r[sc]?.trim() ? r[sc]!.trim() : 'train' });
    });
  }
  if (classNames) {
    const known = new Set(classNames);
    for (const r of raw)
      if (!known.has(r.cls)) throw new Error(`${f}: class '${r.cls}' of ${r.path} is not in 'classes'`);
  }
  return finish(root, raw, classNames);
}

/** Reads any supported layout: a .json/.csv goodsrec manifest, a manifest folder (classes.csv), or a folder tree. */
export function loadDataset(path: string, opts: { splits?: string[] } = {}): Dataset {
  const p = resolve(path);
  if (!existsSync(p)) throw new Error(`dataset ${p}: not found`);
  let ds: Dataset;
  if (statSync(p).isFile()) ds = readGoodsrecManifest(p);
  else if (existsSync(join(p, 'classes.csv')) || existsSync(join(p, 'dataset', 'classes.csv')))
    return readManifestDataset(p, opts);
  else return readFolderDataset(p, opts);
  return opts.splits ? selectSplits(ds, opts.splits) : ds;
}

/** Same classes, only the samples of the given splits. */
export function selectSplits(ds: Dataset, splits: string | string[]): Dataset {
  const want = new Set(typeof splits === 'string' ? [splits] : splits);
  const samples = ds.samples.filter((s) => want.has(s.split));
  // Skipped entries of the chosen splits (a single-split folder dataset's split is 'all').
  const skipped = ds.skipped?.filter((k) => want.has('all') || want.has(relative(ds.root, k.path).split(sep)[0]!));
  return { root: ds.root, classes: ds.classes, samples, ...(skipped?.length ? { skipped } : {}) };
}

export function splitNames(ds: Dataset): string[] {
  return [...new Set(ds.samples.map((s) => s.split))].sort(compareCodePoints);
}

export interface SubsetOptions {
  /** Keep this fraction of each (split, class) group, at least one image per non-empty group. */
  fraction?: number;
  /** Keep only these classes; labels are re-indexed over them (sorted by code point). */
  classes?: string[];
  seed?: number;
}

/** Deterministic subset by stratified fraction and/or by classes. Sample order is kept. */
export function subsetDataset(ds: Dataset, opts: SubsetOptions): Dataset {
  let out: Dataset = ds;
  if (opts.classes) {
    const keep = buildClassIndex(opts.classes.map((c) => c.normalize('NFC')));
    for (const c of keep) if (!ds.classes.includes(c)) throw new Error(`subset: class '${c}' is not in the dataset`);
    const idx = new Map(keep.map((c, i) => [c, i]));
    out = {
      root: ds.root,
      classes: keep,
      samples: ds.samples.flatMap((s) => {
        const l = idx.get(ds.classes[s.label]!);
        return l === undefined ? [] : [{ ...s, label: l }];
      }),
    };
  }
  if (opts.fraction !== undefined) {
    const f = opts.fraction;
    if (!(f > 0 && f <= 1)) throw new Error(`subset: fraction must be in (0, 1], got ${f}`);
    const groups = new Map<string, number[]>();
    out.samples.forEach((s, i) => {
      const k = `${s.split}\u0000${s.label}`;
      let g = groups.get(k);
      if (!g) groups.set(k, (g = []));
      g.push(i);
    });
    const rng = new Rng(opts.seed ?? 0);
    const keep = new Uint8Array(out.samples.length);
    // Map iteration order is insertion order, which follows the sample order: deterministic.
    for (const g of groups.values()) {
      const n = Math.max(1, Math.round(g.length * f));
      const perm = rng.permutation(g.length);
      for (let i = 0; i < n; i++) keep[g[perm[i]!]!] = 1;
    }
    out = { root: out.root, classes: out.classes, samples: out.samples.filter((_, i) => keep[i] === 1) };
  }
  return out;
}

/** Images per class, per split. */
export function classCounts(ds: Dataset, split?: string): number[] {
  const c = new Array<number>(ds.classes.length).fill(0);
  for (const s of ds.samples) if (split === undefined || s.split === split) c[s.label]!++;
  return c;
}
