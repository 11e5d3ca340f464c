// The start of a run folder: a new one gets its config written (atomically) before any slow work, so a
// run killed before its first checkpoint can still be continued with --resume (from step 0); a resumed
// one gives back its stored config and, when it got that far, its classes and pre-processing. The inputs
// the dataset walk skipped are summarised before the first step.
import { resolve } from 'node:path';
import type { Dataset } from '../data/index.js';
import { formatSkipped, type SkippedEntry } from '../data/walk.js';
import { DEFAULT_CONFIG, validateConfig, type TrainConfig } from '../run/config.js';
import { RUN_FILE } from '../run/layout.js';
import { RunFolder, type RunInfo } from '../run/run-folder.js';
import type { DistributedSession } from '../distributed/session.js';

/** The opened run folder: the config to train with, where to resume from, and what the folder already records. */
export interface RunStart {
  c: TrainConfig;
  folder: RunFolder;
  /** The latest checkpoint of a resumed run (none: from step 0). */
  resumeFrom: string | undefined;
  /** A resumed run's classes and pre-processing (null: new, or killed before recording them). */
  stored: RunInfo | null;
}

function makeRunName(c: TrainConfig): string {
  const t = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${c.model.name}-${t}`;
}

/**
 * The stored config of a run folder to resume, and its stored description (classes, pre-processing) when
 * the run got as far as writing it; `stored` is null for a run killed before that (it restarts from step 0).
 */
export function readRunStart(folder: RunFolder, given: string): { config: TrainConfig; stored: RunInfo | null } {
  if (!folder.isRun()) throw new Error(`--resume ${given}: not a run folder (no ${RUN_FILE.config})`);
  if (!folder.isDescribed()) return { config: folder.readConfig(), stored: null };
  const stored = folder.readInfo();
  return { config: stored.config, stored };
}

/**
 * Opens the run folder: a new one (named by rank 0, config.json written first), or the one to resume.
 * Rank 0 holds it (see RunFolder.create): a folder moved during training is followed, never re-created.
 */
export function openRunFolder(
  configIn: TrainConfig,
  o: { resume?: string | undefined; name?: string | undefined },
  dist: DistributedSession | null,
  log: (line: string) => void,
): RunStart {
  const isMain = dist === null || dist.isMain;
  const moved = (from: string, to: string): void => log(`run folder moved: ${from} -> ${to}; writing there`);
  if (o.resume) {
    const folder = new RunFolder(o.resume, moved);
    const { config: c, stored } = readRunStart(folder, o.resume);
    validateConfig(c);
    const resumeFrom = folder.pointer('latest');
    if (!resumeFrom) log(`resume: ${folder.root} has no checkpoint yet; starting it from the beginning`);
    if (isMain) folder.create();
    return { c, folder, resumeFrom, stored };
  }
  let runDir = resolve(configIn.out, o.name ?? makeRunName(configIn));
  if (isMain && new RunFolder(runDir).isRun())
    throw new Error(`run folder ${runDir} already exists: pick another --name, or continue it with --resume ${runDir}`);
  // Rank 0 names the run (the others' clocks differ); the world size and global batch are recorded with it.
  if (dist) runDir = dist.share('runDir', isMain ? runDir : undefined);
  const world = dist?.worldSize ?? 1;
  const c: TrainConfig = {
    ...configIn,
    distributed: {
      ...(configIn.distributed ?? DEFAULT_CONFIG.distributed),
      worldSize: world,
      globalBatch: configIn.batchSize * configIn.accumulate * world,
    },
  };
  const folder = new RunFolder(runDir, moved);
  if (isMain) folder.create().writeStart(c);
  return { c, folder, resumeFrom: undefined, stored: null };
}

/**
 * Logs the folder entries the dataset walk skipped (dangling symlinks, FIFOs, unreadable files...) and
 * lists them in skipped-inputs.json (rank 0); returns how many.
 */
export function reportSkippedInputs(
  folder: RunFolder,
  datasets: readonly (Dataset | null)[],
  log: (line: string) => void,
  write = true,
): number {
  const seen = new Set<string>();
  const skipped: SkippedEntry[] = [];
  for (const d of datasets)
    for (const s of d?.skipped ?? [])
      if (!seen.has(s.path)) {
        seen.add(s.path);
        skipped.push(s);
      }
  if (skipped.length === 0) return 0;
  if (write) folder.writeJson('skippedInputs', skipped);
  log(
    [
      `${skipped.length} dataset entr${skipped.length === 1 ? 'y is' : 'ies are'} not readable image files and will be skipped (${folder.path('skippedInputs')}):`,
      ...formatSkipped(skipped, 10),
    ].join('\n'),
  );
  return skipped.length;
}
