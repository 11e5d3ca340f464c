/**
 * PyTorch checkpoints as torch.save writes them since 1.6: a zip archive `<dir>/data.pkl` (a pickle
 * of the saved object), `<dir>/data/<key>` (one record per storage, raw little-endian bytes),
 * `<dir>/version` and, from 2.x, `<dir>/byteorder`. The directory name varies (file stem, "archive").
 *
 * The pickle goes through the restricted unpickler with an allow-list of exactly what a state dict
 * holds; tensors come out as descriptions (storage, offset, size, stride) whose bytes are read from
 * the archive only when asked for, so a large checkpoint loads tensor by tensor.
 */
import { WeightFileError } from './errors.js';
import { type DType, type RawTensor, fromTorchDTypeName, fromTorchStorageName, itemSize, numel } from './dtype.js';
import { closeQuietly, open, openSync, readAt, readAtSync } from './file.js';
import { PyCallable, PyDict, PyOpaque, PyTuple, type PyValue, describeValue, unpickle } from './pickle.js';
import { ZipArchive } from './zip.js';

/** The class of a storage named in a persistent id (`torch.FloatStorage`, `torch.UntypedStorage`). */
export class TorchStorageType extends PyOpaque {
  readonly pyType: string;
  constructor(
    readonly qualifiedName: string,
    readonly dtype: DType,
  ) {
    super();
    this.pyType = qualifiedName;
  }
}

/** A `torch.<dtype>` object (`_rebuild_tensor_v3` passes the dtype explicitly). */
export class TorchDTypeValue extends PyOpaque {
  readonly pyType = 'torch.dtype';
  constructor(readonly dtype: DType) {
    super();
  }
}

/** One storage record of the archive, shared by every tensor that views it. */
export class TorchStorage extends PyOpaque {
  readonly pyType = 'torch.storage';
  constructor(
    /** Record name under `<dir>/data/`. */
    readonly key: string,
    readonly dtype: DType,
    /** Device it was saved from (`cpu`, `cuda:0`); the bytes are the same either way. */
    readonly location: string,
    /** Elements of `dtype` in the storage. */
    readonly numel: number,
  ) {
    super();
  }
}

/** A tensor in a checkpoint: a strided view into a storage. Read its bytes with PthCheckpoint.read. */
export class PthTensor extends PyOpaque {
  readonly pyType: string;
  constructor(
    readonly storage: TorchStorage,
    readonly dtype: DType,
    readonly storageOffset: number,
    readonly shape: number[],
    readonly stride: number[],
    readonly requiresGrad: boolean,
    readonly isParameter: boolean,
  ) {
    super();
    this.pyType = isParameter ? 'torch.nn.Parameter' : 'torch.Tensor';
  }

  get numel(): number {
    return numel(this.shape);
  }

  /** Row-major contiguous: the view's elements are adjacent in the storage in order. */
  get isContiguous(): boolean {
    let expected = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.stride[i] !== expected) return false;
      expected *= this.shape[i]!;
    }
    return true;
  }
}

// ---------------------------------------------------------------------------------------------
// The allow-list

function intArg(file: string, fn: string, what: string, v: PyValue | undefined): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new WeightFileError(
      'WEIGHTS_BAD_TENSOR',
      file,
      `${fn}: ${what} is ${describeValue(v)}, not a non-negative integer`,
    );
  }
  return v;
}

function intTuple(file: string, fn: string, what: string, v: PyValue | undefined): number[] {
  const items = v instanceof PyTuple ? v.items : Array.isArray(v) ? v : undefined;
  if (items === undefined)
    throw new WeightFileError('WEIGHTS_BAD_TENSOR', file, `${fn}: ${what} is ${describeValue(v)}, not a tuple`);
  return items.map((x, i) => intArg(file, fn, `${what}[${i}]`, x));
}

function rebuildTensor(file: string, fn: string, args: PyValue[], dtypeArg?: PyValue): PthTensor {
  const [storage, offset, size, stride, requiresGrad] = args;
  if (!(storage instanceof TorchStorage)) {
    throw new WeightFileError(
      'WEIGHTS_BAD_TENSOR',
      file,
      `${fn}: first argument is ${describeValue(storage)}, not a storage`,
    );
  }
  const shape = intTuple(file, fn, 'size', size);
  const strides = stride === undefined ? contiguousStrides(shape) : intTuple(file, fn, 'stride', stride);
  if (strides.length !== shape.length) {
    throw new WeightFileError(
      'WEIGHTS_BAD_TENSOR',
      file,
      `${fn}: size has ${shape.length} dims but stride has ${strides.length}`,
    );
  }
  let dtype = storage.dtype;
  if (dtypeArg !== undefined) {
    if (!(dtypeArg instanceof TorchDTypeValue))
      throw new WeightFileError('WEIGHTS_BAD_TENSOR', file, `${fn}: dtype is ${describeValue(dtypeArg)}`);
    dtype = dtypeArg.dtype;
  }
  return new PthTensor(
    storage,
    dtype,
    intArg(file, fn, 'storage offset', offset),
    shape,
    strides,
    requiresGrad === true,
    false,
  );
}

function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

function rebuildParameter(file: string, fn: string, args: PyValue[]): PthTensor {
  const [t, requiresGrad] = args;
  if (!(t instanceof PthTensor))
    throw new WeightFileError('WEIGHTS_BAD_TENSOR', file, `${fn}: data is ${describeValue(t)}, not a tensor`);
  return new PthTensor(t.storage, t.dtype, t.storageOffset, t.shape, t.stride, requiresGrad !== false, true);
}

const STORAGE_MODULES = new Set(['torch', 'torch.storage', 'torch.cuda']);

/** The only globals a checkpoint's pickle may name. Everything returned builds data; nothing runs. */
function stateDictGlobals(file: string): (module: string, name: string) => PyValue | undefined {
  return (module, name) => {
    const q = `${module}.${name}`;
    switch (q) {
      case 'collections.OrderedDict':
        return new PyCallable(q, (args) => {
          const d = new PyDict('collections.OrderedDict');
          const init = args[0];
          if (Array.isArray(init)) {
            for (const pair of init) {
              if (pair instanceof PyTuple && pair.items.length === 2 && typeof pair.items[0] === 'string')
                d.items.set(pair.items[0], pair.items[1]!);
            }
          }
          return d;
        });
      case 'torch._utils._rebuild_tensor':
      case 'torch._utils._rebuild_tensor_v2':
        return new PyCallable(q, (args) => rebuildTensor(file, q, args));
      case 'torch._utils._rebuild_tensor_v3':
        return new PyCallable(q, (args) => rebuildTensor(file, q, args, args[6]));
      case 'torch._utils._rebuild_parameter':
      case 'torch._utils._rebuild_parameter_with_state':
        return new PyCallable(q, (args) => rebuildParameter(file, q, args));
      case 'torch.Size':
        return new PyCallable(q, (args) => {
          const a = args[0];
          return new PyTuple(a instanceof PyTuple ? a.items : Array.isArray(a) ? a : []);
        });
      case '_codecs.encode':
        // How protocol 2 spells a bytes object: _codecs.encode("\x00...", "latin1").
        return new PyCallable(q, (args) => {
          const [s, enc] = args;
          if (typeof s !== 'string')
            throw new WeightFileError('WEIGHTS_BAD_PICKLE', file, '_codecs.encode of a non-string');
          return enc === 'latin1' || enc === 'latin-1'
            ? Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff)
            : new TextEncoder().encode(s);
        });
    }
    if (module === 'torch') {
      const dt = fromTorchDTypeName(name);
      if (dt !== undefined) return new TorchDTypeValue(dt);
    }
    if (STORAGE_MODULES.has(module) && name.endsWith('Storage')) {
      const dt = fromTorchStorageName(name);
      if (dt === undefined) {
        throw new WeightFileError(
          'WEIGHTS_UNKNOWN_DTYPE',
          file,
          `storage type ${q} is not supported (supported: float32/16/64, bfloat16, int64/32/16/8, uint8, bool)`,
        );
      }
      return new TorchStorageType(q, dt);
    }
    return undefined;
  };
}

// ---------------------------------------------------------------------------------------------
// Archive access

function formatError(file: string, head: Uint8Array, size: number): WeightFileError | undefined {
  if (size === 0) return new WeightFileError('WEIGHTS_TRUNCATED', file, 'file is empty');
  if (head[0] === 0x50 && head[1] === 0x4b) return undefined; // "PK": a zip archive
  const tar = head.length >= 262 && new TextDecoder().decode(head.subarray(257, 262)) === 'ustar';
  if (head[0] === 0x80 || tar) {
    return new WeightFileError(
      'WEIGHTS_UNSUPPORTED_FORMAT',
      file,
      'this is the legacy (pre-1.6, non-zip) torch.save format, which goodsrec does not read; ' +
        're-save it with PyTorch >= 1.6 (torch.save(torch.load(f), f2)) or convert it to safetensors',
    );
  }
  return new WeightFileError(
    'WEIGHTS_UNSUPPORTED_FORMAT',
    file,
    'not a PyTorch checkpoint (no zip signature at the start of the file)',
  );
}

/** The `<dir>/` prefix of the records: the directory holding data.pkl. */
function findPrefix(zip: ZipArchive): string {
  const pkls = [...zip.entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n) || n === 'data.pkl');
  if (pkls.length === 0) {
    const names = [...zip.entries.keys()];
    if (names.some((n) => n.endsWith('/constants.pkl'))) {
      throw new WeightFileError(
        'WEIGHTS_UNSUPPORTED_FORMAT',
        zip.path,
        'this is a TorchScript archive (torch.jit.save), not a torch.save checkpoint; save model.state_dict() with torch.save instead',
      );
    }
    throw new WeightFileError(
      'WEIGHTS_BAD_ZIP',
      zip.path,
      'zip entry "<dir>/data.pkl" is missing: not a torch.save checkpoint, or a damaged one',
    );
  }
  if (pkls.length > 1)
    throw new WeightFileError('WEIGHTS_BAD_ZIP', zip.path, `zip holds several data.pkl records (${pkls.join(', ')})`);
  return pkls[0]!.slice(0, -'data.pkl'.length);
}

function parseCheckpoint(zip: ZipArchive, pkl: Uint8Array, byteorderRecord: Uint8Array | undefined) {
  const file = zip.path;
  const prefix = findPrefix(zip);
  let byteOrder: 'little' | 'big' = 'little';
  if (byteorderRecord !== undefined) {
    const s = new TextDecoder().decode(byteorderRecord).trim();
    if (s !== 'little' && s !== 'big')
      throw new WeightFileError(
        'WEIGHTS_BAD_ZIP',
        file,
        `record "${prefix}byteorder" says "${s}", expected little or big`,
      );
    byteOrder = s;
  }
  const storages = new Map<string, TorchStorage>();
  const root = unpickle(pkl, {
    file,
    what: `${prefix}data.pkl`,
    findGlobal: stateDictGlobals(file),
    persistentLoad: (pid) => {
      const items = pid instanceof PyTuple ? pid.items : [];
      const [tag, type, key, location, count] = items;
      if (
        tag !== 'storage' ||
        !(type instanceof TorchStorageType) ||
        typeof key !== 'string' ||
        typeof count !== 'number'
      ) {
        throw new WeightFileError(
          'WEIGHTS_BAD_PICKLE',
          file,
          `unexpected persistent id ${describeValue(pid)} (expected ('storage', type, key, location, numel))`,
        );
      }
      const known = storages.get(key);
      if (known !== undefined) return known;
      const record = `${prefix}data/${key}`;
      const entry = zip.entry(record);
      const s = new TorchStorage(key, type.dtype, typeof location === 'string' ? location : 'cpu', count);
      if (entry.size < count * itemSize(s.dtype)) {
        throw new WeightFileError(
          'WEIGHTS_BAD_ZIP',
          file,
          `zip entry "${record}" has ${entry.size} bytes, fewer than its ${count} ${s.dtype} elements need`,
        );
      }
      storages.set(key, s);
      return s;
    },
  });
  return { prefix, byteOrder, root };
}

/** Element range [first, last] of the storage a view touches, after checking it fits. */
function viewSpan(file: string, name: string, t: PthTensor): { first: number; count: number } {
  let last = t.storageOffset;
  for (let i = 0; i < t.shape.length; i++) last += (t.shape[i]! - 1) * t.stride[i]!;
  if (last >= t.storage.numel) {
    throw new WeightFileError(
      'WEIGHTS_BAD_TENSOR',
      file,
      `tensor "${name}": size ${JSON.stringify(t.shape)}, stride ${JSON.stringify(t.stride)} and offset ${t.storageOffset} reach element ${last} of storage "${t.storage.key}", which has ${t.storage.numel}`,
    );
  }
  return { first: t.storageOffset, count: last - t.storageOffset + 1 };
}

/** Copies a strided view (relative to its first element in `src`) into row-major order. */
function gather(src: Uint8Array, shape: readonly number[], stride: readonly number[], isz: number): Uint8Array {
  const dims: [number, number][] = [];
  shape.forEach((s, i) => s !== 1 && dims.push([s, stride[i]!]));
  const out = new Uint8Array(numel(shape) * isz);
  if (dims.length === 0) {
    out.set(src.subarray(0, isz));
    return out;
  }
  // The innermost dim is copied as one run when it is dense, element by element otherwise.
  const [innerSize, innerStride] = dims.pop()!;
  const runBytes = innerSize * isz;
  const counter = new Array<number>(dims.length).fill(0);
  let srcBase = 0;
  for (let dst = 0; dst < out.length; dst += runBytes) {
    if (innerStride === 1) {
      out.set(src.subarray(srcBase * isz, srcBase * isz + runBytes), dst);
    } else {
      for (let j = 0; j < innerSize; j++) {
        const s = (srcBase + j * innerStride) * isz;
        for (let b = 0; b < isz; b++) out[dst + j * isz + b] = src[s + b]!;
      }
    }
    // Odometer over the outer dims.
    for (let d = dims.length - 1; d >= 0; d--) {
      srcBase += dims[d]![1];
      if (++counter[d]! < dims[d]![0]) break;
      srcBase -= dims[d]![0] * dims[d]![1];
      counter[d] = 0;
    }
  }
  return out;
}

function swapBytes(data: Uint8Array, isz: number): void {
  if (isz === 1) return;
  for (let i = 0; i < data.length; i += isz) data.subarray(i, i + isz).reverse();
}

/**
 * An open torch.save checkpoint. `root` is the whole unpickled object (dicts, lists, numbers,
 * PthTensor leaves); tensor bytes are read by `read`/`readSync`. Call `close()` when done.
 */
export class PthCheckpoint {
  private constructor(
    private readonly zip: ZipArchive,
    /** Directory prefix of the records inside the zip, with its trailing slash. */
    readonly prefix: string,
    /** Byte order of the storages (from the `byteorder` record; little when absent). */
    readonly byteOrder: 'little' | 'big',
    readonly root: PyValue,
  ) {}

  get path(): string {
    return this.zip.path;
  }

  static async open(path: string): Promise<PthCheckpoint> {
    const { fd, size } = await open(path);
    let head: Uint8Array;
    try {
      head = await readAt(fd, path, 0, Math.min(size, 512));
    } finally {
      closeQuietly(fd);
    }
    const e = formatError(path, head, size);
    if (e !== undefined) throw e;
    const zip = await ZipArchive.open(path);
    try {
      const prefix = findPrefix(zip);
      const bo = zip.entries.has(`${prefix}byteorder`) ? await zip.read(`${prefix}byteorder`) : undefined;
      const parsed = parseCheckpoint(zip, await zip.read(`${prefix}data.pkl`), bo);
      return new PthCheckpoint(zip, parsed.prefix, parsed.byteOrder, parsed.root);
    } catch (err) {
      zip.close();
      throw err;
    }
  }

  static openSync(path: string): PthCheckpoint {
    const { fd, size } = openSync(path);
    let head: Uint8Array;
    try {
      head = readAtSync(fd, path, 0, Math.min(size, 512));
    } finally {
      closeQuietly(fd);
    }
    const e = formatError(path, head, size);
    if (e !== undefined) throw e;
    const zip = ZipArchive.openSync(path);
    try {
      const prefix = findPrefix(zip);
      const bo = zip.entries.has(`${prefix}byteorder`) ? zip.readSync(`${prefix}byteorder`) : undefined;
      const parsed = parseCheckpoint(zip, zip.readSync(`${prefix}data.pkl`), bo);
      return new PthCheckpoint(zip, parsed.prefix, parsed.byteOrder, parsed.root);
    } catch (err) {
      zip.close();
      throw err;
    }
  }

  /** Every tensor in the checkpoint, with dotted keys for nested containers (`model.fc.weight`). */
  tensors(): Map<string, PthTensor> {
    return flattenTensors(this.root, this.path);
  }

  /** Storages viewed by more than one of the given tensors (tied weights, views): key -> tensor names. */
  sharedStorages(tensors: Map<string, PthTensor> = this.tensors()): Map<string, string[]> {
    const by = new Map<string, string[]>();
    for (const [name, t] of tensors) {
      const l = by.get(t.storage.key) ?? [];
      l.push(name);
      by.set(t.storage.key, l);
    }
    for (const [k, l] of by) if (l.length < 2) by.delete(k);
    return by;
  }

  private finish(t: PthTensor, bytes: Uint8Array): RawTensor {
    const isz = itemSize(t.dtype);
    const data = t.isContiguous ? bytes : gather(bytes, t.shape, t.stride, isz);
    if (this.byteOrder === 'big') {
      // The bytes may be a caller's buffer or the only copy: swap a copy unless we made it ourselves.
      const own = data === bytes ? data.slice() : data;
      swapBytes(own, isz);
      return { dtype: t.dtype, shape: [...t.shape], data: own };
    }
    return { dtype: t.dtype, shape: [...t.shape], data };
  }

  private plan(name: string, t: PthTensor): { record: string; start: number; length: number; whole: boolean } {
    const isz = itemSize(t.dtype);
    const record = `${this.prefix}data/${t.storage.key}`;
    if (t.numel === 0) return { record, start: 0, length: 0, whole: false };
    const { first, count } = viewSpan(this.path, name, t);
    const whole = first === 0 && count === t.storage.numel && this.zip.entry(record).size === count * isz;
    return { record, start: first * isz, length: count * isz, whole };
  }

  /** Reads a tensor's bytes in row-major order; `name` is only used in error messages. */
  async read(t: PthTensor, name = '?'): Promise<RawTensor> {
    const p = this.plan(name, t);
    if (p.length === 0) return { dtype: t.dtype, shape: [...t.shape], data: new Uint8Array(0) };
    // A view of its whole storage (the usual case) is read with the record's CRC checked.
    const bytes = p.whole ? await this.zip.read(p.record) : await this.zip.readRange(p.record, p.start, p.length);
    return this.finish(t, bytes);
  }

  readSync(t: PthTensor, name = '?'): RawTensor {
    const p = this.plan(name, t);
    if (p.length === 0) return { dtype: t.dtype, shape: [...t.shape], data: new Uint8Array(0) };
    const bytes = p.whole ? this.zip.readSync(p.record) : this.zip.readRangeSync(p.record, p.start, p.length);
    return this.finish(t, bytes);
  }

  close(): void {
    this.zip.close();
  }
}

/**
 * Every PthTensor under `root`, keyed the way PyTorch state dicts are: nested dict keys and
 * list/tuple indices joined with dots. Non-tensor leaves (epoch numbers, strings) are skipped.
 */
export function flattenTensors(root: PyValue, file = '?'): Map<string, PthTensor> {
  const out = new Map<string, PthTensor>();
  const onPath = new Set<object>();
  const walk = (v: PyValue, key: string): void => {
    if (v instanceof PthTensor) {
      if (out.has(key))
        throw new WeightFileError('WEIGHTS_BAD_TENSOR', file, `two tensors flatten to the same key "${key}"`);
      out.set(key, v);
      return;
    }
    let children: [string, PyValue][];
    if (v instanceof PyDict) children = [...v.items].map(([k, c]) => [String(k), c]);
    else if (Array.isArray(v)) children = v.map((c, i) => [String(i), c]);
    else if (v instanceof PyTuple) children = v.items.map((c, i) => [String(i), c]);
    else return;
    if (onPath.has(v)) return; // a container that contains itself (possible through the memo)
    onPath.add(v);
    for (const [k, c] of children) walk(c, key === '' ? k : `${key}.${k}`);
    onPath.delete(v);
  };
  walk(root, '');
  return out;
}

/** Every tensor of a torch.save checkpoint (nested keys joined with dots), read into memory. */
export async function readPth(path: string): Promise<Map<string, RawTensor>> {
  const ck = await PthCheckpoint.open(path);
  try {
    const out = new Map<string, RawTensor>();
    for (const [name, t] of ck.tensors()) out.set(name, await ck.read(t, name));
    return out;
  } finally {
    ck.close();
  }
}

export function readPthSync(path: string): Map<string, RawTensor> {
  const ck = PthCheckpoint.openSync(path);
  try {
    const out = new Map<string, RawTensor>();
    for (const [name, t] of ck.tensors()) out.set(name, ck.readSync(t, name));
    return out;
  } finally {
    ck.close();
  }
}
