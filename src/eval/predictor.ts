// Loads a trained recognizer (run folder or checkpoint) for evaluation and
// prediction: model, class names and the run's own pre-processing.
import { resolve, extname } from 'node:path';
import * as T from '../tensor/index.js';
import { createModel, type ClassifierModel } from '../models/index.js';
import { processFile, BadImageError, isImageFile } from '../data/index.js';
import { expandInputs, type WalkResult } from '../data/index.js';
import { loadCheckpoint, resolveCheckpoint } from '../run/checkpoint.js';
import { readRunInfo } from '../run/run-folder.js';
import { headOptions } from '../run/config.js';
import { evalPipeline, type PreprocessConfig } from '../run/pipelines.js';
import { batchLogits, type TtaMean, type TtaView } from './evaluate.js';
import { combineScores, isEnsembleFile, normaliseWeights, readEnsemble } from './ensemble.js';
import { softmaxRow, topk } from './metrics.js';

export interface LoadedRecognizer {
  model: ClassifierModel;
  modelName: string;
  classes: string[];
  preprocess: PreprocessConfig;
  device: T.Device;
  checkpointDir: string;
  runDir: string | undefined;
  /** EMA weights were loaded. */
  ema: boolean;
  /** --max-pixels: what its evaluation pipeline refuses to decode (default DEFAULT_MAX_PIXELS). */
  maxPixels?: number;
  /** An ensemble file was loaded: its members (model/preprocess above are the first member's) and how they combine. */
  ensemble?: {
    path: string;
    members: LoadedRecognizer[];
    weights: number[];
    mean: TtaMean;
    tta: TtaView[];
    ttaMean: TtaMean;
  };
}

/** Frees the model(s) of a recognizer. */
export function disposeRecognizer(r: LoadedRecognizer): void {
  if (r.ensemble) for (const m of r.ensemble.members) m.model.dispose();
  else r.model.dispose();
}

export interface LoadOptions {
  device?: T.Device;
  /** Use the EMA weights when the checkpoint has them (default true). */
  ema?: boolean;
  /** 'best' (default) or 'latest' checkpoint of a run folder. */
  prefer?: 'best' | 'latest';
  /** Accept an ensemble file (callers that handle `ensemble`: predictFiles, eval); others get a clear error. */
  allowEnsemble?: boolean;
  /** Pixels per image at most (--max-pixels), kept on the recognizer for every pipeline built from it. */
  maxPixels?: number;
}

export function loadRecognizer(path: string, o: LoadOptions = {}): LoadedRecognizer {
  if (isEnsembleFile(path)) {
    if (!o.allowEnsemble)
      throw new Error(
        `${path}: an ensemble file; this command takes a single run or checkpoint (eval and predict take ensembles)`,
      );
    const spec = readEnsemble(path);
    const members: LoadedRecognizer[] = [];
    try {
      for (const m of spec.members) members.push(loadRecognizer(m.checkpoint, { ...o, allowEnsemble: false }));
    } catch (e) {
      for (const m of members) m.model.dispose();
      throw new Error(`${path}: ${(e as Error).message}`);
    }
    const first = members[0]!;
    const bad = members.find((m) => JSON.stringify(m.classes) !== JSON.stringify(first.classes));
    if (bad) {
      for (const m of members) m.model.dispose();
      throw new Error(`${path}: members ${first.checkpointDir} and ${bad.checkpointDir} have different classes`);
    }
    return {
      ...first,
      modelName: `ensemble(${members.map((m) => m.modelName).join(', ')})`,
      checkpointDir: resolve(path),
      runDir: undefined,
      ensemble: {
        path: resolve(path),
        members,
        weights: normaliseWeights(
          spec.members.map((m) => m.weight),
          members.length,
        ),
        mean: spec.mean,
        tta: spec.tta ?? [],
        ttaMean: spec.ttaMean ?? 'logits',
      },
    };
  }
  const { runDir, checkpointDir } = resolveCheckpoint(path, o.prefer ?? 'best');
  if (!runDir)
    throw new Error(
      `${path}: the checkpoint is not inside a run folder (config.json, classes.json, preprocess.json are needed)`,
    );
  const { config, classes, preprocess } = readRunInfo(runDir);
  const ck = loadCheckpoint(checkpointDir);
  const device: T.Device = o.device ?? 'cpu';
  const useEma = (o.ema ?? true) && ck.ema !== undefined;
  const model = createModel(config.model.name, { numClasses: classes.length, ...headOptions(config.model), log: null });
  try {
    T.tidy(() => {
      const src = useEma ? ck.ema! : ck.model;
      model.loadStateDict(new Map([...src].map(([k, r]) => [k, T.fromRaw(r)])));
    });
    model.to(device);
    model.eval();
  } catch (e) {
    model.dispose();
    throw new Error(`${checkpointDir}: cannot load weights into ${config.model.name}: ${(e as Error).message}`);
  }
  return {
    model,
    modelName: config.model.name,
    classes,
    preprocess,
    device,
    checkpointDir,
    runDir,
    ema: useEma,
    maxPixels: o.maxPixels,
  };
}

export interface Prediction {
  path: string;
  top: { class: string; index: number; probability: number }[];
  error?: string;
}

/**
 * Expands folders into their image files (sorted; files without an extension too), keeps files as given;
 * bad inputs (missing, dangling symlinks, FIFOs, ...) are listed in `skipped`, never opened.
 */
export function expandImagePaths(inputs: readonly string[]): WalkResult {
  return expandInputs(inputs, { accept: (n) => isImageFile(n) || extname(n) === '', fileNamed: isImageFile });
}

/** Skipped inputs as predictions with an error, so that results list every input given. */
export function skippedPredictions(w: WalkResult): Prediction[] {
  return w.skipped.map((s) => ({ path: s.path, top: [], error: `${s.reason} (${s.detail})` }));
}

export interface PredictOptions {
  topK?: number;
  batchSize?: number;
  tta?: TtaView[];
  ttaMean?: TtaMean;
}

/** One batch [n, 3, s, s] -> [n, width] rows (logits by default; a gallery passes its embedding). */
export type BatchForward = (x: T.Tensor) => T.Tensor;

/**
 * Scores (logits, or log-probabilities with ttaMean 'probs'; or what `forward` returns) per file of one
 * model, through the run's evaluation pre-processing; a bad file gets an error.
 */
export async function scoreFiles(
  r: LoadedRecognizer,
  paths: readonly string[],
  o: PredictOptions,
  forward?: BatchForward,
): Promise<{ path: string; scores?: Float32Array; error?: string }[]> {
  const pipeline = evalPipeline(r.preprocess, r.maxPixels);
  const bs = o.batchSize ?? 16;
  const run = forward ?? ((x: T.Tensor) => batchLogits(r.model, x, o.tta ?? [], o.ttaMean ?? 'logits'));
  let c = r.classes.length;
  const out: { path: string; scores?: Float32Array; error?: string }[] = [];
  for (let i = 0; i < paths.length; i += bs) {
    const chunk = paths.slice(i, i + bs);
    const done = await Promise.all(
      chunk.map(async (p) => {
        try {
          return { path: p, img: await processFile(p, pipeline, 0) };
        } catch (e) {
          if (e instanceof BadImageError) return { path: p, error: e.message };
          throw e;
        }
      }),
    );
    const good = done.filter(
      (d): d is { path: string; img: { data: Float32Array | Uint8Array; width: number; height: number } } => 'img' in d,
    );
    let scores: Float32Array = new Float32Array(0);
    if (good.length) {
      const s = r.preprocess.size;
      const data = new Float32Array(good.length * 3 * s * s);
      good.forEach((g, j) => data.set(g.img.data as Float32Array, j * 3 * s * s));
      scores = T.tidy(() => {
        let x = T.tensor(data, [good.length, 3, s, s]);
        x = T.batchToDevice(x, r.device); // pinned, non-blocking on CUDA
        const y = run(x);
        c = y.shape[1]!;
        return y.cpu().data<'float32'>();
      });
    }
    let gi = 0;
    for (const d of done) {
      if (!('img' in d)) {
        out.push({ path: d.path, error: d.error });
        continue;
      }
      out.push({ path: d.path, scores: scores.slice(gi * c, (gi + 1) * c) });
      gi++;
    }
  }
  return out;
}

/** Top-k predictions for image files (an ensemble averages its members); a bad file yields an entry with `error` instead of stopping. */
export async function predictFiles(
  r: LoadedRecognizer,
  paths: readonly string[],
  o: PredictOptions = {},
): Promise<Prediction[]> {
  const k = Math.min(o.topK ?? 5, r.classes.length);
  const c = r.classes.length;
  let scored: { path: string; scores?: Float32Array; error?: string }[];
  if (r.ensemble) {
    const e = r.ensemble;
    const opts = { ...o, tta: o.tta?.length ? o.tta : e.tta, ttaMean: o.ttaMean ?? e.ttaMean };
    const per: Awaited<ReturnType<typeof scoreFiles>>[] = [];
    for (const m of e.members) per.push(await scoreFiles(m, paths, opts));
    scored = paths.map((p, i) => {
      const err = per.find((m) => m[i]!.error)?.[i]?.error;
      return err !== undefined
        ? { path: p, error: err }
        : {
            path: p,
            scores: combineScores(
              per.map((m) => m[i]!.scores!),
              e.weights,
              c,
              e.mean,
            ),
          };
    });
  } else scored = await scoreFiles(r, paths, o);
  return scored.map((d) => {
    if (!d.scores) return { path: d.path, top: [], error: d.error ?? 'unreadable' };
    const p = softmaxRow(d.scores);
    return {
      path: d.path,
      top: topk(d.scores, k).map((j) => ({ class: r.classes[j]!, index: j, probability: p[j]! })),
    };
  });
}
