// The start of a run folder: its config is written (atomically) before any slow work, so a run killed
// before its first checkpoint can still be continued with --resume (from step 0); and the inputs the
// dataset walk skipped are summarised before the first step.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Dataset } from '../data/index.js';
import { formatSkipped, type SkippedEntry } from '../data/walk.js';
import { writeJsonAtomic } from '../util/atomic.js';
import type { TrainConfig } from '../run/config.js';
import { readRunInfo, readRunJson, type RunInfo } from '../run/run-folder.js';

/** Writes config.json of a new run folder (the file that makes it a run folder). */
export function writeRunStart(runDir: string, c: TrainConfig): void {
  writeJsonAtomic(join(runDir, 'config.json'), c);
}

/**
 * The stored config of a run folder to resume, and its stored description (classes, pre-processing) when
 * the run got as far as writing it; `stored` is null for a run killed before that (it restarts from step 0).
 */
export function readRunStart(runDir: string, given: string): { config: TrainConfig; stored: RunInfo | null } {
  if (!existsSync(join(runDir, 'config.json'))) throw new Error(`--resume ${given}: not a run folder (no config.json)`);
  const complete = ['classes.json', 'preprocess.json'].every((f) => existsSync(join(runDir, f)));
  if (!complete) return { config: readRunJson<TrainConfig>(runDir, 'config.json'), stored: null };
  const stored = readRunInfo(runDir);
  return { config: stored.config, stored };
}

/**
 * Logs the folder entries the dataset walk skipped (dangling symlinks, FIFOs, unreadable files...) and
 * lists them in skipped-inputs.json; returns how many.
 */
export function reportSkippedInputs(
  runDir: string,
  datasets: readonly (Dataset | null)[],
  log: (line: string) => void,
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
  const file = join(runDir, 'skipped-inputs.json');
  writeJsonAtomic(file, skipped);
  log(
    [
      `${skipped.length} dataset entr${skipped.length === 1 ? 'y is' : 'ies are'} not readable image files and will be skipped (${file}):`,
      ...formatSkipped(skipped, 10),
    ].join('\n'),
  );
  return skipped.length;
}
