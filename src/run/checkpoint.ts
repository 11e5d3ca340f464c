// Checkpoints: a folder per checkpoint (weights as safetensors, optimizer and
// EMA tensors as safetensors, everything else as JSON), written atomically, so
// an interrupted or failed save never damages the previous checkpoint.
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeSafetensorsSync, readSafetensorsSync, type RawTensor } from '../io/index.js';
import { Tensor, fromRaw, toRaw } from '../tensor/index.js';
import { recoverDirAtomic, writeDirAtomic, writeJsonAtomic } from '../util/atomic.js';
import { CHECKPOINT_FILE, CHECKPOINTS_DIR, PERIODIC_CHECKPOINT, RUN_FILE, type PointerName } from './layout.js';

export const CHECKPOINT_FORMAT = 'goodsrec-checkpoint-1';

/** A JSON tree whose tensor leaves were moved to a tensor map. */
type Tree = null | boolean | number | string | Tree[] | { [k: string]: Tree };

/** Splits a value with Tensor leaves into JSON (leaves replaced by {"$tensor": key}) and a tensor map. */
export function splitTensors(value: unknown, tensors: Map<string, Tensor>, path = ''): Tree {
  if (value instanceof Tensor) {
    const key = path || 'root';
    tensors.set(key, value);
    return { $tensor: key };
  }
  if (value instanceof Map) {
    const o: Record<string, Tree> = {};
    let numeric = true;
    for (const [k, v] of value) {
      if (typeof k !== 'number') numeric = false;
      o[String(k)] = splitTensors(v, tensors, path ? `${path}.${String(k)}` : String(k));
    }
    return numeric && value.size > 0 ? { $map: o, $numericKeys: true } : { $map: o };
  }
  if (Array.isArray(value)) return value.map((v, i) => splitTensors(v, tensors, path ? `${path}.${i}` : String(i)));
  if (value !== null && typeof value === 'object') {
    const o: Record<string, Tree> = {};
    for (const [k, v] of Object.entries(value))
      if (v !== undefined) o[k] = splitTensors(v, tensors, path ? `${path}.${k}` : k);
    return o;
  }
  if (typeof value === 'number' && !Number.isFinite(value)) return { $number: String(value) };
  return value as Tree;
}

/** Inverse of splitTensors: tensors are created from the raw map. */
export function joinTensors(tree: Tree, raws: Map<string, RawTensor>): unknown {
  if (Array.isArray(tree)) return tree.map((v) => joinTensors(v, raws));
  if (tree !== null && typeof tree === 'object') {
    const o = tree as Record<string, Tree>;
    if (typeof o.$tensor === 'string') {
      const raw = raws.get(o.$tensor);
      if (!raw) throw new Error(`checkpoint: tensor '${o.$tensor}' is missing from the tensor file`);
      return fromRaw(raw).keep();
    }
    if (typeof o.$number === 'string') return Number(o.$number);
    if (o.$map && typeof o.$map === 'object' && !Array.isArray(o.$map)) {
      const m = new Map<string | number, unknown>();
      for (const [k, v] of Object.entries(o.$map)) m.set(o.$numericKeys === true ? Number(k) : k, joinTensors(v, raws));
      return m;
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(o)) out[k] = joinTensors(v, raws);
    return out;
  }
  return tree;
}

function tensorsToRaw(m: Map<string, Tensor>): Map<string, RawTensor> {
  const out = new Map<string, RawTensor>();
  for (const [k, t] of m) out.set(k, toRaw(t));
  return out;
}

export interface CheckpointContent {
  /** Model state dict (PyTorch names). */
  model: Map<string, Tensor>;
  /** EMA weights, when EMA is on. */
  ema?: Map<string, Tensor> | undefined;
  /** Optimizer state (tensors anywhere inside). */
  optimizer: unknown;
  /** Everything else: position, scheduler, scaler, best metric... (JSON). */
  state: Record<string, unknown>;
}

export interface LoadedCheckpoint {
  dir: string;
  model: Map<string, RawTensor>;
  ema: Map<string, RawTensor> | undefined;
  /** Optimizer state with tensors restored (kept: the optimizer owns them). */
  optimizer: () => unknown;
  state: Record<string, unknown>;
}

/** Disposes every tensor inside a value (maps, arrays, plain objects). */
export function disposeTensors(value: unknown): void {
  const m = new Map<string, Tensor>();
  splitTensors(value, m);
  for (const t of m.values()) t.dispose();
}

/** Writes checkpoints/<name>/ atomically and returns its path. The caller still owns the tensors. */
export async function saveCheckpoint(
  checkpointsDir: string,
  name: string,
  c: CheckpointContent,
  o: { createParent?: boolean } = {},
): Promise<string> {
  const dir = join(checkpointsDir, name);
  const optTensors = new Map<string, Tensor>();
  const optTree = splitTensors(c.optimizer, optTensors);
  await writeDirAtomic(
    dir,
    (tmp) => {
      writeSafetensorsSync(join(tmp, CHECKPOINT_FILE.model), tensorsToRaw(c.model), {
        format: 'pt',
        producer: 'goodsrec',
      });
      if (c.ema)
        writeSafetensorsSync(join(tmp, CHECKPOINT_FILE.ema), tensorsToRaw(c.ema), {
          format: 'pt',
          producer: 'goodsrec',
        });
      writeSafetensorsSync(join(tmp, CHECKPOINT_FILE.optimizer), tensorsToRaw(optTensors), { producer: 'goodsrec' });
      writeJsonAtomic(join(tmp, CHECKPOINT_FILE.state), {
        format: CHECKPOINT_FORMAT,
        savedAt: new Date().toISOString(),
        optimizer: optTree,
        ...c.state,
      });
    },
    o,
  );
  return dir;
}

export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

export function loadCheckpoint(dir: string): LoadedCheckpoint {
  if (!existsSync(dir)) recoverDirAtomic(dir); // a save killed while replacing it
  const statePath = join(dir, CHECKPOINT_FILE.state);
  const modelPath = join(dir, CHECKPOINT_FILE.model);
  if (!existsSync(statePath) || !existsSync(modelPath)) {
    throw new CheckpointError(
      `${dir} is not a goodsrec checkpoint (missing ${existsSync(statePath) ? CHECKPOINT_FILE.model : CHECKPOINT_FILE.state})`,
    );
  }
  let state: Record<string, unknown>;
  try {
    state = JSON.parse(readFileSync(statePath, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new CheckpointError(`${statePath}: not valid JSON (${(e as Error).message})`);
  }
  if (state.format !== CHECKPOINT_FORMAT)
    throw new CheckpointError(`${statePath}: unknown checkpoint format ${JSON.stringify(state.format)}`);
  const model = readSafetensorsSync(modelPath);
  const emaPath = join(dir, CHECKPOINT_FILE.ema);
  const ema = existsSync(emaPath) ? readSafetensorsSync(emaPath) : undefined;
  const optPath = join(dir, CHECKPOINT_FILE.optimizer);
  const optTree = state.optimizer as Tree;
  return {
    dir,
    model,
    ema,
    optimizer: () => joinTensors(optTree, existsSync(optPath) ? readSafetensorsSync(optPath) : new Map()),
    state,
  };
}

/** Pointer files (latest.json, best.json) name a checkpoint folder; written atomically after it. */
export function writePointer(
  runDir: string,
  which: PointerName,
  checkpointName: string,
  extra: Record<string, unknown> = {},
): void {
  writeJsonAtomic(join(runDir, RUN_FILE[which]), { checkpoint: checkpointName, ...extra });
}

/** The checkpoint folder a pointer names (undefined without the pointer); errors name the file. */
export function readPointer(runDir: string, which: PointerName): string | undefined {
  const p = join(runDir, RUN_FILE[which]);
  if (!existsSync(p)) return undefined;
  let v: { checkpoint?: unknown };
  try {
    v = JSON.parse(readFileSync(p, 'utf8')) as { checkpoint?: unknown };
  } catch (e) {
    throw new CheckpointError(`${p}: not valid JSON (${(e as Error).message})`);
  }
  return typeof v.checkpoint === 'string' ? join(runDir, CHECKPOINTS_DIR, v.checkpoint) : undefined;
}

/** Whether a folder holds a checkpoint (its state and weights). */
function isCheckpointDir(dir: string): boolean {
  return existsSync(join(dir, CHECKPOINT_FILE.state)) && existsSync(join(dir, CHECKPOINT_FILE.model));
}

/**
 * Resolves what a user names: a run folder (best, else latest checkpoint), a
 * checkpoint folder, or a run folder + 'best'/'latest'.
 */
export function resolveCheckpoint(
  path: string,
  prefer: 'best' | 'latest' = 'best',
): { runDir: string | undefined; checkpointDir: string } {
  const p = resolve(path);
  if (!existsSync(p)) recoverDirAtomic(p); // a save killed while replacing it
  if (!existsSync(p)) throw new CheckpointError(`${path}: no such run or checkpoint`);
  if (isCheckpointDir(p)) {
    const runDir = resolve(p, '..', '..');
    return { runDir: existsSync(join(runDir, RUN_FILE.config)) ? runDir : undefined, checkpointDir: p };
  }
  if (existsSync(join(p, RUN_FILE.config))) {
    const order: ('best' | 'latest')[] = prefer === 'best' ? ['best', 'latest'] : ['latest', 'best'];
    for (const w of order) {
      const c = readPointer(p, w);
      if (c && existsSync(c)) return { runDir: p, checkpointDir: c };
      if (c) throw new CheckpointError(`${path}: ${w}.json names ${c}, which does not exist (deleted by hand?)`);
    }
    throw new CheckpointError(`${path}: this run has no checkpoint yet`);
  }
  throw new CheckpointError(
    `${path}: neither a run folder (${RUN_FILE.config}) nor a checkpoint folder (${CHECKPOINT_FILE.state} + ${CHECKPOINT_FILE.model})`,
  );
}

/**
 * Deletes periodic checkpoints (epoch-N[-step-M]) beyond the newest `keep`, never the protected ones (best,
 * latest) and never other folders (averages, FixRes results: `goodsrec average` may run beside a training).
 */
export function pruneCheckpoints(checkpointsDir: string, keep: number, protect: readonly string[]): void {
  if (!existsSync(checkpointsDir)) return;
  const names = readdirSync(checkpointsDir)
    .filter((n) => PERIODIC_CHECKPOINT.test(n) && statSync(join(checkpointsDir, n)).isDirectory())
    .sort();
  const removable = names.filter((n) => !protect.includes(n));
  for (const n of removable.slice(0, Math.max(0, removable.length - keep))) {
    rmSync(join(checkpointsDir, n), { recursive: true, force: true });
  }
}

/** Periodic checkpoint folders of a run, oldest first (names sort by epoch/step). */
export function listCheckpoints(runDir: string): string[] {
  const dir = join(resolve(runDir), CHECKPOINTS_DIR);
  if (!existsSync(dir)) throw new Error(`${runDir}: no ${CHECKPOINTS_DIR} folder (is it a run folder?)`);
  return readdirSync(dir)
    .filter((n) => PERIODIC_CHECKPOINT.test(n) && existsSync(join(dir, n, CHECKPOINT_FILE.model)))
    .sort()
    .map((n) => join(dir, n));
}
