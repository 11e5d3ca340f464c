// Shared by the serve tests: the embedded grocery sample and a stand-in
// recognizer (no training run needed) exported to ONNX.
import { mkdirSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as T from '../src/tensor/index.js';
import { createModel, type ResNet } from '../src/models/index.js';
import type { Linear } from '../src/nn/layers/linear.js';
import { BatchNorm2d } from '../src/nn/layers/norm.js';
import { processFile, type Triple } from '../src/data/index.js';
import { DEFAULT_CONFIG } from '../src/run/config.js';
import type { LoadedRecognizer } from '../src/eval/predictor.js';
import { evalPipeline, type PreprocessConfig } from '../src/run/pipelines.js';
import { exportLoaded } from '../src/serve/onnx/export.js';

export const repoRoot = resolve(import.meta.dirname, '..', '..');
const sampleTest = join(repoRoot, 'examples', 'grocery-sample', 'test');
const classes = readdirSync(sampleTest).sort();

export const SAMPLE = {
  classes,
  /** Every sample test photo, class by class. */
  photos: classes.flatMap((c) =>
    readdirSync(join(sampleTest, c))
      .sort()
      .map((f) => join(sampleTest, c, f)),
  ),
  preprocess: {
    size: 64,
    resize: 'letterbox',
    cropPct: 0.875,
    mean: DEFAULT_CONFIG.input.mean as Triple,
    std: DEFAULT_CONFIG.input.std as Triple,
  } as PreprocessConfig,
};

/**
 * A seeded resnet18 with non-trivial BN statistics and a nearest-class-mean classifier stands in for a
 * trained run (training takes minutes); exported to <work>/export.
 */
export async function standInRecognizer(work: string): Promise<{ recognizer: LoadedRecognizer; exportDir: string }> {
  T.manualSeed(7);
  const model = createModel('resnet18', { numClasses: classes.length, log: null });
  T.noGrad(() => {
    for (const m of model.modules()) {
      if (!(m instanceof BatchNorm2d)) continue;
      m.running_mean!.copy_(T.tidy(() => T.randn(m.running_mean!.shape).mul(0.2)));
      m.running_var!.copy_(T.tidy(() => T.rand(m.running_var!.shape).add(0.5)));
    }
  });
  model.eval();
  await nearestMeanClassifier(model as ResNet, SAMPLE.preprocess);
  const recognizer: LoadedRecognizer = {
    model,
    modelName: 'resnet18',
    classes,
    preprocess: SAMPLE.preprocess,
    device: 'cpu',
    checkpointDir: 'test',
    runDir: undefined,
    ema: false,
  };
  const exportDir = join(work, 'export');
  mkdirSync(exportDir, { recursive: true });
  exportLoaded(recognizer, { outDir: exportDir });
  return { recognizer, exportDir };
}

/**
 * Sets the classifier to nearest class mean (score = f.mu_c - |mu_c|^2 / 2) over pooled features of
 * 4 training photos per class, so the stand-in model predicts different classes for different photos.
 */
async function nearestMeanClassifier(model: ResNet, preprocess: PreprocessConfig): Promise<void> {
  const trainDir = join(repoRoot, 'examples', 'grocery-sample', 'train');
  const pipe = evalPipeline(preprocess);
  const n = 3 * preprocess.size * preprocess.size;
  const rows: number[][] = [];
  for (const c of classes) {
    const files = readdirSync(join(trainDir, c))
      .sort()
      .slice(0, 4)
      .map((f) => join(trainDir, c, f));
    const imgs = await Promise.all(files.map((f) => processFile(f, pipe, 0)));
    const x = new Float32Array(imgs.length * n);
    imgs.forEach((im, i) => x.set(im.data as Float32Array, i * n));
    rows.push(
      T.tidy(() =>
        T.noGrad(() => {
          const f = model.forwardHead(
            model.forwardFeatures(T.tensor(x, [imgs.length, 3, preprocess.size, preprocess.size])),
            true,
          );
          return Array.from(f.mean(0).data<'float32'>());
        }),
      ),
    );
  }
  const bias = rows.map((r) => -0.5 * r.reduce((a, v) => a + v * v, 0));
  // Logits of order 10 (not hundreds), so float rounding stays far below the probability tolerance.
  const scale = 10 / Math.max(...bias.map(Math.abs));
  const fc = model.fc as Linear;
  T.noGrad(() => {
    fc.weight.copy_(
      T.tidy(() =>
        T.tensor(
          Float32Array.from(rows.flat(), (v) => v * scale),
          [classes.length, rows[0]!.length],
        ),
      ),
    );
    fc.bias!.copy_(
      T.tidy(() =>
        T.tensor(
          Float32Array.from(bias, (v) => v * scale),
          [classes.length],
        ),
      ),
    );
  });
}
