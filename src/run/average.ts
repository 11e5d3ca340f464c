// Checkpoint averaging within one run: the mean of the last k checkpoints' weights, saved as a
// checkpoint of the same run (eval, predict, export and serve load it like any other).
import { basename } from 'node:path';
import * as T from '../tensor/index.js';
import { listCheckpoints, loadCheckpoint } from './checkpoint.js';
import { RunFolder } from './run-folder.js';

/**
 * Averages the weights of the last k checkpoints of a run (floating tensors:
 * arithmetic mean; integer buffers such as num_batches_tracked: the newest)
 * into checkpoints/<name>; returns its path.
 */
export async function averageCheckpoints(
  runDir: string,
  last: number,
  name = `avg-last${last}`,
): Promise<{ dir: string; from: string[] }> {
  if (!(Number.isInteger(last) && last >= 1)) throw new Error(`--last: expected an integer >= 1 but received ${last}`);
  const all = listCheckpoints(runDir);
  if (all.length < last)
    throw new Error(
      `${runDir}: ${all.length} checkpoint(s) kept, fewer than --last ${last} (keepCheckpoints limits how many a run keeps)`,
    );
  const from = all.slice(-last);
  const sums = new Map<string, T.Tensor>();
  const newest = loadCheckpoint(from[from.length - 1]!);
  try {
    for (const dir of from) {
      const ck = dir === newest.dir ? newest : loadCheckpoint(dir);
      if (ck.model.size !== newest.model.size)
        throw new Error(
          `${dir}: ${ck.model.size} tensors, ${newest.model.size} in ${newest.dir}; not checkpoints of one model`,
        );
      T.tidy(() => {
        for (const [k, raw] of ck.model) {
          if (!newest.model.has(k)) throw new Error(`${dir}: tensor '${k}' is not in ${newest.dir}`);
          const t = T.fromRaw(raw);
          if (!T.isFloating(t.dtype)) continue;
          const prev = sums.get(k);
          const next = (prev ? prev.add(t.to({ dtype: 'float64' })) : t.to({ dtype: 'float64' })).keep();
          prev?.dispose();
          sums.set(k, next);
        }
      });
    }
    const model = T.tidy(
      () =>
        new Map(
          [...newest.model].map(([k, raw]) => {
            const t = T.fromRaw(raw);
            return [k, (sums.has(k) ? sums.get(k)!.div(from.length).to({ dtype: t.dtype }) : t).keep()] as const;
          }),
        ),
    );
    const { format: _f, savedAt: _s, optimizer: _o, ...state } = newest.state;
    try {
      const dir = await new RunFolder(runDir).saveCheckpoint(name, {
        model,
        optimizer: {},
        state: { ...state, averagedFrom: from.map((d) => basename(d)) },
      });
      return { dir, from };
    } finally {
      for (const t of model.values()) t.dispose();
    }
  } finally {
    for (const t of sums.values()) t.dispose();
  }
}
