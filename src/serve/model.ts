// What the server serves: an exported ONNX graph + its sidecar, opened in
// onnxruntime-node. A run or checkpoint folder is exported first (into
// <run>/export-onnx, reused while it matches the checkpoint).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { validatePipeline } from '../data/transforms.js';
import { evalPipeline } from '../run/pipelines.js';
import { cpuHasVnni } from '../util/cpu-features.js';
import type { OnnxSidecar } from './onnx/export.js';
import type { OrtReply, OrtRequest, OrtWorkerData } from './ort-worker.js';

export interface ServedModel {
  onnxPath: string;
  sidecar: OnnxSidecar;
  /** Floats per image: C*H*W. */
  itemSize: number;
  /** Width of the gallery embedding each row carries after the logits (0: logits only). */
  embeddingDim: number;
  /** Runs [n, C, H, W] -> rows [n, classes + embeddingDim]: logits, then the unit-length embedding. */
  run(input: Float32Array, n: number): Promise<Float32Array>;
  release(): Promise<void>;
}

export interface OpenOptions {
  /** onnxruntime intra-op threads (default: all cores). */
  threads?: number;
  /** Where a run is exported (default <run>/export-onnx). */
  exportDir?: string;
  /** Also fetch the graph's embedding output (for a gallery); a cached export without one is redone. */
  embedding?: boolean;
  log?: (m: string) => void;
}

/**
 * What the server says about its precision. A run is always served as fp32 (int8 is an explicit
 * `goodsrec export --int8`); an int8 graph on a CPU without VNNI is served as asked, with a warning.
 */
export function precisionNote(precision: 'fp32' | 'int8', vnni: boolean | null = cpuHasVnni()): string {
  const cpu = vnni === null ? 'unknown CPU flags' : vnni ? 'the CPU has VNNI' : 'the CPU has no VNNI';
  if (precision === 'int8' && vnni === false)
    return `precision: int8, but ${cpu} (AVX512-VNNI, AVX-VNNI or AMX-INT8): onnxruntime's int8 kernels gain nothing here; serve the fp32 export instead`;
  if (precision === 'int8') return `precision: int8 (${cpu})`;
  return vnni
    ? `precision: fp32 (${cpu}: an int8 export, goodsrec export --int8, runs about 3x faster here)`
    : `precision: fp32 (${cpu})`;
}

/** The graph to evaluate when `path` is an exported one (a .onnx file or a folder with model.onnx + model.json), else null. */
export function exportedGraph(path: string): string | null {
  const p = resolve(path);
  if (!existsSync(p)) return null;
  if (statSync(p).isFile()) return p.endsWith('.onnx') ? p : null;
  return existsSync(join(p, 'model.onnx')) && existsSync(join(p, 'model.json')) ? join(p, 'model.onnx') : null;
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
  if (s === null || typeof s !== 'object' || s.format !== 'goodsrec-onnx') {
    throw new Error(`${path}: not a goodsrec ONNX sidecar (format '${String(s?.format)}')`);
  }
  for (const k of ['classes', 'preprocess', 'input', 'output'] as const)
    if (!s[k]) throw new Error(`${path}: the sidecar has no '${k}'`);
  checkSidecar(s, path);
  return s;
}

/** What the server and predictor rely on; a damaged sidecar is refused here, naming its path (found by fuzzing). */
function checkSidecar(s: OnnxSidecar, path: string): void {
  const bad = (what: string, v: unknown): never => {
    throw new Error(`${path}: the sidecar's ${what} is invalid (${JSON.stringify(v)?.slice(0, 80)})`);
  };
  const dims = (v: unknown): v is number[] =>
    Array.isArray(v) && v.length > 0 && v.every((d) => Number.isSafeInteger(d) && d > 0);
  const io = (k: 'input' | 'output' | 'embedding', v: { name?: unknown; dims?: unknown }): void => {
    if (typeof v !== 'object' || v === null || typeof v.name !== 'string' || v.name === '') bad(`${k}.name`, v?.name);
    if (!dims(v.dims)) bad(`${k}.dims`, v.dims);
  };
  if (!Array.isArray(s.classes) || s.classes.length === 0 || !s.classes.every((c) => typeof c === 'string'))
    bad('classes', s.classes);
  io('input', s.input);
  io('output', s.output);
  if (s.input.dims.length !== 3 || s.input.dims[0] !== 3 || s.input.dims.reduce((a, b) => a * b, 1) > 2 ** 28)
    bad('input.dims (3 x size x size)', s.input.dims);
  if (s.output.dims[0] !== s.classes.length) bad(`output.dims (${s.classes.length} classes)`, s.output.dims);
  if (s.embedding !== undefined) io('embedding', s.embedding);
  const p = s.preprocess;
  if (typeof p !== 'object' || !(typeof p.cropPct === 'number' && p.cropPct > 0 && p.cropPct <= 1))
    bad('preprocess.cropPct', p?.cropPct);
  if (p.resize !== 'letterbox' && p.resize !== 'squash') bad('preprocess.resize', p.resize);
  if (!Number.isSafeInteger(p.size) || p.size <= 0 || p.size > 8192) bad('preprocess.size', p.size);
  try {
    validatePipeline(evalPipeline(p), { eval: true });
  } catch (e) {
    throw new Error(`${path}: the sidecar's preprocess is invalid: ${(e as Error).message}`);
  }
}

/** Resolves what to serve: an .onnx file, an export folder, or a run/checkpoint (exported on demand). */
export async function resolveServable(path: string, o: OpenOptions = {}): Promise<string> {
  const p = resolve(path);
  if (!existsSync(p)) throw new Error(`${path}: no such file or folder`);
  if (statSync(p).isFile() && p.endsWith('.onnx')) return p;
  if (statSync(p).isDirectory() && existsSync(join(p, 'model.onnx')) && existsSync(join(p, 'model.json')))
    return join(p, 'model.onnx');
  // A run, checkpoint or ensemble file: libtorch is only loaded on this path.
  let outDir: string;
  let checkpointDir: string;
  if (statSync(p).isFile()) {
    const { isEnsembleFile } = await import('../eval/ensemble.js');
    if (!isEnsembleFile(p))
      throw new Error(`${path}: expected a .onnx file, an export folder, a run/checkpoint folder, or an ensemble file`);
    checkpointDir = p;
    outDir = o.exportDir ?? p.replace(/\.[^./]+$/, '') + '-onnx';
  } else {
    const { resolveCheckpoint } = await import('../run/checkpoint.js');
    const r = resolveCheckpoint(p, 'best');
    checkpointDir = r.checkpointDir;
    outDir = o.exportDir ?? join(r.runDir ?? r.checkpointDir, 'export-onnx');
  }
  const cached = join(outDir, 'model.onnx');
  if (existsSync(cached) && existsSync(join(outDir, 'model.json'))) {
    const s = readSidecar(join(outDir, 'model.json'));
    if (s.source.checkpoint === checkpointDir && (s.embedding || !o.embedding)) {
      o.log?.(`using the export in ${outDir}`);
      return cached;
    }
  }
  o.log?.(`exporting ${checkpointDir} to ${outDir}`);
  const { exportRecognizer } = await import('./onnx/export.js');
  return exportRecognizer(p, { outDir }).onnxPath;
}

export async function openServedModel(path: string, o: OpenOptions = {}): Promise<ServedModel> {
  const onnxPath = await resolveServable(path, o);
  const sidecarPath = sidecarPathFor(onnxPath);
  const sidecar = readSidecar(sidecarPath);
  o.log?.(precisionNote(sidecar.precision ?? 'fp32'));
  let bytes = readFileSync(onnxPath);
  let sha = createHash('sha256').update(bytes).digest('hex');
  // An export killed after writing its sidecar: its graph is still in model.onnx.next.
  if (
    sidecar.sha256 &&
    sidecar.sha256 !== sha &&
    (await import('./onnx/export.js')).finishExport(onnxPath, sidecar.sha256)
  ) {
    bytes = readFileSync(onnxPath);
    sha = createHash('sha256').update(bytes).digest('hex');
  }
  if (sidecar.sha256 && sidecar.sha256 !== sha)
    throw new Error(`${sidecarPath}: describes another graph than ${onnxPath} (sha256 differs); export again`);
  const dims = sidecar.input.dims;
  const itemSize = dims.reduce((a, b) => a * b, 1);
  if (o.embedding && !sidecar.embedding) {
    throw new Error(
      `${onnxPath}: the graph has no embedding output (an ensemble, or exported before galleries); ` +
        'serve the run folder or export it again with goodsrec export',
    );
  }
  const embeddingDim = o.embedding ? sidecar.embedding!.dims[0]! : 0;
  const workerData: OrtWorkerData = {
    onnxPath,
    inputName: sidecar.input.name,
    dims,
    outputNames: embeddingDim ? [sidecar.output.name, sidecar.embedding!.name] : [sidecar.output.name],
    options: {
      intraOpNumThreads: o.threads ?? availableParallelism(),
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
    },
  };
  const worker = new Worker(new URL('./ort-worker.js', import.meta.url), { workerData });
  const pending = new Map<number, { resolve: (x: Float32Array) => void; reject: (e: Error) => void }>();
  let nextId = 0;
  let onReleased: (() => void) | null = null;
  await new Promise<void>((resolveReady, rejectReady) => {
    worker.on('message', (m: OrtReply) => {
      if (m.type === 'ready') resolveReady();
      else if (m.type === 'fatal')
        rejectReady(new Error(`${onnxPath}: onnxruntime cannot load the graph: ${m.message}`));
      else if (m.type === 'released') onReleased?.();
      else {
        const p = pending.get(m.id);
        pending.delete(m.id);
        if (m.type === 'result') p?.resolve(m.output);
        else p?.reject(new Error(`onnxruntime: ${m.message}`));
      }
    });
    worker.on('error', (e) => {
      rejectReady(e);
      for (const p of pending.values()) p.reject(e);
      pending.clear();
    });
  });
  let released: Promise<void> | null = null;
  return {
    onnxPath,
    sidecar,
    itemSize,
    embeddingDim,
    run(input: Float32Array, n: number): Promise<Float32Array> {
      if (released) return Promise.reject(new Error('onnxruntime session released'));
      return new Promise((resolve, reject) => {
        const id = nextId++;
        pending.set(id, { resolve, reject });
        // The batch buffer is the batcher's own copy: hand it over instead of copying.
        worker.postMessage({ type: 'run', id, input, n } satisfies OrtRequest, [input.buffer as ArrayBuffer]);
      });
    },
    release(): Promise<void> {
      released ??= new Promise<void>((res) => {
        onReleased = () => {
          void worker.terminate().then(() => res());
        };
        worker.postMessage({ type: 'release' } satisfies OrtRequest);
      });
      return released;
    },
  };
}
