// Matching a dataset to a trained model: the dataset the run recorded, and the dataset's labels mapped
// onto the model's class list by name.
import { loadDataset, selectSplits, type Dataset } from '../data/index.js';
import { RunFolder } from '../run/run-folder.js';

/** Maps the dataset's labels onto the model's class list by name; classes the model lacks are an error. */
export function alignClasses(ds: Dataset, modelClasses: readonly string[], source: string): Dataset {
  const index = new Map(modelClasses.map((c, i) => [c, i]));
  const unknown = ds.classes.filter((c, i) => !index.has(c) && ds.samples.some((s) => s.label === i));
  if (unknown.length) {
    const list = `${unknown.slice(0, 8).join(', ')}${unknown.length > 8 ? ', ...' : ''}`;
    throw new Error(`${source}: ${unknown.length} class(es) the model was not trained on: ${list}`);
  }
  const samples = ds.samples.map((s) => ({ ...s, label: index.get(ds.classes[s.label]!)! }));
  return { root: ds.root, classes: [...modelClasses], samples, ...(ds.skipped ? { skipped: ds.skipped } : {}) };
}

/** The dataset folder a run was trained on (its dataset.json), if the run records one. */
export function recordedDataRoot(runDir: string | undefined): string | undefined {
  return runDir ? new RunFolder(runDir).readDataset()?.root : undefined;
}

/** One split of a dataset with its own class indices; an empty split is an error. */
export function loadSplit(dataRoot: string, split: string): Dataset {
  const ds = selectSplits(loadDataset(dataRoot), split);
  if (ds.samples.length === 0) throw new Error(`dataset ${dataRoot}: split '${split}' has no images`);
  return ds;
}

/** One split of a dataset with the model's class indices; an empty split is an error. */
export function loadAlignedSplit(dataRoot: string, split: string, modelClasses: readonly string[]): Dataset {
  return alignClasses(loadSplit(dataRoot, split), modelClasses, dataRoot);
}
