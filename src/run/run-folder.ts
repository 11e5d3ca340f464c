// A run folder: its own description (config.json, classes.json, preprocess.json, versions.json,
// dataset.json), its records (metrics.jsonl, bad-files.json, ...), its checkpoints and the pointers to
// them. RunFolder is the one way in: every path of the layout (layout.ts) and every write goes through it.
// A folder a writer holds (`pin`) is followed when it is moved meanwhile, and never re-created at its old
// path: a training stopped after `mv RUN elsewhere` saves its last checkpoint into `elsewhere`.
import {
  appendFileSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
} from 'node:fs';
import { constants } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';
import { pruneCheckpoints, readPointer, saveCheckpoint, writePointer, type CheckpointContent } from './checkpoint.js';
import { migrateConfig, type TrainConfig } from './config.js';
import { CHECKPOINTS_DIR, evalFileName, RUN_FILE, type PointerName, type RunFileRole } from './layout.js';
import type { PreprocessConfig } from './pipelines.js';

/** What a run folder stores besides checkpoints. */
export interface RunInfo {
  config: TrainConfig;
  classes: string[];
  preprocess: PreprocessConfig;
}

/** dataset.json: the dataset a run was trained on (FixRes and older runs record fewer fields). */
export interface DatasetRecord {
  root?: string;
  classes?: number;
  train?: number;
  val?: number;
  trainSplit?: string;
  valSplit?: string;
  fraction?: number;
  /** Training photos per class, in the class index's order, after data.fraction (since issue 28). */
  trainCounts?: number[];
}

/** Everything a new run folder records before its first step. */
export interface RunFiles extends RunInfo {
  /** Library and machine versions the run started with. */
  versions: Record<string, unknown>;
  /** The dataset: root, class and sample counts, splits. */
  dataset: DatasetRecord;
}

/** The folder was moved or deleted while a writer held it, and where it went cannot be told. */
export class RunFolderGoneError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunFolderGoneError';
  }
}

/** Identity of the folder a writer holds: its inode, and an open descriptor that follows renames. */
interface Pin {
  dev: number;
  ino: number;
  fd: number | null;
}

function identity(path: string): { dev: number; ino: number } | null {
  try {
    const st = statSync(path);
    return st.isDirectory() ? { dev: st.dev, ino: st.ino } : null;
  } catch {
    return null;
  }
}

export class RunFolder {
  private current: string;
  private pinned: Pin | null = null;

  /** `onMoved` hears where a held folder went (once per move). */
  constructor(
    root: string,
    private readonly onMoved?: (from: string, to: string) => void,
  ) {
    this.current = resolve(root);
  }

  /** The folder's path now (a held folder that was moved: its new path; one that is gone: its last path). */
  get root(): string {
    try {
      return this.here();
    } catch {
      return this.current;
    }
  }

  path(role: RunFileRole): string {
    return join(this.root, RUN_FILE[role]);
  }

  get checkpointsDir(): string {
    return join(this.root, CHECKPOINTS_DIR);
  }

  checkpoint(name: string): string {
    return join(this.checkpointsDir, name);
  }

  /** Where `goodsrec eval` writes by default. */
  evalFile(split: string, kind: 'classifier' | 'gallery' = 'classifier'): string {
    return join(this.root, evalFileName(split, kind));
  }

  has(role: RunFileRole): boolean {
    return existsSync(this.path(role));
  }

  /** config.json is there (written first: a run killed before anything else is still a run). */
  isRun(): boolean {
    return this.has('config');
  }

  /** classes.json and preprocess.json are there: the run got as far as recording its model's inputs. */
  isDescribed(): boolean {
    return this.has('classes') && this.has('preprocess');
  }

  /** One JSON file of the folder; errors name the file. */
  readJson<X>(role: RunFileRole): X {
    const path = this.path(role);
    try {
      return JSON.parse(readFileSync(path, 'utf8')) as X;
    } catch (e) {
      throw new Error(`${path}: ${(e as Error).message}`);
    }
  }

  /** The stored config, migrated: an option added after the run was written gets its old meaning. */
  readConfig(): TrainConfig {
    const c = this.readJson<Record<string, unknown>>('config');
    migrateConfig(c);
    return c as unknown as TrainConfig;
  }

  readInfo(): RunInfo {
    return {
      config: this.readConfig(),
      classes: this.readJson<string[]>('classes'),
      preprocess: this.readJson<PreprocessConfig>('preprocess'),
    };
  }

  /** dataset.json, or undefined for a folder without one. */
  readDataset(): DatasetRecord | undefined {
    return this.has('dataset') ? this.readJson<DatasetRecord>('dataset') : undefined;
  }

  /** The checkpoint folder `latest.json` / `best.json` names. */
  pointer(which: PointerName): string | undefined {
    return readPointer(this.root, which);
  }

  // --- writes: each asks where the folder is first ---------------------------------------------

  /**
   * Creates the folder (and its checkpoints folder) when needed and holds it: later writes follow it when it
   * is moved, and refuse when it is gone. `release()` lets go.
   */
  create(): this {
    mkdirSync(join(this.current, CHECKPOINTS_DIR), { recursive: true });
    return this.pin();
  }

  /** Holds an existing folder (see create). */
  pin(): this {
    if (this.pinned) return this;
    const id = identity(this.current);
    if (!id) throw new RunFolderGoneError(`${this.current}: no such folder`);
    let fd: number | null = null;
    try {
      fd = openSync(this.current, constants.O_RDONLY | (constants.O_DIRECTORY ?? 0));
    } catch {
      fd = null; // without a descriptor a moved folder is refused instead of followed
    }
    this.pinned = { ...id, fd };
    return this;
  }

  release(): void {
    if (this.pinned?.fd != null) closeSync(this.pinned.fd);
    this.pinned = null;
  }

  /** The folder's path for a write: the held folder wherever it is now; a folder that is gone is refused. */
  private here(): string {
    const p = this.pinned;
    if (!p) return this.current;
    const now = identity(this.current);
    if (now && now.dev === p.dev && now.ino === p.ino) return this.current;
    // Linux names a descriptor's folder by its current path, with " (deleted)" once it is removed.
    let to: string | null = null;
    try {
      if (p.fd !== null) to = readlinkSync(`/proc/self/fd/${p.fd}`);
    } catch {
      to = null;
    }
    const moved = to && !to.endsWith(' (deleted)') ? identity(to) : null;
    if (to && moved && moved.dev === p.dev && moved.ino === p.ino) {
      const from = this.current;
      this.current = to;
      this.onMoved?.(from, to);
      return to;
    }
    throw new RunFolderGoneError(
      `run folder ${this.current} was ${to?.endsWith(' (deleted)') ? 'deleted' : 'moved or deleted'} while in use; ` +
        'nothing more is written (writing at its old path would start a second, partial run folder)',
    );
  }

  /** Runs a write at the folder's path; when the folder moved during it (the write failed), once more at the new path. */
  private write<X>(fn: (root: string) => X): X {
    const root = this.here();
    try {
      return fn(root);
    } catch (e) {
      if (this.here() === root) throw e;
      return fn(this.current);
    }
  }

  writeJson(role: RunFileRole, value: unknown): void {
    this.write((root) => writeJsonAtomic(join(root, RUN_FILE[role]), value));
  }

  /** config.json of a new run, before any slow work (the file that makes it a run folder). */
  writeStart(config: TrainConfig): void {
    this.writeJson('config', config);
  }

  /** The run's description, each file atomically (config.json again: it now holds the final values). */
  writeFiles(f: RunFiles): void {
    this.writeJson('config', f.config);
    this.writeJson('classes', f.classes);
    this.writeJson('preprocess', f.preprocess);
    this.writeJson('versions', f.versions);
    this.writeJson('dataset', f.dataset);
  }

  /** One line of metrics.jsonl (appended: a record is a whole line or, after a kill, a cut last line). */
  appendMetric(record: object): void {
    this.write((root) => appendFileSync(join(root, RUN_FILE.metrics), `${JSON.stringify(record)}\n`));
  }

  /** metrics.jsonl written whole, atomically. */
  writeMetrics(records: readonly object[]): void {
    const text = records.map((r) => `${JSON.stringify(r)}\n`).join('');
    this.write((root) => writeFileAtomic(join(root, RUN_FILE.metrics), text));
  }

  writePointer(which: PointerName, checkpointName: string, extra: Record<string, unknown> = {}): void {
    this.write((root) => writePointer(root, which, checkpointName, extra));
  }

  /** Writes checkpoints/<name>/ atomically; returns its path. The caller still owns the tensors. */
  async saveCheckpoint(name: string, content: CheckpointContent): Promise<string> {
    const root = this.here();
    try {
      // The checkpoints folder exists (create()); not re-creating it keeps a moved folder from reappearing here.
      return await saveCheckpoint(join(root, CHECKPOINTS_DIR), name, content, { createParent: false });
    } catch (e) {
      if (this.here() === root) throw e;
      // Moved while writing: the temp folder went with it (its cleanup looked at the old path).
      const dir = join(this.current, CHECKPOINTS_DIR);
      for (const n of readdirSync(dir))
        if (n.startsWith(`.${name}.tmp-${process.pid}-`)) rmSync(join(dir, n), { recursive: true, force: true });
      return saveCheckpoint(dir, name, content);
    }
  }

  /** Deletes periodic checkpoints beyond the newest `keep`, never the ones best.json and latest.json name. */
  pruneCheckpoints(keep: number): void {
    const root = this.here();
    const protect = (['best', 'latest'] as const)
      .map((w) => readPointer(root, w))
      .filter((p): p is string => p !== undefined)
      .map((p) => p.split('/').pop()!);
    pruneCheckpoints(join(root, CHECKPOINTS_DIR), keep, protect);
  }
}

/** A run folder's config, classes and pre-processing; errors name the file. */
export function readRunInfo(runDir: string): RunInfo {
  return new RunFolder(runDir).readInfo();
}
