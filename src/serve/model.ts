// What the server serves: an exported ONNX graph + its sidecar, opened in
// onnxruntime-node. A run or checkpoint folder is exported first (into
// <run>/export-onnx, reused while it matches the checkpoint).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import ort from 'onnxruntime-node';
import type { OnnxSidecar } from './onnx/export.js';

export interface ServedModel {
  onnxPath: string;
  sidecar: OnnxSidecar;
  session: ort.InferenceSession;
  /** Floats per image: C*H*W. */
  itemSize: number;
  /** Runs [n, C, H, W] -> logits [n, classes]. */
  run(input: Float32Array, n: number): Promise<Float32Array>;
  release(): Promise<void>;
}

export interface OpenOptions {
  /** onnxruntime intra-op threads (default: all cores). */
  threads?: number;
  /** Where a run is exported (default <run>/export-onnx). */
  exportDir?: string;
  log?: (m: string) => void;
}

/** The sidecar of a graph: model.json next to model.onnx, or <name>.json next to <name>.onnx. */
export function sidecarPathFor(onnxPath: string): string {
  const named = join(dirname(onnxPath), basename(onnxPath, '.onnx') + '.json');
  return existsSync(named) ? named : join(dirname(onnxPath), 'model.json');
}

export function readSidecar(path: string): OnnxSidecar {
  let s: OnnxSidecar;
  try {
    s = JSON.parse(readFileSync(path, 'utf8')) as OnnxSidecar;
  } catch (e) {
    throw new Error(`${path}: cannot read the export sidecar: ${(e as Error).message}`);
  }
  if (s.format !== 'goodsrec-onnx') throw new Error(`${path}: not a goodsrec ONNX sidecar (format '${String(s.format)}')`);
  for (const k of ['classes', 'preprocess', 'input', 'output'] as const) if (!s[k]) throw new Error(`${path}: the sidecar has no '${k}'`);
  return s;
}

/** Resolves what to serve: an .onnx file, an export folder, or a run/checkpoint (exported on demand). */
export async function resolveServable(path: string, o: OpenOptions = {}): Promise<string> {
  const p = resolve(path);
  if (!existsSync(p)) throw new Error(`${path}: no such file or folder`);
  if (statSync(p).isFile() && p.endsWith('.onnx')) return p;
  if (statSync(p).isDirectory() && existsSync(join(p, 'model.onnx')) && existsSync(join(p, 'model.json'))) return join(p, 'model.onnx');
  // A run, checkpoint or ensemble file: libtorch is only loaded on this path.
  let outDir: string;
  let checkpointDir: string;
  if (statSync(p).isFile()) {
    const { isEnsembleFile } = await import('../eval/ensemble.js');
    if (!isEnsembleFile(p)) throw new Error(`${path}: expected a .onnx file, an export folder, a run/checkpoint folder, or an ensemble file`);
    checkpointDir = p;
    outDir = o.exportDir ?? p.replace(/\.[^./]+$/, '') + '-onnx';
  } else {
    const { resolveCheckpoint } = await import('../train/checkpoint.js');
    const r = resolveCheckpoint(p, 'best');
    checkpointDir = r.checkpointDir;
    outDir = o.exportDir ?? join(r.runDir ?? r.checkpointDir, 'export-onnx');
  }
  const cached = join(outDir, 'model.onnx');
  if (existsSync(cached) && existsSync(join(outDir, 'model.json'))) {
    const s = readSidecar(join(outDir, 'model.json'));
    if (s.source.checkpoint === checkpointDir) { o.log?.(`using the export in ${outDir}`); return cached; }
  }
  o.log?.(`exporting ${checkpointDir} to ${outDir}`);
  const { exportRecognizer } = await import('./onnx/export.js');
  return exportRecognizer(p, { outDir }).onnxPath;
}

export async function openServedModel(path: string, o: OpenOptions = {}): Promise<ServedModel> {
  const onnxPath = await resolveServable(path, o);
  const sidecarPath = sidecarPathFor(onnxPath);
  const sidecar = readSidecar(sidecarPath);
  const bytes = readFileSync(onnxPath);
  const sha = createHash('sha256').update(bytes).digest('hex');
  if (sidecar.sha256 && sidecar.sha256 !== sha) throw new Error(`${sidecarPath}: describes another graph than ${onnxPath} (sha256 differs); export again`);
  const session = await ort.InferenceSession.create(bytes, {
    intraOpNumThreads: o.threads ?? availableParallelism(),
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  });
  const dims = sidecar.input.dims;
  const itemSize = dims.reduce((a, b) => a * b, 1);
  return {
    onnxPath, sidecar, session, itemSize,
    async run(input: Float32Array, n: number): Promise<Float32Array> {
      const r = await session.run({ [sidecar.input.name]: new ort.Tensor('float32', input, [n, ...dims]) });
      const out = r[sidecar.output.name]!;
      return out.data as Float32Array;
    },
    release: () => session.release(),
  };
}
