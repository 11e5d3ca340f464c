// goodsrec export: a trained recognizer (run, checkpoint or ensemble file) ->
// model.onnx + model.json (classes, pre-processing). Test-time views and
// ensemble averaging are traced into the graph through the evaluation code
// (batchLogits), so a served graph scores exactly as `goodsrec predict`.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import * as T from '../../tensor/index.js';
import { Module } from '../../nn/module.js';
import { loadRecognizer, disposeRecognizer, type LoadedRecognizer } from '../../eval/predictor.js';
import { batchLogits, type TtaMean, type TtaView } from '../../eval/evaluate.js';
import { goodsrecVersion } from '../../util/version.js';
import { writeFileAtomic } from '../../util/atomic.js';
import { syncDirQuietly } from '../../util/atomic-file.js';
import { IR_VERSION, OPSET, type GraphBuilder } from './graph.js';
import {
  foldBatchNorm,
  planQuantization,
  quantizeGraph,
  CALIBRATION_METHODS,
  type CalibrationChoice,
  type CalibrationBatch,
  type CalibrationMethod,
} from './quantize.js';
import { traceModel, type TracedForward } from './trace.js';
import { ClassifierModel } from '../../models/model.js';
import { embedBatch, hasEmbeddingHead, l2Normalize } from '../../gallery/embed.js';
import { hashFile, weightsFileOf } from '../../gallery/format.js';
import { evalPipeline, type PreprocessConfig } from '../../run/pipelines.js';
import { RunFolder } from '../../run/run-folder.js';
import { loadSplit } from '../../eval/align.js';
import { DataLoader } from '../../data/index.js';

/** The JSON sidecar next to model.onnx. */
export interface OnnxSidecar {
  format: 'goodsrec-onnx';
  formatVersion: 1;
  model: string;
  goodsrecVersion: string;
  opset: number;
  irVersion: number;
  /** Input tensor: [batch, 3, size, size] float32, normalised CHW. */
  input: { name: string; dims: number[] };
  /** Output tensor: [batch, classes] logits (softmax not applied). */
  output: { name: string; dims: number[] };
  classes: string[];
  preprocess: PreprocessConfig;
  /** Test-time views computed inside the graph (averaged as ttaMean); nothing for the caller to do. */
  tta: TtaView[];
  ttaMean: TtaMean;
  /** Members of an ensemble exported as one graph (empty for a single model). */
  members: { model: string; checkpoint: string; weight: number }[];
  source: { checkpoint: string | null; run: string | null; ema: boolean };
  /** sha256 of model.onnx, so a sidecar is never paired with another graph. */
  sha256: string;
  /**
   * A second output with the unit-length gallery embedding (single models): what `goodsrec gallery`
   * computes, so a server can recognise through a gallery. weightsSha256 is the gallery's model hash.
   */
  embedding?: { name: string; dims: number[]; kind: 'pooled' | 'neck'; weightsSha256: string };
  /** Numeric precision of the graph's convolutions (absent in older sidecars: fp32). */
  precision?: 'fp32' | 'int8';
  /** int8 graphs: how the weights and activations were quantized and calibrated. */
  quantization?: QuantizationRecord;
}

export interface ExportModelOptions {
  /** Input size (square). */
  size: number;
  inChans?: number;
  /** Producer metadata stored in the graph. */
  metadata?: Record<string, string>;
}

/**
 * What the graph computes: the members' scores under the test-time views (batchLogits, the
 * evaluation code), combined like the ensemble's combineScores: weighted mean of logits, or with
 * mean 'probs' the log of the weighted mean probability.
 */
class Scorer extends Module {
  // '_' fields are not registered children: initializer names come from the members' own state dicts.
  constructor(
    private readonly _members: readonly Module[],
    private readonly _weights: readonly number[],
    private readonly _tta: readonly TtaView[],
    private readonly _ttaMean: TtaMean,
    private readonly _mean: TtaMean,
  ) {
    super();
  }

  override forward(x: T.Tensor): T.Tensor {
    if (this._members.length === 1) return batchLogits(this._members[0]!, x, this._tta, this._ttaMean);
    return T.tidy(() => {
      let acc: T.Tensor | null = null;
      this._members.forEach((m, i) => {
        const s = batchLogits(m, x, this._tta, this._ttaMean);
        const v = (this._mean === 'probs' ? T.F.softmax(s, 1) : s).mul(this._weights[i]!);
        acc = acc ? acc.add(v) : v;
      });
      return this._mean === 'probs' ? acc!.log() : acc!;
    });
  }
}

/** State tensors of the members, named by their state-dict keys (prefixed 'members.<i>.' for an ensemble). */
function memberNames(members: readonly Module[]): Map<string, T.Tensor> {
  const out = new Map<string, T.Tensor>();
  members.forEach((m, i) => {
    for (const [k, t] of m.stateTensors()) out.set(members.length > 1 ? `members.${i}.${k}` : k, t);
  });
  return out;
}

/** Traces a model in eval mode and returns the serialised ONNX graph plus its input/output description. */
export function exportModel(
  model: Module,
  o: ExportModelOptions & { tta?: readonly TtaView[]; ttaMean?: TtaMean },
): ReturnType<typeof exportScorer> {
  return exportScorer([model], [1], { ...o, mean: 'logits' });
}

/** Logits and the gallery embedding of one model; without test-time views they share one backbone pass. */
function withEmbedding(model: ClassifierModel, tta: readonly TtaView[], ttaMean: TtaMean): TracedForward {
  if (tta.length) return (x) => ({ logits: batchLogits(model, x, tta, ttaMean), embedding: embedBatch(model, x, tta) });
  return (x) => {
    const f = model.forwardFeatures(x);
    return { logits: model.forwardHead(f), embedding: l2Normalize(model.forwardHead(f, true).float()) };
  };
}

type Io = { name: string; dims: number[] };

interface TracedScorer {
  graph: GraphBuilder;
  input: Io;
  outputs: Io[];
  metadata?: Record<string, string>;
}

function traceScorer(
  members: readonly Module[],
  weights: readonly number[],
  o: ExportModelOptions & { tta?: readonly TtaView[]; ttaMean?: TtaMean; mean: TtaMean; embedding?: boolean },
): TracedScorer {
  const training = members.map((m) => m.training);
  for (const m of members) m.eval();
  try {
    const example = T.randn([2, o.inChans ?? 3, o.size, o.size]).keep();
    try {
      const plain = members.length === 1 && !o.tta?.length;
      const root = plain
        ? members[0]!
        : new Scorer(members, weights, o.tta ?? [], o.ttaMean ?? 'logits', o.mean).eval();
      const labels = new Map(members.map((m, i) => [members.length > 1 ? `members.${i}` : '', m]));
      const one = members[0]!;
      const embed = o.embedding && members.length === 1 && one instanceof ClassifierModel;
      const tr = traceModel(
        root,
        example,
        memberNames(members),
        labels,
        embed ? withEmbedding(one, o.tta ?? [], o.ttaMean ?? 'logits') : undefined,
      );
      return {
        graph: tr.graph,
        input: { name: tr.input, dims: tr.inputDims },
        outputs: tr.outputs,
        ...(o.metadata ? { metadata: o.metadata } : {}),
      };
    } finally {
      example.dispose();
    }
  } finally {
    members.forEach((m, i) => {
      if (training[i]) m.train();
    });
  }
}

function encodeScorer(
  t: TracedScorer,
  outputs: readonly { name: string; dims?: readonly number[] }[] = t.outputs,
): Uint8Array {
  return t.graph.encode({
    input: t.input.name,
    inputDims: t.input.dims,
    outputs,
    producer: 'goodsrec',
    producerVersion: goodsrecVersion(),
    ...(t.metadata ? { metadata: t.metadata } : {}),
  });
}

function exportScorer(
  members: readonly Module[],
  weights: readonly number[],
  o: ExportModelOptions & { tta?: readonly TtaView[]; ttaMean?: TtaMean; mean: TtaMean; embedding?: boolean },
): { bytes: Uint8Array; input: Io; output: Io; embedding?: Io; ops: Record<string, number> } {
  const t = traceScorer(members, weights, o);
  return {
    bytes: encodeScorer(t),
    input: t.input,
    output: t.outputs[0]!,
    ...(t.outputs[1] ? { embedding: t.outputs[1] } : {}),
    ops: t.graph.opCounts(),
  };
}

/** How an int8 graph was made (the sidecar's `quantization`). */
export interface QuantizationRecord {
  weights: 'int8, symmetric, per output channel';
  activations: 'uint8, asymmetric, per tensor';
  /** BatchNormalization nodes folded into the convolution before them. */
  bnFolded: number;
  /** Convolutions quantized (linear layers stay float32). */
  convs: number;
  calibration: {
    /** The method whose ranges the graph has. */
    method: CalibrationMethod;
    /** 'percentile': the central share of the values kept. */
    percentile?: number;
    /** Present when the method was chosen by --calibration-method auto. */
    auto?: {
      /** Each method's mean KL(float || int8) over the calibration photos; the least was kept. */
      divergence: Record<CalibrationMethod, number>;
    };
    photos: number;
    data: string | null;
    split: string | null;
  };
}

/**
 * Quantizes a traced scorer in place: BatchNorm folded, ranges calibrated in onnxruntime on the
 * batches, QDQ nodes inserted around every convolution. 'auto': the graph is quantized with each
 * method's ranges and the one whose logits are closest to the float graph's (KL of the softmax, over
 * the calibration photos) is kept.
 */
export async function quantizeScorer(
  t: TracedScorer,
  c: Int8Options,
): Promise<Omit<QuantizationRecord, 'weights' | 'activations'>> {
  const outputs = new Set(t.outputs.map((o) => o.name));
  const bnFolded = foldBatchNorm(t.graph, outputs);
  const plan = planQuantization(t.graph, outputs);
  const { calibrate, int8Divergence } = await import('./calibrate.js');
  const logits = t.outputs[0]!.name;
  const auto = c.method === 'auto';
  const common = {
    inputName: t.input.name,
    inputDims: t.input.dims,
    ...(c.threads ? { threads: c.threads } : {}),
  };
  const cal = await calibrate({
    ...common,
    batches: c.batches,
    graph: encodeScorer(t, [
      ...plan.tensors.filter((n) => n !== t.input.name).map((name) => ({ name })),
      ...(auto ? [{ name: logits }] : []),
    ]),
    tensors: plan.tensors,
    methods: c.method === 'auto' ? CALIBRATION_METHODS : [c.method],
    ...(c.percentile !== undefined ? { percentile: c.percentile } : {}),
    ...(auto ? { reference: logits } : {}),
  });
  let method: CalibrationMethod;
  let divergence: Record<CalibrationMethod, number> | undefined;
  if (c.method === 'auto') {
    divergence = {} as Record<CalibrationMethod, number>;
    for (const m of CALIBRATION_METHODS) {
      // A plan holds its graph's nodes: each copy is planned again (same tensors, so the same ranges apply).
      const g = t.graph.clone();
      quantizeGraph(g, planQuantization(g, outputs), cal.ranges(m));
      divergence[m] = await int8Divergence({
        ...common,
        graph: encodeScorer({ ...t, graph: g }),
        output: logits,
        calibration: cal,
      });
    }
    method = CALIBRATION_METHODS.reduce((a, b) => (divergence![b] < divergence![a] ? b : a));
    c.onProgress?.(
      `auto calibration: mean KL(float || int8) ${CALIBRATION_METHODS.map((m) => `${m} ${divergence![m].toPrecision(3)}`).join(', ')}: ${method}`,
    );
  } else method = c.method;
  const q = quantizeGraph(t.graph, plan, cal.ranges(method));
  const photos = c.batches.reduce((a, b) => a + b.n, 0);
  return {
    bnFolded,
    convs: q.convs,
    calibration: {
      method,
      ...(method === 'percentile' ? { percentile: c.percentile ?? 99.99 } : {}),
      ...(divergence ? { auto: { divergence } } : {}),
      photos,
      data: c.source?.data ?? null,
      split: c.source?.split ?? null,
    },
  };
}

/** int8 export: the calibration photos (through the evaluation pre-processing) and the range method. */
export interface Int8Options {
  batches: readonly CalibrationBatch[];
  method: CalibrationChoice;
  percentile?: number;
  threads?: number;
  /** Where the photos came from, for the sidecar. */
  source?: { data: string | null; split: string | null };
  /** Lines worth printing ('auto': each method's divergence and the choice). */
  onProgress?: (line: string) => void;
}

export interface ExportRecognizerOptions {
  outDir: string;
  /** Test-time views to trace into the graph (default: an ensemble file's own, else none). */
  tta?: TtaView[];
  ttaMean?: TtaMean;
  prefer?: 'best' | 'latest';
  ema?: boolean;
}

export interface ExportResult {
  onnxPath: string;
  sidecarPath: string;
  sidecar: OnnxSidecar;
  ops: Record<string, number>;
}

/** What exportLoaded needs of a loaded recognizer (loadRecognizer's result has it). */
export interface ExportableRecognizer {
  model: Module;
  modelName: string;
  classes: string[];
  preprocess: PreprocessConfig;
  checkpointDir?: string;
  runDir?: string | undefined;
  ema?: boolean;
  ensemble?: LoadedRecognizer['ensemble'];
}

/** Exports a run, checkpoint or ensemble file to outDir/model.onnx + outDir/model.json (written atomically). */
export function exportRecognizer(path: string, o: ExportRecognizerOptions): ExportResult {
  const r = loadRecognizer(path, {
    allowEnsemble: true,
    ...(o.prefer ? { prefer: o.prefer } : {}),
    ...(o.ema !== undefined ? { ema: o.ema } : {}),
  });
  try {
    return exportLoaded(r, o);
  } finally {
    disposeRecognizer(r);
  }
}

// Where the weights came from (`pretrained`) does not change the graph's input.
const samePreprocess = (a: PreprocessConfig, b: PreprocessConfig): boolean =>
  JSON.stringify({ ...a, pretrained: undefined }) === JSON.stringify({ ...b, pretrained: undefined });

/** Exports a recognizer already in memory (an ensemble becomes one graph when its members share pre-processing). */
/** Moves model.onnx.next in when it is the graph the sidecar names (an export killed after its sidecar). */
export function finishExport(onnxPath: string, sha256: string): boolean {
  const next = onnxPath + '.next';
  if (!existsSync(next) || createHash('sha256').update(readFileSync(next)).digest('hex') !== sha256) return false;
  renameSync(next, onnxPath);
  syncDirQuietly(dirname(onnxPath));
  return true;
}

export function exportLoaded(
  r: ExportableRecognizer,
  o: Pick<ExportRecognizerOptions, 'outDir' | 'tta' | 'ttaMean'>,
): ExportResult {
  const p = prepareExport(r, o);
  const t = traceScorer(p.members, p.weights, p.trace);
  return writeExport(r, o, p, t, encodeScorer(t));
}

/**
 * int8 export (async: calibration runs in onnxruntime): as exportLoaded, with BatchNorm folded, the
 * convolutions quantized (QDQ) and the activation ranges calibrated on `int8.batches`.
 */
export async function exportLoadedInt8(
  r: ExportableRecognizer,
  o: Pick<ExportRecognizerOptions, 'outDir' | 'tta' | 'ttaMean'> & { int8: Int8Options },
): Promise<ExportResult> {
  const p = prepareExport(r, o);
  const t = traceScorer(p.members, p.weights, p.trace);
  const q = await quantizeScorer(t, o.int8);
  return writeExport(r, o, p, t, encodeScorer(t), {
    precision: 'int8',
    quantization: {
      weights: 'int8, symmetric, per output channel',
      activations: 'uint8, asymmetric, per tensor',
      ...q,
    },
  });
}

/** Loads a run, checkpoint or ensemble file and exports it as int8, calibrated on its training photos. */
export async function exportRecognizerInt8(
  path: string,
  o: ExportRecognizerOptions & {
    calibration: number;
    method: CalibrationChoice;
    percentile?: number;
    /** Calibration photos: this dataset's split (default: the run's dataset and training split). */
    data?: string;
    split?: string;
    onProgress?: (line: string) => void;
  },
): Promise<ExportResult> {
  const r = loadRecognizer(path, {
    allowEnsemble: true,
    ...(o.prefer ? { prefer: o.prefer } : {}),
    ...(o.ema !== undefined ? { ema: o.ema } : {}),
  });
  try {
    const runDir = r.runDir ?? r.ensemble?.members[0]?.runDir;
    const rec = runDir ? new RunFolder(runDir).readDataset() : undefined;
    const data = o.data ?? rec?.root;
    if (!data)
      throw new Error(
        `export --int8: ${path} records no dataset to calibrate on; name the photos' dataset (--calibration-data)`,
      );
    const split = o.split ?? rec?.trainSplit ?? 'train';
    const batches = await calibrationPhotos(data, split, r.preprocess, o.calibration);
    o.onProgress?.(`calibrating on ${batches.reduce((a, b) => a + b.n, 0)} photos of ${data} (${split})`);
    return await exportLoadedInt8(r, {
      outDir: o.outDir,
      ...(o.tta ? { tta: o.tta } : {}),
      ...(o.ttaMean ? { ttaMean: o.ttaMean } : {}),
      int8: {
        batches,
        method: o.method,
        ...(o.percentile !== undefined ? { percentile: o.percentile } : {}),
        source: { data: resolve(data), split },
        ...(o.onProgress ? { onProgress: o.onProgress } : {}),
      },
    });
  } finally {
    disposeRecognizer(r);
  }
}

/**
 * `n` photos of a split through the evaluation pre-processing, taken class by class in turn (the
 * first photo of every class, then the second, ...) so that every class is seen; deterministic.
 */
export async function calibrationPhotos(
  dataRoot: string,
  split: string,
  preprocess: PreprocessConfig,
  n: number,
  batchSize = 32,
): Promise<CalibrationBatch[]> {
  const ds = loadSplit(dataRoot, split);
  const byClass: number[][] = ds.classes.map(() => []);
  ds.samples.forEach((s, i) => byClass[s.label]?.push(i));
  const picked: number[] = [];
  for (let k = 0; picked.length < n && byClass.some((l) => l.length > k); k++)
    for (const l of byClass) if (l.length > k && picked.length < n) picked.push(l[k]!);
  const loader = new DataLoader({
    dataset: { ...ds, samples: picked.map((i) => ds.samples[i]!) },
    pipeline: evalPipeline(preprocess),
    batchSize,
    mode: 'eval',
  });
  const out: CalibrationBatch[] = [];
  try {
    for await (const b of loader) out.push({ data: Float32Array.from(b.data as Float32Array), n: b.labels.length });
  } finally {
    await loader.close();
  }
  return out;
}

interface PreparedExport {
  members: Module[];
  weights: number[];
  tta: TtaView[];
  ttaMean: TtaMean;
  preprocess: PreprocessConfig;
  weightsFile: string | null;
  trace: ExportModelOptions & { tta: TtaView[]; ttaMean: TtaMean; mean: TtaMean; embedding: boolean };
}

function prepareExport(r: ExportableRecognizer, o: Pick<ExportRecognizerOptions, 'tta' | 'ttaMean'>): PreparedExport {
  const e = r.ensemble;
  const members = e ? e.members : [r];
  for (const m of members) {
    if (!samePreprocess(m.preprocess, members[0]!.preprocess)) {
      throw new Error(
        `export: ensemble members use different pre-processing (${members.map((x) => `${x.modelName}: ${JSON.stringify(x.preprocess)}`).join('; ')}); one graph needs one input, export the members separately`,
      );
    }
  }
  const tta = o.tta ?? e?.tta ?? [];
  const ttaMean = o.ttaMean ?? e?.ttaMean ?? 'logits';
  const preprocess = members[0]!.preprocess;
  // A single model from a checkpoint also outputs its gallery embedding (tagged with the weights' hash).
  const weightsFile =
    !e && r.checkpointDir && existsSync(weightsFileOf(r.checkpointDir, r.ema ?? false))
      ? weightsFileOf(r.checkpointDir, r.ema ?? false)
      : null;
  return {
    members: members.map((m) => m.model),
    weights: e ? e.weights : [1],
    tta,
    ttaMean,
    preprocess,
    weightsFile,
    trace: {
      size: preprocess.size,
      tta,
      ttaMean,
      mean: e?.mean ?? 'logits',
      embedding: weightsFile !== null,
      metadata: { model: r.modelName, classes: String(r.classes.length) },
    },
  };
}

function writeExport(
  r: ExportableRecognizer,
  o: Pick<ExportRecognizerOptions, 'outDir'>,
  p: PreparedExport,
  t: TracedScorer,
  bytes: Uint8Array,
  extra: Pick<OnnxSidecar, 'precision' | 'quantization'> = { precision: 'fp32' },
): ExportResult {
  const e = r.ensemble;
  const [output, embedding] = [t.outputs[0]!, t.outputs[1]];
  const { input } = t;
  const { tta, ttaMean, preprocess, weightsFile } = p;
  const ops = t.graph.opCounts();
  if (output.dims[0] !== r.classes.length)
    throw new Error(`export: the model gives ${output.dims.join('x')} outputs for ${r.classes.length} classes`);
  const outDir = resolve(o.outDir);
  mkdirSync(outDir, { recursive: true });
  const onnxPath = join(outDir, 'model.onnx');
  const sidecarPath = join(outDir, 'model.json');
  const sidecar: OnnxSidecar = {
    format: 'goodsrec-onnx',
    formatVersion: 1,
    model: r.modelName,
    goodsrecVersion: goodsrecVersion(),
    opset: OPSET,
    irVersion: IR_VERSION,
    input,
    output,
    classes: r.classes,
    preprocess,
    tta,
    ttaMean,
    members: e
      ? e.members.map((m, i) => ({ model: m.modelName, checkpoint: m.checkpointDir, weight: e.weights[i]! }))
      : [],
    source: { checkpoint: r.checkpointDir ?? null, run: r.runDir ?? null, ema: r.ema ?? false },
    sha256: createHash('sha256').update(bytes).digest('hex'),
    ...(embedding && weightsFile
      ? {
          embedding: {
            ...embedding,
            kind: hasEmbeddingHead(r.model) ? ('neck' as const) : ('pooled' as const),
            weightsSha256: hashFile(weightsFile),
          },
        }
      : {}),
    ...extra,
  };
  // Graph first, sidecar last: a reader that finds the sidecar finds a complete graph.
  // The sidecar's atomic write is the commit point: the graph is written whole as model.onnx.next before it
  // and moved in after it, so a kill leaves the old pair, or the new sidecar whose graph finishExport moves in.
  writeFileAtomic(onnxPath + '.next', bytes);
  writeFileAtomic(sidecarPath, JSON.stringify(sidecar, null, 2) + '\n');
  finishExport(onnxPath, sidecar.sha256);
  return { onnxPath, sidecarPath, sidecar, ops };
}
