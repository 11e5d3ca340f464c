// FixRes done for real: the trunk is frozen (requiresGrad false), every
// BatchNorm stays in eval mode, and only the classifier is re-trained at the
// test resolution on the test-time pre-processing (evalPipeline at the new
// size, optionally a horizontal flip). Because the frozen trunk in eval mode
// is a fixed function of the (deterministic) eval input, its pooled features
// are computed once per size and the classifier trains on them: the same
// optimisation as running the whole network every step, at a fraction of the
// cost. A resolution sweep evaluates each size before and after.
import { join, resolve } from 'node:path';
import * as T from '../tensor/index.js';
import { DataLoader, loadDataset, selectSplits, type Dataset } from '../data/index.js';
import { CosineWarmupLR, createOptimizer } from '../optim/index.js';
import type { ClassifierModel } from '../models/index.js';
import { loadRecognizer } from '../eval/predictor.js';
import { MetricsAccumulator, type EvalMetrics } from '../eval/metrics.js';
import { Rng, deriveSeed } from '../util/rng.js';
import { goodsrecVersion } from '../util/version.js';
import { CheckpointPolicy } from '../run/checkpoint-policy.js';
import { fixresCheckpointName, fixresFolderName } from '../run/layout.js';
import { RunFolder } from '../run/run-folder.js';
import { evalPipeline, type PreprocessConfig } from '../run/pipelines.js';
import { createLoss } from './loss.js';

export interface FixResOptions {
  /** Source run folder or checkpoint folder. */
  run: string;
  /** Test resolutions to try (one = plain FixRes). */
  sizes: number[];
  /** Classifier fine-tuning epochs at each size (0 = only evaluate). */
  epochs: number;
  lr?: number;
  momentum?: number;
  weightDecay?: number;
  batchSize?: number;
  /** Class-balanced sampling: decoupled classifier re-training for the long tail. */
  classBalanced?: boolean;
  /** Also train on the horizontally flipped view (chosen at random per sample and epoch). */
  flip?: boolean;
  /** Label smoothing (default: the run's). */
  labelSmoothing?: number;
  seed?: number;
  device?: T.Device;
  /** Dataset (default: the run's) and splits (default: the run's). */
  data?: string;
  trainSplit?: string;
  valSplit?: string;
  /** Decode workers (default: automatic). */
  workers?: number;
  /** Which classifiers the validation split chooses from: each size as it is and fine-tuned ('all', default), or only fine-tuned ones. */
  candidates?: 'all' | 'fine-tuned';
  /** Output run folder (default <run>/fixres-<size>). */
  out?: string;
  onLog?: (line: string) => void;
}

export interface SizeResult {
  size: number;
  before: { top1: number; top5: number; loss: number | null };
  after: { top1: number; top5: number; loss: number | null; trainLoss: number } | null;
}

export interface FixResResult {
  runDir: string;
  checkpointDir: string;
  sizes: SizeResult[];
  best: { size: number; top1: number; fineTuned: boolean };
  /** Names of the parameters that were trained. */
  trained: string[];
  seconds: number;
}

/**
 * The FixRes set-up: requiresGrad false on everything but the classifier
 * (pretrainedCfg.classifier, e.g. 'fc'), every module (BatchNorm included) in
 * eval mode. Returns the names of the parameters left trainable.
 */
export function freezeTrunk(model: ClassifierModel): string[] {
  const prefix = model.pretrainedCfg?.classifier ?? 'fc';
  model.freeze();
  const trained = model.unfreeze(prefix);
  if (trained.length === 0)
    throw new Error(`fixres: the model has no parameters under the classifier prefix '${prefix}'`);
  model.eval();
  return trained;
}

/** Pooled features of a split under the eval pre-processing at one size (and of its flipped view). */
export interface FeatureSet {
  dim: number;
  labels: Int32Array;
  /** [n * dim], row i = dataset sample i (rows of bad files stay zero; see valid). */
  features: Float32Array;
  flipped: Float32Array | null;
  valid: Uint8Array;
}

export async function extractFeatures(
  model: ClassifierModel,
  ds: Dataset,
  pre: PreprocessConfig,
  o: { flip?: boolean; batchSize?: number; device?: T.Device; workers?: number } = {},
): Promise<FeatureSet> {
  const n = ds.samples.length;
  const dim = model.numFeatures;
  const features = new Float32Array(n * dim);
  const flipped = o.flip ? new Float32Array(n * dim) : null;
  const valid = new Uint8Array(n);
  const labels = Int32Array.from(ds.samples, (s) => s.label);
  const loader = new DataLoader({
    dataset: ds,
    pipeline: evalPipeline(pre),
    batchSize: o.batchSize ?? 32,
    mode: 'eval',
    ...(o.workers !== undefined ? { workers: o.workers } : {}),
    reuseBuffers: true,
  });
  const device = o.device ?? 'cpu';
  model.eval();
  try {
    for await (const batch of loader) {
      const [f, g] = T.tidy(() =>
        T.noGrad(() => {
          let x = T.tensor(batch.data as Float32Array, batch.shape);
          x = T.batchToDevice(x, device);
          const pooled = (v: T.Tensor): Float32Array =>
            model.forwardHead(model.forwardFeatures(v), true).float().cpu().data<'float32'>().slice();
          return [pooled(x), flipped ? pooled(x.flip(3)) : null] as const;
        }),
      );
      batch.indices.forEach((idx, j) => {
        features.set(f.subarray(j * dim, (j + 1) * dim), idx * dim);
        if (flipped && g) flipped.set(g.subarray(j * dim, (j + 1) * dim), idx * dim);
        valid[idx] = 1;
      });
    }
  } finally {
    await loader.close();
  }
  return { dim, labels, features, flipped, valid };
}

/** Gathers feature rows (from the flipped copy where useFlip[i]) into a tensor [rows.length, dim]. */
function gather(fs: FeatureSet, rows: ArrayLike<number>, useFlip?: ArrayLike<number>): Float32Array {
  const out = new Float32Array(rows.length * fs.dim);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    const src = useFlip?.[i] && fs.flipped ? fs.flipped : fs.features;
    out.set(src.subarray(r * fs.dim, (r + 1) * fs.dim), i * fs.dim);
  }
  return out;
}

/** Metrics of the current classifier on cached features (every valid sample once). */
export function evaluateFeatures(
  model: ClassifierModel,
  fs: FeatureSet,
  classes: readonly string[],
  device: T.Device = 'cpu',
  batchSize = 256,
): EvalMetrics {
  const acc = new MetricsAccumulator(classes);
  const rows = [...fs.valid.keys()].filter((i) => fs.valid[i]);
  const cls = model.getClassifier();
  for (let s = 0; s < rows.length; s += batchSize) {
    const ids = rows.slice(s, s + batchSize);
    const labels = ids.map((i) => fs.labels[i]!);
    const scores = T.tidy(() =>
      T.noGrad(() => {
        const x = T.batchToDevice(T.tensor(gather(fs, ids), [ids.length, fs.dim]), device);
        const logits = cls.forward(x).float();
        const y = T.batchToDevice(T.tensor(Int32Array.from(labels), [ids.length]).long(), device);
        acc.addLoss(T.F.crossEntropy(logits, y, { reduction: 'sum' }).item(), ids.length);
        return logits.cpu().data<'float32'>().slice();
      }),
    );
    acc.add(scores, labels, ids);
  }
  return acc.result();
}

/** Trains the classifier on cached features; returns the mean training loss per epoch. */
export function fitClassifier(
  model: ClassifierModel,
  fs: FeatureSet,
  ds: Dataset,
  o: {
    epochs: number;
    lr: number;
    momentum: number;
    weightDecay: number;
    batchSize: number;
    classBalanced: boolean;
    labelSmoothing: number;
    seed: number;
    device: T.Device;
    onEpoch?: (epoch: number, loss: number, lr: number) => void;
  },
): number[] {
  const cls = model.getClassifier();
  const params = cls.parameters().filter((p) => p.requiresGrad);
  const optimizer = createOptimizer([{ params }], {
    name: 'sgd',
    lr: o.lr,
    momentum: o.momentum,
    weightDecay: o.weightDecay,
  });
  const lossFn = createLoss({ labelSmoothing: o.labelSmoothing });
  const scheduler = new CosineWarmupLR(optimizer, { epochs: o.epochs, minLr: o.lr * 1e-3 });
  // The loader is only asked for its epoch orders (shuffle or class-balanced); it never decodes an image.
  const valid = ds.samples.map((_, i) => i).filter((i) => fs.valid[i]);
  const sub: Dataset = { root: ds.root, classes: ds.classes, samples: valid.map((i) => ds.samples[i]!) };
  const order = new DataLoader({
    dataset: sub,
    pipeline: { ops: [] },
    batchSize: o.batchSize,
    mode: 'train',
    seed: o.seed,
    sampler: o.classBalanced ? 'class-balanced' : 'shuffle',
    workers: 1,
  });
  const losses: number[] = [];
  try {
    for (let epoch = 0; epoch < o.epochs; epoch++) {
      const perm = Array.from(order.epochOrder(epoch), (j) => valid[j]!);
      const rng = new Rng(deriveSeed(o.seed, epoch, 0xf1a9));
      let sum = 0;
      for (let s = 0; s < perm.length; s += o.batchSize) {
        const ids = perm.slice(s, s + o.batchSize);
        const useFlip = fs.flipped ? ids.map(() => (rng.bernoulli(0.5) ? 1 : 0)) : undefined;
        sum += T.tidy(() => {
          const x = T.batchToDevice(T.tensor(gather(fs, ids, useFlip), [ids.length, fs.dim]), o.device);
          const y = T.batchToDevice(
            T.tensor(
              Int32Array.from(ids, (i) => fs.labels[i]!),
              [ids.length],
            ).long(),
            o.device,
          );
          const loss = lossFn(cls.forward(x), y);
          loss.backward();
          return loss.item() * ids.length;
        });
        optimizer.step();
        optimizer.zeroGrad();
      }
      const lr = optimizer.paramGroups[0]!.lr;
      scheduler.step();
      losses.push(sum / perm.length);
      o.onEpoch?.(epoch + 1, sum / perm.length, lr);
    }
  } finally {
    void order.close();
  }
  return losses;
}

/** A copy of a module's state (not sharing storage), kept out of any scope. */
function snapshot(m: { stateTensors(): Map<string, T.Tensor> }): Map<string, T.Tensor> {
  return T.tidy(() => T.noGrad(() => new Map([...m.stateTensors()].map(([k, t]) => [k, t.detach().clone().keep()]))));
}

const brief = (m: EvalMetrics): { top1: number; top5: number; loss: number | null } => ({
  top1: m.top1,
  top5: m.top5,
  loss: m.loss,
});

export async function fixres(o: FixResOptions): Promise<FixResResult> {
  const started = Date.now();
  const log = (s: string): void => {
    o.onLog?.(s);
  };
  if (o.sizes.length === 0) throw new Error('fixres: no test size given');
  for (const s of o.sizes)
    if (!(Number.isInteger(s) && s >= 16))
      throw new Error(`fixres: expected sizes as integers >= 16 but received ${s}`);
  if (!(Number.isInteger(o.epochs) && o.epochs >= 0))
    throw new Error(`fixres: expected --epochs as an integer >= 0 but received ${o.epochs}`);
  const device = o.device ?? 'cpu';
  const r = loadRecognizer(o.run, { device });
  const runDir = r.runDir!;
  const source = new RunFolder(runDir);
  const config = source.readConfig();
  const dsInfo = source.readDataset() ?? {};
  const dataRoot = o.data ?? dsInfo.root ?? config.data.root;
  const trainSplit = o.trainSplit ?? dsInfo.trainSplit ?? config.data.trainSplit;
  const valSplit = o.valSplit ?? dsInfo.valSplit ?? config.data.valSplit;
  const out = resolve(o.out ?? join(runDir, fixresFolderName(o.sizes)));
  const folder = new RunFolder(out);
  if (folder.isRun()) throw new Error(`fixres: ${out} already holds a run; pick another --out`);

  const model = r.model;
  try {
    const all = loadDataset(dataRoot);
    if (JSON.stringify(all.classes) !== JSON.stringify(r.classes)) {
      throw new Error(
        `dataset ${dataRoot}: its classes differ from the run's classes.json (${all.classes.length} vs ${r.classes.length}); FixRes needs the training dataset`,
      );
    }
    const trainDs = selectSplits(all, trainSplit);
    const valDs = valSplit ? selectSplits(all, valSplit) : null;
    if (o.epochs > 0 && trainDs.samples.length === 0)
      throw new Error(`dataset ${dataRoot}: split '${trainSplit}' has no images`);
    if (!valDs || valDs.samples.length === 0)
      throw new Error(
        `dataset ${dataRoot}: validation split '${valSplit}' has no images; FixRes picks the size on it (--val-split)`,
      );

    const trained = freezeTrunk(model);
    const cls = model.getClassifier();
    const original = snapshot(cls);

    const lr = o.lr ?? 0.001;
    const fit = {
      epochs: o.epochs,
      lr,
      momentum: o.momentum ?? 0.9,
      weightDecay: o.weightDecay ?? config.optim.weightDecay,
      batchSize: o.batchSize ?? 64,
      classBalanced: o.classBalanced ?? false,
      labelSmoothing: o.labelSmoothing ?? config.loss.labelSmoothing,
      seed: o.seed ?? config.seed,
      device,
    };
    const results: SizeResult[] = [];
    let best: {
      size: number;
      top1: number;
      fineTuned: boolean;
      weights: Map<string, T.Tensor>;
      epochs: Record<string, unknown>[];
    } | null = null;
    for (const size of o.sizes) {
      const pre: PreprocessConfig = { ...r.preprocess, size };
      cls.loadStateDict(original);
      log(
        `size ${size}: extracting features (${valDs.samples.length} ${valSplit}${o.epochs > 0 ? ` + ${trainDs.samples.length} ${trainSplit}` : ''} images)`,
      );
      const valFs = await extractFeatures(model, valDs, pre, {
        device,
        ...(o.workers !== undefined ? { workers: o.workers } : {}),
      });
      const before = evaluateFeatures(model, valFs, r.classes, device);
      log(`size ${size}: before fine-tuning top-1 ${(100 * before.top1).toFixed(2)}%`);
      // Candidates: every size as it is and, with --epochs, fine-tuned; the validation split picks (ties: the earlier).
      const consider = (top1: number, fineTuned: boolean, epochs: Record<string, unknown>[]): void => {
        if (best && !(top1 > best.top1)) return;
        for (const t of best?.weights.values() ?? []) t.dispose();
        best = { size, top1, fineTuned, weights: snapshot(cls), epochs };
      };
      if (o.epochs === 0 || o.candidates !== 'fine-tuned') consider(before.top1, false, []);
      let after: SizeResult['after'] = null;
      if (o.epochs > 0) {
        const epochs: Record<string, unknown>[] = [];
        const trainFs = await extractFeatures(model, trainDs, pre, {
          flip: o.flip ?? false,
          device,
          ...(o.workers !== undefined ? { workers: o.workers } : {}),
        });
        const losses = fitClassifier(model, trainFs, trainDs, {
          ...fit,
          onEpoch: (e, loss, lrNow) => {
            epochs.push({ type: 'epoch', size, epoch: e, trainLoss: loss, lr: lrNow });
          },
        });
        const m = evaluateFeatures(model, valFs, r.classes, device);
        after = { ...brief(m), trainLoss: losses[losses.length - 1]! };
        epochs[epochs.length - 1]!.val = brief(m);
        log(
          `size ${size}: after ${o.epochs} epoch(s) of classifier training top-1 ${(100 * m.top1).toFixed(2)}% (train loss ${after.trainLoss.toFixed(4)})`,
        );
        consider(m.top1, true, epochs);
      }
      results.push({ size, before: brief(before), after });
    }
    const b = best!;
    cls.loadStateDict(b.weights);
    for (const t of [...b.weights.values(), ...original.values()]) t.dispose();

    // A run folder with the training runs' layout, so eval/predict/report take it as is.
    const preprocess: PreprocessConfig = { ...r.preprocess, size: b.size };
    folder.create();
    let checkpointDir: string;
    try {
      const b1 = T.buildInfo();
      folder.writeFiles({
        config: { ...config, input: { ...config.input, size: b.size }, out: resolve(out, '..') },
        classes: r.classes,
        preprocess,
        dataset: { ...dsInfo, root: resolve(dataRoot), trainSplit, valSplit },
        versions: { goodsrec: goodsrecVersion(), node: process.version, libtorch: b1.torchVersion, device },
      });
      const name = fixresCheckpointName(b.size);
      const policy = CheckpointPolicy.single();
      await policy.save(folder, name, {
        model: model.stateDict(),
        optimizer: {},
        state: {
          model: r.modelName,
          numClasses: r.classes.length,
          source: r.checkpointDir,
          fixres: { size: b.size, epochs: o.epochs, fineTuned: b.fineTuned, trained },
          best: { top1: b.top1 },
        },
      });
      policy.markBest(folder, name, { top1: b.top1, size: b.size });
      folder.writeJson('fixres', {
        source: { run: runDir, checkpoint: r.checkpointDir, size: r.preprocess.size },
        data: resolve(dataRoot),
        trainSplit,
        valSplit,
        options: { ...fit, flip: o.flip ?? false, sizes: o.sizes },
        trained,
        sizes: results,
        best: { size: b.size, top1: b.top1, fineTuned: b.fineTuned },
      });
      folder.writeMetrics([...results.map((s) => ({ type: 'fixres-size', ...s })), ...b.epochs]);
      checkpointDir = folder.checkpoint(name);
    } finally {
      folder.release();
    }
    return {
      runDir: folder.root,
      checkpointDir,
      sizes: results,
      best: { size: b.size, top1: b.top1, fineTuned: b.fineTuned },
      trained,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    model.dispose();
  }
}
