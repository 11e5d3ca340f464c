// Weight files <-> modules: safetensors and torch.save checkpoints through src/io.
import * as T from '../tensor/index.js';
import { loadStateDictFileSync, writeSafetensorsSync, type RawTensor } from '../io/index.js';
import type { LoadStateDictOptions, LoadStateDictResult, Module } from './module.js';

/** Reads a weight file (safetensors or .pth/.pt; wrapped checkpoints and `module.` prefixes handled) into tensors the caller owns. */
export function readStateDict(path: string): Map<string, T.Tensor> {
  const raw = loadStateDictFileSync(path);
  const out = new Map<string, T.Tensor>();
  for (const [k, r] of raw) out.set(k, T.fromRaw(r));
  return out;
}

/** Loads a weight file into a module (see Module.loadStateDict for strictness and errors). */
export function loadWeights(module: Module, path: string, options: LoadStateDictOptions = {}): LoadStateDictResult {
  return T.tidy(() => module.loadStateDict(readStateDict(path), options));
}

/** Writes the module's state dict as a safetensors file (atomically). */
export function saveWeights(module: Module, path: string, metadata?: Record<string, string>): void {
  const raw = new Map<string, RawTensor>();
  for (const [k, t] of module.stateTensors()) raw.set(k, T.toRaw(t));
  writeSafetensorsSync(path, raw, metadata);
}
