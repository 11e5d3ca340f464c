/**
 * From "a weight file" to "a state dict": unwraps training checkpoints (`{"state_dict": ...}`,
 * `{"model": ...}`, `{"model_state_dict": ...}`), drops DataParallel's `module.` prefix, and picks
 * the reader by the file's first bytes (falling back to its extension in the error message).
 */
import { WeightFileError } from './errors.js';
import type { RawTensor } from './dtype.js';
import { closeQuietly, open, openSync, readAt, readAtSync } from './file.js';
import { PyDict, type PyValue } from './pickle.js';
import { PthCheckpoint, type PthTensor, flattenTensors } from './pth.js';
import { SafetensorsReader } from './safetensors.js';

/** Keys under which training scripts nest the model's weights, most specific first. */
export const WRAPPER_KEYS: readonly string[] = ['state_dict', 'model_state_dict', 'model', 'module'];

const DATA_PARALLEL_PREFIX = 'module.';

function stripDataParallel<T>(m: Map<string, T>): Map<string, T> {
  if (m.size === 0) return m;
  for (const k of m.keys()) if (!k.startsWith(DATA_PARALLEL_PREFIX)) return m;
  return new Map([...m].map(([k, v]) => [k.slice(DATA_PARALLEL_PREFIX.length), v]));
}

/** The dict holding the weights: follows wrapper keys while the value there is itself a dict. */
function unwrap(root: PyValue): PyValue {
  let v = root;
  for (let depth = 0; depth < 4 && v instanceof PyDict; depth++) {
    const key = WRAPPER_KEYS.find((k) => v instanceof PyDict && v.get(k) instanceof PyDict);
    if (key === undefined) break;
    v = v.get(key)!;
  }
  return v;
}

/**
 * The state dict inside a loaded weight file.
 * - For an unpickled checkpoint (`PthCheckpoint.root`): unwraps `{"state_dict": {...}}` and the other
 *   WRAPPER_KEYS, flattens nested containers to dotted keys, and drops a `module.` prefix that every key has.
 * - For an already flat map (a safetensors file): drops a `module.` prefix that every key has.
 * A state dict whose model really has a top-level child called `model` is a flat dict of tensors with
 * keys `model.x`, never a nested dict, so unwrapping can't mistake one for the other.
 */
export function extractStateDict(root: PyValue): Map<string, PthTensor>;
export function extractStateDict<T>(flat: Map<string, T>): Map<string, T>;
export function extractStateDict<T>(obj: PyValue | Map<string, T>): Map<string, PthTensor> | Map<string, T> {
  if (obj instanceof Map) return stripDataParallel(obj);
  return stripDataParallel(flattenTensors(unwrap(obj)));
}

export type WeightFileFormat = 'safetensors' | 'pth';

/** Tells the format from the first bytes; `size` is the file size. */
function sniff(file: string, head: Uint8Array, size: number): WeightFileFormat {
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) return 'pth';
  if (head.length >= 9) {
    const n = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true);
    if (n <= BigInt(size - 8) && head[8] === 0x7b /* { */) return 'safetensors';
  }
  // A pickle (legacy torch.save); checked after safetensors, whose length may start with 0x80 too.
  if (head.length >= 1 && head[0] === 0x80) return 'pth';
  if (/\.safetensors$/i.test(file)) return 'safetensors'; // let the reader name what is wrong
  if (/\.(pth|pt|ckpt|bin|tar)$/i.test(file)) return 'pth';
  throw new WeightFileError('WEIGHTS_UNSUPPORTED_FORMAT', file, 'not a safetensors file or a torch.save checkpoint');
}

export async function detectWeightFormat(path: string): Promise<WeightFileFormat> {
  const { fd, size } = await open(path);
  try {
    return sniff(path, await readAt(fd, path, 0, Math.min(size, 16)), size);
  } finally {
    closeQuietly(fd);
  }
}

export function detectWeightFormatSync(path: string): WeightFileFormat {
  const { fd, size } = openSync(path);
  try {
    return sniff(path, readAtSync(fd, path, 0, Math.min(size, 16)), size);
  } finally {
    closeQuietly(fd);
  }
}

/**
 * Loads the model weights of a safetensors file or a torch.save checkpoint as a flat state dict
 * (`layer1.0.conv1.weight` -> tensor), unwrapping training checkpoints and `module.` prefixes.
 */
export async function loadStateDictFile(path: string): Promise<Map<string, RawTensor>> {
  const out = new Map<string, RawTensor>();
  if ((await detectWeightFormat(path)) === 'safetensors') {
    const r = await SafetensorsReader.open(path);
    try {
      for (const [k, name] of extractStateDict(new Map(r.keys().map((n) => [n, n])))) out.set(k, await r.read(name));
    } finally {
      r.close();
    }
    return out;
  }
  const ck = await PthCheckpoint.open(path);
  try {
    for (const [k, t] of extractStateDict(ck.root)) out.set(k, await ck.read(t, k));
  } finally {
    ck.close();
  }
  return out;
}

export function loadStateDictFileSync(path: string): Map<string, RawTensor> {
  const out = new Map<string, RawTensor>();
  if (detectWeightFormatSync(path) === 'safetensors') {
    const r = SafetensorsReader.openSync(path);
    try {
      for (const [k, name] of extractStateDict(new Map(r.keys().map((n) => [n, n])))) out.set(k, r.readSync(name));
    } finally {
      r.close();
    }
    return out;
  }
  const ck = PthCheckpoint.openSync(path);
  try {
    for (const [k, t] of extractStateDict(ck.root)) out.set(k, ck.readSync(t, k));
  } finally {
    ck.close();
  }
  return out;
}
