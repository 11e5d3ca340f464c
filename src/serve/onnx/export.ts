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
import { IR_VERSION, OPSET } from './graph.js';
import { traceModel, type TracedForward } from './trace.js';
import { ClassifierModel } from '../../models/model.js';
import { embedBatch, hasEmbeddingHead, l2Normalize } from '../../gallery/embed.js';
import { hashFile, weightsFileOf } from '../../gallery/format.js';
import type { PreprocessConfig } from '../../run/pipelines.js';

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

function exportScorer(
  members: readonly Module[],
  weights: readonly number[],
  o: ExportModelOptions & { tta?: readonly TtaView[]; ttaMean?: TtaMean; mean: TtaMean; embedding?: boolean },
): { bytes: Uint8Array; input: Io; output: Io; embedding?: Io; ops: Record<string, number> } {
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
      const bytes = tr.graph.encode({
        input: tr.input,
        inputDims: tr.inputDims,
        outputs: tr.outputs,
        producer: 'goodsrec',
        producerVersion: goodsrecVersion(),
        ...(o.metadata ? { metadata: o.metadata } : {}),
      });
      return {
        bytes,
        input: { name: tr.input, dims: tr.inputDims },
        output: tr.outputs[0]!,
        ...(tr.outputs[1] ? { embedding: tr.outputs[1] } : {}),
        ops: tr.graph.opCounts(),
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
  const { bytes, input, output, embedding, ops } = exportScorer(
    members.map((m) => m.model),
    e ? e.weights : [1],
    {
      size: preprocess.size,
      tta,
      ttaMean,
      mean: e?.mean ?? 'logits',
      embedding: weightsFile !== null,
      metadata: { model: r.modelName, classes: String(r.classes.length) },
    },
  );
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
  };
  // Graph first, sidecar last: a reader that finds the sidecar finds a complete graph.
  // The sidecar's atomic write is the commit point: the graph is written whole as model.onnx.next before it
  // and moved in after it, so a kill leaves the old pair, or the new sidecar whose graph finishExport moves in.
  writeFileAtomic(onnxPath + '.next', bytes);
  writeFileAtomic(sidecarPath, JSON.stringify(sidecar, null, 2) + '\n');
  finishExport(onnxPath, sidecar.sha256);
  return { onnxPath, sidecarPath, sidecar, ops };
}
