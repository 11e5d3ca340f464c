// Fabricated run folders for the FixRes / ensemble / report tests: a model with
// seeded random weights and non-trivial BatchNorm statistics, saved exactly as
// the trainer saves a run (config, classes, preprocess, dataset, checkpoint,
// pointers), without spending minutes on training.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as T from '../src/tensor/index.js';
import { createModel } from '../src/models/index.js';
import { loadDataset } from '../src/data/index.js';
import { DEFAULT_CONFIG, type TrainConfig } from '../src/run/config.js';
import { saveCheckpoint, writePointer } from '../src/run/checkpoint.js';
import type { PreprocessConfig } from '../src/run/pipelines.js';
import { writeJsonAtomic } from '../src/util/atomic.js';

export const repoRoot = resolve(import.meta.dirname, '..', '..');
export const sample = join(repoRoot, 'examples', 'grocery-sample');

export interface FakeRunOptions {
  model?: string;
  size?: number;
  seed?: number;
  resize?: 'letterbox' | 'squash';
  checkpoints?: number;
}

/** Writes a run folder at dir; checkpoints epoch-0001.. with slightly different weights (the last is best). */
export async function makeRun(dir: string, o: FakeRunOptions = {}): Promise<void> {
  const name = o.model ?? 'resnet18';
  const size = o.size ?? 32;
  const classes = loadDataset(sample).classes;
  T.manualSeed(o.seed ?? 0);
  const model = createModel(name, { numClasses: classes.length, log: null });
  // Non-trivial BN statistics so "unchanged" means something.
  T.noGrad(() =>
    T.tidy(() => {
      for (const [k, t] of model.stateTensors()) {
        if (k.endsWith('running_mean')) t.copy_(T.randn(t.shape).mul(0.1));
        if (k.endsWith('running_var')) t.copy_(T.rand(t.shape).add(0.5));
      }
    }),
  );
  const config: TrainConfig = {
    ...DEFAULT_CONFIG,
    data: { ...DEFAULT_CONFIG.data, root: sample },
    model: { ...DEFAULT_CONFIG.model, name },
    input: { ...DEFAULT_CONFIG.input, size, resize: o.resize ?? 'letterbox' },
    out: resolve(dir, '..'),
  };
  const pre: PreprocessConfig = {
    size,
    resize: o.resize ?? 'letterbox',
    cropPct: 0.875,
    mean: [0.5, 0.45, 0.4],
    std: [0.25, 0.24, 0.23],
  };
  mkdirSync(join(dir, 'checkpoints'), { recursive: true });
  writeJsonAtomic(join(dir, 'config.json'), config);
  writeJsonAtomic(join(dir, 'classes.json'), classes);
  writeJsonAtomic(join(dir, 'preprocess.json'), pre);
  writeJsonAtomic(join(dir, 'dataset.json'), { root: sample, trainSplit: 'train', valSplit: 'test' });
  let last = '';
  for (let i = 1; i <= (o.checkpoints ?? 1); i++) {
    if (i > 1)
      T.noGrad(() =>
        T.tidy(() => {
          for (const p of model.parameters()) p.add_(T.randn(p.shape).mul(0.01));
        }),
      );
    last = `epoch-${String(i).padStart(4, '0')}`;
    const sd = model.stateDict();
    try {
      await saveCheckpoint(join(dir, 'checkpoints'), last, {
        model: sd,
        optimizer: {},
        state: { position: { epoch: i, step: 0 }, model: name },
      });
    } finally {
      for (const t of sd.values()) t.dispose();
    }
  }
  writePointer(dir, 'latest', last);
  writePointer(dir, 'best', last);
  model.dispose();
}
