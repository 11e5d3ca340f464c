// Planted label noise for measuring an audit: a seeded fraction of one split's samples moved to another
// class, in a copy of the dataset description (the image files are never touched). The audit's tests and
// scripts/experiments/audit.mjs build their noisy datasets here, so "which labels were flipped" is known.
import { resolveSamplePath, type Dataset } from '../data/dataset.js';
import { Rng } from '../util/rng.js';

export interface LabelFlip {
  /** Index into the dataset's samples. */
  index: number;
  /** Absolute image path. */
  path: string;
  /** The class the photo shows. */
  trueClass: string;
  /** The class the copy gives it. */
  givenClass: string;
}

export interface FlipOptions {
  /** Fraction of the split's samples to flip, rounded to the nearest count (default 0.05). */
  fraction?: number;
  seed?: number;
  /** Split whose labels are flipped (default 'train'); the other splits keep theirs. */
  split?: string;
}

/**
 * A copy of the dataset with round(fraction × n) labels of one split flipped, each to a uniformly chosen
 * other class, and the list of flips. Same seed, same flips. Paths in the copy are absolute, so it can be
 * written anywhere as a goodsrec manifest (`toManifest`).
 */
export function flipLabels(ds: Dataset, o: FlipOptions = {}): { dataset: Dataset; flips: LabelFlip[] } {
  const fraction = o.fraction ?? 0.05;
  const split = o.split ?? 'train';
  if (!(fraction >= 0 && fraction <= 1))
    throw new RangeError(`flip fraction: expected [0, 1] but received ${fraction}`);
  if (ds.classes.length < 2) throw new Error(`dataset ${ds.root}: flipping labels needs at least 2 classes`);
  const pool = ds.samples.flatMap((s, i) => (s.split === split ? [i] : []));
  if (!pool.length) throw new Error(`dataset ${ds.root}: split '${split}' has no samples to flip`);
  const rng = new Rng(o.seed ?? 0);
  const n = Math.round(fraction * pool.length);
  const chosen = rng
    .shuffle([...pool])
    .slice(0, n)
    .sort((a, b) => a - b);
  const samples = ds.samples.map((s) => ({ ...s, path: resolveSamplePath(ds, s) }));
  const flips = chosen.map((i) => {
    const s = samples[i]!;
    // Uniform over the other classes: draw from C - 1 and skip the true one.
    const r = rng.int(0, ds.classes.length - 1);
    const label = r >= s.label ? r + 1 : r;
    const flip = { index: i, path: s.path, trueClass: ds.classes[s.label]!, givenClass: ds.classes[label]! };
    samples[i] = { ...s, label };
    return flip;
  });
  return { dataset: { root: ds.root, classes: ds.classes, samples }, flips };
}

/** The JSON of a goodsrec manifest (`{ classes, samples: [{ path, class, split }] }`) for a dataset. */
export function toManifest(ds: Dataset): {
  classes: string[];
  samples: { path: string; class: string; split: string }[];
} {
  return {
    classes: ds.classes,
    samples: ds.samples.map((s) => ({ path: resolveSamplePath(ds, s), class: ds.classes[s.label]!, split: s.split })),
  };
}
