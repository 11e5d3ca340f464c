// Accuracy by training frequency (issue 28): the long-tail literature's many (> 100 training photos), medium
// (20-100) and few (< 20) shot groups, and the tail's worst classes, from an evaluation's per-class numbers and
// the run's training photos per class.
import { classCounts, selectSplits, loadDataset } from '../data/index.js';
import type { ClassifierMetrics, FrequencyBreakdown, FrequencyGroupRecord } from '../run/eval-file.js';
import { RunFolder } from '../run/run-folder.js';

/** Upper bound of the few-shot group (exclusive) and of the medium group (inclusive). */
export const FEW_SHOT_BELOW = 20;
export const MANY_SHOT_ABOVE = 100;
const WORST_TAIL = 20;

export type FrequencyGroup = 'many' | 'medium' | 'few';

export function frequencyGroup(trainPhotos: number): FrequencyGroup {
  return trainPhotos > MANY_SHOT_ABOVE ? 'many' : trainPhotos >= FEW_SHOT_BELOW ? 'medium' : 'few';
}

/**
 * The breakdown of `m` (indexed like the model's classes) given `trainCounts[k]`, the training photos of class k.
 * Group top-1 counts photos; mean class accuracy averages the group's classes that have evaluated photos.
 */
export function frequencyBreakdown(
  m: Pick<ClassifierMetrics, 'perClass' | 'confusion'>,
  trainCounts: readonly number[],
  source: string,
): FrequencyBreakdown {
  if (trainCounts.length !== m.perClass.length)
    throw new RangeError(`frequency breakdown: ${trainCounts.length} training counts for ${m.perClass.length} classes`);
  const groups = { many: [] as number[], medium: [] as number[], few: [] as number[] };
  m.perClass.forEach((p, k) => {
    if (p.support > 0) groups[frequencyGroup(trainCounts[k]!)].push(k);
  });
  const record = (ks: number[]): FrequencyGroupRecord => {
    const samples = ks.reduce((s, k) => s + m.perClass[k]!.support, 0);
    const correct = ks.reduce((s, k) => s + m.perClass[k]!.correct, 0);
    return {
      classes: ks.length,
      samples,
      correct,
      top1: samples ? correct / samples : null,
      meanClassAccuracy: ks.length ? ks.reduce((s, k) => s + m.perClass[k]!.accuracy, 0) / ks.length : null,
    };
  };
  const confusedWith = (k: number): string | null => {
    const row = m.confusion[k] ?? [];
    let best = -1;
    row.forEach((n, j) => {
      if (j !== k && n > 0 && (best < 0 || n > row[best]!)) best = j;
    });
    return best < 0 ? null : m.perClass[best]!.name;
  };
  const worstTail = [...groups.few]
    .sort((a, b) => m.perClass[a]!.accuracy - m.perClass[b]!.accuracy || trainCounts[a]! - trainCounts[b]! || a - b)
    .slice(0, WORST_TAIL)
    .map((k) => {
      const p = m.perClass[k]!;
      return {
        name: p.name,
        train: trainCounts[k]!,
        support: p.support,
        correct: p.correct,
        accuracy: p.accuracy,
        confusedWith: confusedWith(k),
      };
    });
  return { source, many: record(groups.many), medium: record(groups.medium), few: record(groups.few), worstTail };
}

/**
 * The training photos per class (the model's class order) of a run: recorded in its dataset.json since issue 28;
 * for older runs trained on the whole split, counted from the dataset's train split when it is still there.
 * undefined when neither is known (a subset run of before, a moved dataset).
 */
export function runTrainCounts(
  runDir: string,
  classes: readonly string[],
): { counts: number[]; source: string } | undefined {
  const rec = new RunFolder(runDir).readDataset();
  if (!rec) return undefined;
  if (rec.trainCounts?.length === classes.length) return { counts: rec.trainCounts, source: 'dataset.json' };
  if (!rec.root || (rec.fraction !== undefined && rec.fraction < 1)) return undefined;
  try {
    const train = selectSplits(loadDataset(rec.root), rec.trainSplit ?? 'train');
    const byName = new Map(train.classes.map((c, i) => [c, i]));
    const n = classCounts(train);
    return {
      counts: classes.map((c) => n[byName.get(c) ?? -1] ?? 0),
      source: `the '${rec.trainSplit ?? 'train'}' split of ${rec.root}`,
    };
  } catch {
    return undefined;
  }
}
