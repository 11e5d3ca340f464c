/**
 * A restricted, pure-data unpickler (pickle protocols 0-5).
 *
 * It builds JS values for Python's plain data (None, bools, ints, floats, str, bytes, list, tuple,
 * dict, set) and nothing else: every GLOBAL/STACK_GLOBAL is looked up in the caller's allow-list,
 * and a name that isn't there stops the load with an error naming it. Allowed callables are JS
 * functions that build data (a tensor description, an OrderedDict); no Python code is ever run.
 */
import { WeightFileError } from './errors.js';

/** Base of the objects that allowed globals produce (tensors, storages, markers for classes). */
export abstract class PyOpaque {
  abstract readonly pyType: string;
  /** The BUILD opcode (`obj.__setstate__(state)`); objects that accept no state refuse it. */
  build(_state: PyValue): boolean {
    return false;
  }
}

/** A Python tuple (distinct from a list, which is a plain JS array). */
export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}

/** A Python set or frozenset. */
export class PySet {
  constructor(
    readonly items: PyValue[],
    readonly frozen: boolean,
  ) {}
}

export type PyKey = string | number | bigint | boolean | null | PyTuple | PyOpaque;

/** A Python dict, or a dict subclass such as collections.OrderedDict; keeps insertion order. */
export class PyDict {
  readonly items = new Map<PyKey, PyValue>();
  /** Instance attributes set by BUILD (a state dict's `_metadata`). */
  attributes: PyDict | undefined;
  constructor(readonly pyType: 'dict' | 'collections.OrderedDict' = 'dict') {}
  get(key: PyKey): PyValue | undefined {
    return this.items.get(key);
  }
}

/** A global the allow-list lets a pickle call (REDUCE/NEWOBJ); `call` only builds data. */
export class PyCallable extends PyOpaque {
  readonly pyType: string;
  constructor(
    readonly qualifiedName: string,
    readonly call: (args: PyValue[]) => PyValue,
  ) {
    super();
    this.pyType = qualifiedName;
  }
}

export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PyValue[]
  | PyTuple
  | PySet
  | PyDict
  | PyOpaque;

export interface UnpickleOptions {
  /** The file the pickle comes from, for error messages. */
  file: string;
  /** The pickle's name inside the file (e.g. `archive/data.pkl`), for error messages. */
  what?: string;
  /** Returns the value for an allowed global, or undefined to refuse it. */
  findGlobal(module: string, name: string): PyValue | undefined;
  /** Resolves a persistent id (torch uses these for storages); absent means persistent ids are refused. */
  persistentLoad?(pid: PyValue): PyValue;
}

const OP_NAMES: Record<number, string> = {
  0x28: 'MARK',
  0x2e: 'STOP',
  0x30: 'POP',
  0x31: 'POP_MARK',
  0x32: 'DUP',
  0x46: 'FLOAT',
  0x49: 'INT',
  0x4a: 'BININT',
  0x4b: 'BININT1',
  0x4c: 'LONG',
  0x4d: 'BININT2',
  0x4e: 'NONE',
  0x50: 'PERSID',
  0x51: 'BINPERSID',
  0x52: 'REDUCE',
  0x53: 'STRING',
  0x54: 'BINSTRING',
  0x55: 'SHORT_BINSTRING',
  0x56: 'UNICODE',
  0x58: 'BINUNICODE',
  0x61: 'APPEND',
  0x62: 'BUILD',
  0x63: 'GLOBAL',
  0x64: 'DICT',
  0x7d: 'EMPTY_DICT',
  0x65: 'APPENDS',
  0x67: 'GET',
  0x68: 'BINGET',
  0x69: 'INST',
  0x6a: 'LONG_BINGET',
  0x6c: 'LIST',
  0x5d: 'EMPTY_LIST',
  0x6f: 'OBJ',
  0x70: 'PUT',
  0x71: 'BINPUT',
  0x72: 'LONG_BINPUT',
  0x73: 'SETITEM',
  0x74: 'TUPLE',
  0x29: 'EMPTY_TUPLE',
  0x75: 'SETITEMS',
  0x47: 'BINFLOAT',
  0x80: 'PROTO',
  0x81: 'NEWOBJ',
  0x82: 'EXT1',
  0x83: 'EXT2',
  0x84: 'EXT4',
  0x85: 'TUPLE1',
  0x86: 'TUPLE2',
  0x87: 'TUPLE3',
  0x88: 'NEWTRUE',
  0x89: 'NEWFALSE',
  0x8a: 'LONG1',
  0x8b: 'LONG4',
  0x42: 'BINBYTES',
  0x43: 'SHORT_BINBYTES',
  0x8c: 'SHORT_BINUNICODE',
  0x8d: 'BINUNICODE8',
  0x8e: 'BINBYTES8',
  0x8f: 'EMPTY_SET',
  0x90: 'ADDITEMS',
  0x91: 'FROZENSET',
  0x92: 'NEWOBJ_EX',
  0x93: 'STACK_GLOBAL',
  0x94: 'MEMOIZE',
  0x95: 'FRAME',
  0x96: 'BYTEARRAY8',
  0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER',
};

/** Python ints: JS numbers when exactly representable, bigint beyond 2^53. */
function fromBigInt(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** Little-endian two's-complement bytes (LONG1/LONG4). */
function decodeLong(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
  if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
  return fromBigInt(v);
}

function isKey(v: PyValue): v is PyKey {
  return v === null || typeof v !== 'object' || v instanceof PyTuple || v instanceof PyOpaque;
}

/** Unpickles `data` under the allow-list in `opts`; see the module comment. */
export function unpickle(data: Uint8Array, opts: UnpickleOptions): PyValue {
  const what = opts.what ?? 'pickle';
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const latin1 = new TextDecoder('latin1');
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  let pos = 0;
  let op = 0;
  let opAt = 0;
  const stack: PyValue[] = [];
  const marks: number[] = [];
  const memo = new Map<number, PyValue>();

  const fail = (problem: string): never => {
    throw new WeightFileError(
      'WEIGHTS_BAD_PICKLE',
      opts.file,
      `${what}: ${problem} (opcode ${OP_NAMES[op] ?? `0x${op.toString(16)}`} at byte ${opAt})`,
    );
  };
  const need = (n: number): void => {
    if (pos + n > data.length) {
      throw new WeightFileError(
        'WEIGHTS_BAD_PICKLE',
        opts.file,
        `${what} is truncated: it ends at byte ${data.length} inside ${OP_NAMES[op] ?? 'an opcode'} (at byte ${opAt}) before STOP`,
      );
    }
  };
  const bytes = (n: number | bigint): Uint8Array => {
    const len = Number(n);
    need(len);
    const b = data.subarray(pos, pos + len);
    pos += len;
    return b;
  };
  const u8 = (): number => (need(1), data[pos++]!);
  const u16 = (): number => (need(2), (pos += 2), dv.getUint16(pos - 2, true));
  const u32 = (): number => (need(4), (pos += 4), dv.getUint32(pos - 4, true));
  const u64 = (): bigint => (need(8), (pos += 8), dv.getBigUint64(pos - 8, true));
  const line = (): string => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0) need(data.length - pos + 1);
    const s = latin1.decode(data.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const str = (b: Uint8Array): string => {
    try {
      return utf8.decode(b);
    } catch {
      return fail('string is not valid UTF-8');
    }
  };
  const pop = (): PyValue => (stack.length === 0 ? fail('stack underflow') : stack.pop()!);
  const top = (): PyValue => (stack.length === 0 ? fail('stack underflow') : stack[stack.length - 1]!);
  const popMark = (): PyValue[] => {
    const m = marks.pop();
    if (m === undefined) return fail('no MARK on the stack');
    return stack.splice(m);
  };
  const global = (module: string, name: string): PyValue => {
    const v = opts.findGlobal(module, name);
    if (v === undefined) {
      throw new WeightFileError(
        'WEIGHTS_UNSAFE_PICKLE',
        opts.file,
        `${what} refers to the global "${module}.${name}", which is not allowed: only state-dict contents ` +
          '(tensors, OrderedDict, dicts, lists, tuples, numbers, strings) are loaded, and nothing is executed. ' +
          'The file may be malicious, or holds more than weights (save model.state_dict() instead)',
      );
    }
    return v;
  };
  const call = (fn: PyValue, args: PyValue): PyValue => {
    if (!(fn instanceof PyCallable)) return fail(`${describeValue(fn)} is not callable`);
    if (!(args instanceof PyTuple)) return fail(`arguments of ${fn.qualifiedName} are not a tuple`);
    return fn.call(args.items);
  };
  const setItems = (target: PyValue, kv: PyValue[]): void => {
    // biome-ignore lint/correctness/noVoidTypeReturn: fail() throws; `return` keeps the narrowing below
    if (!(target instanceof PyDict)) return fail(`cannot set items on ${describeValue(target)}`);
    // biome-ignore lint/correctness/noVoidTypeReturn: fail() throws; `return` keeps the narrowing below
    if (kv.length % 2 !== 0) return fail('odd number of items for a dict');
    for (let i = 0; i < kv.length; i += 2) {
      const k = kv[i]!;
      // biome-ignore lint/correctness/noVoidTypeReturn: fail() throws; `return` keeps the narrowing below
      if (!isKey(k)) return fail(`unhashable dict key ${describeValue(k)}`);
      target.items.set(k, kv[i + 1]!);
    }
  };
  const append = (target: PyValue, items: PyValue[]): void => {
    // biome-ignore lint/correctness/noVoidTypeReturn: fail() throws; `return` keeps the narrowing below
    if (!Array.isArray(target)) return fail(`cannot append to ${describeValue(target)}`);
    for (const it of items) target.push(it);
  };
  const persistent = (pid: PyValue): PyValue => {
    if (opts.persistentLoad === undefined) return fail('persistent ids are not allowed here');
    return opts.persistentLoad(pid);
  };

  for (;;) {
    opAt = pos;
    op = 0;
    need(1);
    op = data[pos++]!;
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail('pickle protocol above 5');
        break;
      case 0x95: // FRAME: only a length hint
        u64();
        break;
      case 0x2e: // STOP
        if (stack.length !== 1) fail(`STOP with ${stack.length} values on the stack`);
        return stack[0]!;
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x30: // POP
        if (marks.length > 0 && marks[marks.length - 1] === stack.length) marks.pop();
        else pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        need(4);
        stack.push(dv.getInt32(pos, true));
        pos += 4;
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: // LONG1
        stack.push(decodeLong(bytes(u8())));
        break;
      case 0x8b: {
        // LONG4
        need(4);
        const n = dv.getInt32(pos, true);
        pos += 4;
        if (n < 0) fail('negative length');
        stack.push(decodeLong(bytes(n)));
        break;
      }
      case 0x49: {
        // INT (text); protocol 0 spells bools as I01/I00
        const s = line();
        if (s === '01') stack.push(true);
        else if (s === '00') stack.push(false);
        else if (/^[+-]?\d+$/.test(s)) stack.push(fromBigInt(BigInt(s)));
        else fail(`bad INT literal "${s}"`);
        break;
      }
      case 0x4c: {
        // LONG (text, optional trailing L)
        const s = line().replace(/L$/, '');
        if (!/^[+-]?\d+$/.test(s)) fail(`bad LONG literal "${s}"`);
        stack.push(fromBigInt(BigInt(s)));
        break;
      }
      case 0x46: {
        // FLOAT (text)
        const s = line();
        const v = Number(s);
        if (Number.isNaN(v) && !/nan/i.test(s)) fail(`bad FLOAT literal "${s}"`);
        stack.push(v);
        break;
      }
      case 0x47: // BINFLOAT: big-endian double
        need(8);
        stack.push(dv.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x58: // BINUNICODE
        stack.push(str(bytes(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(str(bytes(u8())));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(str(bytes(u64())));
        break;
      case 0x56: // UNICODE (raw-unicode-escape text)
        stack.push(
          line().replace(
            /\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g,
            (_m, a: string | undefined, b: string | undefined) => String.fromCodePoint(parseInt(a ?? b!, 16)),
          ),
        );
        break;
      case 0x53: {
        // STRING: a quoted Python 2 str literal; only simple escapes are handled
        const s = line();
        const q = s[0];
        if ((q !== "'" && q !== '"') || s[s.length - 1] !== q) fail('bad STRING literal');
        stack.push(
          s
            .slice(1, -1)
            .replace(/\\(x[0-9a-fA-F]{2}|.)/g, (_m, e: string) =>
              e[0] === 'x'
                ? String.fromCharCode(parseInt(e.slice(1), 16))
                : e === 'n'
                  ? '\n'
                  : e === 't'
                    ? '\t'
                    : e === 'r'
                      ? '\r'
                      : e,
            ),
        );
        break;
      }
      case 0x54: // BINSTRING (Python 2 str; read as latin-1 like Python 3's encoding='latin1')
        stack.push(latin1.decode(bytes(u32())));
        break;
      case 0x55: // SHORT_BINSTRING
        stack.push(latin1.decode(bytes(u8())));
        break;
      case 0x42: // BINBYTES
        stack.push(bytes(u32()).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(bytes(u8()).slice());
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        stack.push(bytes(u64()).slice());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x61: {
        // APPEND
        const v = pop();
        append(top(), [v]);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        append(top(), items);
        break;
      }
      case 0x29: // EMPTY_TUPLE
        stack.push(new PyTuple([]));
        break;
      case 0x74: // TUPLE
        stack.push(new PyTuple(popMark()));
        break;
      case 0x85: // TUPLE1
        stack.push(new PyTuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        stack.push(new PyTuple([pop(), b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        stack.push(new PyTuple([pop(), b, c]));
        break;
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new PyDict());
        break;
      case 0x64: {
        // DICT
        const d = new PyDict();
        setItems(d, popMark());
        stack.push(d);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const kv = popMark();
        setItems(top(), kv);
        break;
      }
      case 0x8f: // EMPTY_SET
        stack.push(new PySet([], false));
        break;
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof PySet) || s.frozen) fail(`cannot add items to ${describeValue(s)}`);
        (s as PySet).items.push(...items);
        break;
      }
      case 0x91: // FROZENSET
        stack.push(new PySet(popMark(), true));
        break;
      case 0x67: // GET
        stack.push(memoGet(Number(line())));
        break;
      case 0x68: // BINGET
        stack.push(memoGet(u8()));
        break;
      case 0x6a: // LONG_BINGET
        stack.push(memoGet(u32()));
        break;
      case 0x70: // PUT
        memo.set(Number(line()), top());
        break;
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = line();
        stack.push(global(module, line()));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x52: {
        // REDUCE: callable(*args)
        const args = pop();
        const fn = pop();
        stack.push(call(fn, args));
        break;
      }
      case 0x81: {
        // NEWOBJ: cls.__new__(cls, *args); allowed classes build from their args
        const args = pop();
        const cls = pop();
        stack.push(call(cls, args));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX (cls, args, kwargs): no allowed class takes kwargs
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        if (!(kwargs instanceof PyDict) || kwargs.items.size > 0) fail('keyword arguments are not supported');
        stack.push(call(cls, args));
        break;
      }
      case 0x69: {
        // INST "module\nname\n": class instantiation from MARKed args
        const module = line();
        const cls = global(module, line());
        stack.push(call(cls, new PyTuple(popMark())));
        break;
      }
      case 0x6f: {
        // OBJ: MARK cls args... OBJ
        const items = popMark();
        if (items.length === 0) fail('OBJ without a class');
        stack.push(call(items[0]!, new PyTuple(items.slice(1))));
        break;
      }
      case 0x62: {
        // BUILD: obj.__setstate__(state)
        const state = pop();
        const obj = top();
        if (obj instanceof PyDict && (state instanceof PyDict || state === null)) {
          if (state !== null) obj.attributes = state;
        } else if (!(obj instanceof PyOpaque && obj.build(state))) {
          fail(`cannot set the state of ${describeValue(obj)}`);
        }
        break;
      }
      case 0x50: // PERSID (text id)
        stack.push(persistent(line()));
        break;
      case 0x51: // BINPERSID
        stack.push(persistent(pop()));
        break;
      case 0x82:
      case 0x83:
      case 0x84:
        throw new WeightFileError(
          'WEIGHTS_UNSAFE_PICKLE',
          opts.file,
          `${what} uses the extension registry (${OP_NAMES[op]}), which is not allowed`,
        );
      case 0x97:
      case 0x98:
        fail('out-of-band buffers are not supported');
        break;
      default:
        fail(`unknown opcode 0x${op.toString(16).padStart(2, '0')}: not a pickle, or corrupt`);
    }
  }

  function memoGet(i: number): PyValue {
    const v = memo.get(i);
    if (v === undefined) return fail(`memo entry ${i} is missing`);
    return v;
  }
}

/** A short description of a value for error messages. */
export function describeValue(v: PyValue | undefined): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'None';
  if (typeof v === 'string') return `str ${JSON.stringify(v.length > 40 ? `${v.slice(0, 37)}...` : v)}`;
  if (typeof v !== 'object') return `${typeof v} ${String(v)}`;
  if (Array.isArray(v)) return `list of ${v.length}`;
  if (v instanceof Uint8Array) return `bytes of ${v.length}`;
  if (v instanceof PyTuple) return `tuple of ${v.items.length}`;
  if (v instanceof PySet) return v.frozen ? 'frozenset' : 'set';
  if (v instanceof PyDict) return v.pyType;
  return v.pyType;
}
