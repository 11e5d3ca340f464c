// The Module base class: named parameters, buffers and child modules with
// PyTorch's state-dict names, train/eval, device/dtype/memory-format moves,
// freezing, forward hooks and explicit disposal.
import * as T from '../tensor/index.js';
import { matcher, type NamePattern } from './pattern.js';

type Tensor = T.Tensor;

/** Called after a module's forward; returning a tensor replaces the output (PyTorch's forward hook). */
// biome-ignore lint/suspicious/noConfusingVoidType: a hook returns a replacement output or nothing
export type ForwardHook = (module: Module, input: Tensor, output: Tensor) => Tensor | void;
export interface HookHandle {
  remove(): void;
}

export interface LoadStateDictOptions {
  /** Missing or unexpected keys are errors (default true). Shape mismatches always are. */
  strict?: boolean;
  /** Keys allowed to be missing even when strict (e.g. a classifier deliberately left at its fresh initialisation). */
  allowMissing?: NamePattern;
}
export interface LoadStateDictResult {
  missingKeys: string[];
  unexpectedKeys: string[];
  loaded: string[];
}

export type StateDictInput = Map<string, Tensor> | Record<string, Tensor>;

export type ToTarget =
  | T.Device
  | T.DType
  | T.MemoryFormat
  | { device?: T.Device; dtype?: T.DType; memoryFormat?: T.MemoryFormat };

/** Thrown by loadStateDict; `missingKeys`, `unexpectedKeys` and `shapeMismatches` list every problem. */
export class StateDictError extends Error {
  readonly code = 'NN_STATE_DICT_MISMATCH';
  constructor(
    message: string,
    readonly missingKeys: readonly string[],
    readonly unexpectedKeys: readonly string[],
    readonly shapeMismatches: readonly string[],
  ) {
    super(message);
    this.name = 'StateDictError';
  }
}

const MEMORY_FORMATS: readonly string[] = ['contiguous', 'channelsLast', 'preserve'];

function shapeStr(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}

/**
 * Base class of every layer and model.
 *
 * - Parameters and buffers are registered with PyTorch's names through
 *   registerParameter()/registerBuffer() and are readable as properties of the
 *   same name. They are kept tensors: tidy() never frees them; dispose() does.
 * - Child modules are the own properties holding a Module, in the order the
 *   properties were defined (declare child fields in PyTorch's registration
 *   order); properties whose name starts with `_` are private and skipped.
 *   Containers (Sequential, ModuleList, ModuleDict) add children under any
 *   name with registerModule().
 * - forward() must not dispose its input; it may return its input (in-place
 *   ops), so callers free an intermediate only when it is not the result.
 */
export class Module {
  /** True in training mode (dropout active, batch norm uses and updates batch statistics). */
  training = true;
  private readonly _paramNames: string[] = [];
  private readonly _bufferNames: string[] = [];
  private readonly _nonPersistent = new Set<string>();
  private readonly _optional = new Set<string>();
  private readonly _modules = new Map<string, Module>();
  private _hooks: ForwardHook[] = [];
  private _disposed = false;

  /** Runs the module. Subclasses override; containers without a forward throw. */
  forward(x: Tensor): Tensor {
    void x;
    throw new Error(`${this.constructor.name} has no forward()`);
  }

  // --- registration ------------------------------------------------------------------

  /**
   * Registers a parameter under a PyTorch name (null: an absent optional
   * parameter such as a bias, not in the state dict). The tensor is kept and
   * set to require gradients.
   */
  protected registerParameter<P extends Tensor | null>(name: string, t: P): P {
    this.checkName(name, this._paramNames);
    if (t !== null) {
      t.keep();
      if (!t.requiresGrad) t.setRequiresGrad(true);
    }
    this.setSlot(name, t);
    return t;
  }

  /**
   * Registers a buffer (running statistics...). Non-persistent buffers stay
   * out of the state dict; optional ones may be absent from a loaded state
   * dict even when strict (BatchNorm's num_batches_tracked, which checkpoints
   * older than PyTorch 0.4.1 lack; PyTorch accepts those too).
   */
  protected registerBuffer<B extends Tensor | null>(
    name: string,
    t: B,
    options: { persistent?: boolean; optional?: boolean } = {},
  ): B {
    this.checkName(name, this._bufferNames);
    if (t !== null) t.keep();
    if (options.persistent === false) this._nonPersistent.add(name);
    if (options.optional) this._optional.add(name);
    this.setSlot(name, t);
    return t;
  }

  /** Adds a child under any name (containers use '0', '1', ...). */
  protected registerModule<M extends Module>(name: string, m: M): M {
    if (name === '' || name.includes('.'))
      throw new TypeError(`Expected a module name without dots for ${this.constructor.name} but received '${name}'`);
    this._modules.set(name, m);
    return m;
  }

  private checkName(name: string, list: string[]): void {
    if (name === '' || name.includes('.'))
      throw new TypeError(`Expected a name without dots for ${this.constructor.name} but received '${name}'`);
    if (this._paramNames.includes(name) || this._bufferNames.includes(name))
      throw new Error(`${this.constructor.name}: '${name}' is already registered`);
    list.push(name);
  }

  private slot(name: string): Tensor | null {
    return ((this as unknown as Record<string, unknown>)[name] as Tensor | null | undefined) ?? null;
  }

  private setSlot(name: string, t: Tensor | null): void {
    Object.defineProperty(this, name, { value: t, writable: true, enumerable: false, configurable: true });
  }

  /** Replaces a registered parameter or buffer tensor (the old one is disposed). */
  protected replaceTensor(name: string, t: Tensor): void {
    const old = this.slot(name);
    t.keep();
    this.setSlot(name, t);
    if (old && old !== t) old.dispose();
  }

  // --- traversal ---------------------------------------------------------------------

  /** Direct children with their names, in registration order. */
  namedChildren(): [string, Module][] {
    const out: [string, Module][] = [];
    for (const key of Object.keys(this)) {
      if (key.startsWith('_')) continue;
      const v = (this as unknown as Record<string, unknown>)[key];
      if (v instanceof Module) out.push([key, v]);
    }
    for (const e of this._modules) out.push(e);
    return out;
  }

  children(): Module[] {
    return this.namedChildren().map(([, m]) => m);
  }

  /** This module and all its descendants, preorder, with dotted names ('' for this one). */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [];
    const seen = new Set<Module>();
    const visit = (m: Module, name: string): void => {
      if (seen.has(m)) return;
      seen.add(m);
      out.push([name, m]);
      for (const [n, c] of m.namedChildren()) visit(c, name === '' ? n : `${name}.${n}`);
    };
    visit(this, prefix);
    return out;
  }

  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }

  /** Runs fn on every module, children first (like PyTorch's Module.apply). */
  apply(fn: (m: Module) => void): this {
    for (const c of this.children()) c.apply(fn);
    fn(this);
    return this;
  }

  private namedMembers(kind: 'param' | 'buffer', persistentOnly: boolean): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    for (const [prefix, m] of this.namedModules()) {
      const names = kind === 'param' ? m._paramNames : m._bufferNames;
      for (const n of names) {
        if (persistentOnly && m._nonPersistent.has(n)) continue;
        const t = m.slot(n);
        if (t === null || seen.has(t)) continue;
        seen.add(t);
        out.push([prefix === '' ? n : `${prefix}.${n}`, t]);
      }
    }
    return out;
  }

  /** Every parameter with its state-dict name (shared parameters once). These are the module's own tensors: don't dispose them. */
  namedParameters(): [string, Tensor][] {
    return this.namedMembers('param', false);
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  namedBuffers(): [string, Tensor][] {
    return this.namedMembers('buffer', false);
  }

  buffers(): Tensor[] {
    return this.namedBuffers().map(([, t]) => t);
  }

  /** Number of parameter elements (only those that require grad when trainableOnly). */
  numParameters(options: { trainableOnly?: boolean } = {}): number {
    let n = 0;
    for (const p of this.parameters()) if (!options.trainableOnly || p.requiresGrad) n += p.numel;
    return n;
  }

  // --- state dict --------------------------------------------------------------------

  /**
   * The parameters and persistent buffers by PyTorch name (per module: its
   * parameters, then its buffers, then its children). The tensors are new
   * detached handles sharing the module's storage: the caller owns (disposes)
   * the handles, and values change when the module trains.
   */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [prefix, m] of this.namedModules()) {
      const p = prefix === '' ? '' : `${prefix}.`;
      for (const n of m._paramNames) {
        const t = m.slot(n);
        if (t) out.set(p + n, t.detach());
      }
      for (const n of m._bufferNames) {
        if (m._nonPersistent.has(n)) continue;
        const t = m.slot(n);
        if (t) out.set(p + n, t.detach());
      }
    }
    return out;
  }

  /** The tensors a state dict would hold, without new handles (internal use: loading and saving). */
  stateTensors(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [prefix, m] of this.namedModules()) {
      const p = prefix === '' ? '' : `${prefix}.`;
      for (const n of m._paramNames) {
        const t = m.slot(n);
        if (t) out.set(p + n, t);
      }
      for (const n of m._bufferNames) {
        const t = m.slot(n);
        if (t && !m._nonPersistent.has(n)) out.set(p + n, t);
      }
    }
    return out;
  }

  /**
   * Copies values from a state dict into the parameters and buffers (dtype is
   * converted, e.g. a float16 checkpoint into float32 weights). Every shape
   * mismatch, and with strict (default) every missing or unexpected key, is
   * listed in one StateDictError; nothing is copied when there is an error.
   */
  loadStateDict(sd: StateDictInput, options: LoadStateDictOptions = {}): LoadStateDictResult {
    const strict = options.strict ?? true;
    const entries = sd instanceof Map ? sd : new Map(Object.entries(sd));
    const own = this.stateTensors();
    const allowed = options.allowMissing === undefined ? () => false : matcher(options.allowMissing);
    const optional = this.optionalKeys();
    const missingKeys = [...own.keys()].filter((k) => !entries.has(k) && !optional.has(k));
    const reportedMissing = missingKeys.filter((k) => !allowed(k));
    const unexpectedKeys = [...entries.keys()].filter((k) => !own.has(k));
    const shapeMismatches: string[] = [];
    for (const [k, t] of own) {
      const src = entries.get(k);
      if (!src) continue;
      if (src.isDisposed) throw new TypeError(`loadStateDict: tensor '${k}' of the state dict is disposed`);
      const a = src.shape,
        b = t.shape;
      if (a.length !== b.length || a.some((d, i) => d !== b[i])) {
        shapeMismatches.push(`${k}: checkpoint ${shapeStr(a)}, model ${shapeStr(b)}`);
      }
    }
    const problems: string[] = [];
    if (shapeMismatches.length)
      problems.push(`size mismatch for ${shapeMismatches.length} key(s):\n  ${shapeMismatches.join('\n  ')}`);
    if (strict && reportedMissing.length)
      problems.push(`missing key(s) (${reportedMissing.length}): ${reportedMissing.join(', ')}`);
    if (strict && unexpectedKeys.length)
      problems.push(`unexpected key(s) (${unexpectedKeys.length}): ${unexpectedKeys.join(', ')}`);
    if (problems.length) {
      throw new StateDictError(
        `Error(s) in loading state dict for ${this.constructor.name}:\n${problems.join('\n')}`,
        missingKeys,
        unexpectedKeys,
        shapeMismatches,
      );
    }
    const loaded: string[] = [];
    T.noGrad(() => {
      for (const [k, t] of own) {
        const src = entries.get(k);
        if (!src) continue;
        t.copy_(src);
        loaded.push(k);
      }
    });
    return { missingKeys, unexpectedKeys, loaded };
  }

  private optionalKeys(): Set<string> {
    const out = new Set<string>();
    for (const [prefix, m] of this.namedModules())
      for (const n of m._optional) out.add(prefix === '' ? n : `${prefix}.${n}`);
    return out;
  }

  // --- modes and placement -----------------------------------------------------------

  train(mode = true): this {
    for (const m of this.modules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /**
   * Moves or converts every parameter and buffer in place of the old tensors:
   * a device, a floating dtype (integer buffers such as num_batches_tracked
   * stay as they are), or a memory format (applies to 4-d tensors, e.g.
   * 'channelsLast' conv weights). Create optimizers after calling to().
   */
  to(target: ToTarget): this {
    const spec =
      typeof target === 'string'
        ? MEMORY_FORMATS.includes(target)
          ? { memoryFormat: target as T.MemoryFormat }
          : T.isDevice(target)
            ? { device: target }
            : { dtype: target as T.DType }
        : target;
    // Tensors shared by several modules (tied weights) are converted once.
    const converted = new Map<Tensor, Tensor>();
    T.noGrad(() => {
      for (const m of this.modules()) {
        for (const n of [...m._paramNames, ...m._bufferNames]) {
          const t = m.slot(n);
          if (!t) continue;
          const done = converted.get(t);
          if (done) {
            m.setSlot(n, done);
            continue;
          }
          let cur = t;
          const convert = (next: Tensor): void => {
            if (cur !== t) cur.dispose();
            cur = next;
          };
          if (spec.device !== undefined && cur.device !== spec.device) convert(cur.to({ device: spec.device }));
          if (spec.dtype !== undefined && T.isFloating(cur.dtype) && cur.dtype !== spec.dtype)
            convert(cur.to({ dtype: spec.dtype }));
          if (
            spec.memoryFormat !== undefined &&
            spec.memoryFormat !== 'preserve' &&
            cur.ndim === 4 &&
            !cur.isContiguous(spec.memoryFormat)
          ) {
            convert(cur.contiguous(spec.memoryFormat));
          }
          if (cur === t) continue;
          const requiresGrad = t.requiresGrad;
          const leaf = cur.detach();
          cur.dispose();
          if (requiresGrad) leaf.setRequiresGrad(true);
          converted.set(t, leaf);
          m.replaceTensor(n, leaf);
        }
      }
    });
    return this;
  }

  // --- freezing ----------------------------------------------------------------------

  /**
   * Stops gradients for the parameters whose name matches (all when no
   * pattern): a glob ('layer[1-3].*' style `*`/`?`; a plain prefix such as
   * 'layer1' covers everything under it) or a RegExp. Returns the names.
   */
  freeze(pattern?: NamePattern): string[] {
    return this.setTrainable(pattern, false);
  }

  unfreeze(pattern?: NamePattern): string[] {
    return this.setTrainable(pattern, true);
  }

  private setTrainable(pattern: NamePattern | undefined, flag: boolean): string[] {
    const match = pattern === undefined ? () => true : matcher(pattern);
    const names: string[] = [];
    for (const [n, p] of this.namedParameters()) {
      if (!match(n)) continue;
      p.setRequiresGrad(flag);
      if (!flag) p.zeroGrad();
      names.push(n);
    }
    return names;
  }

  // --- hooks -------------------------------------------------------------------------

  /**
   * Calls hook(module, input, output) after every forward of this module (for
   * feature extraction). The output belongs to the running scope: keep() or
   * clone it to use it after the step. Returns a handle whose remove() undoes it.
   */
  registerForwardHook(hook: ForwardHook): HookHandle {
    this._hooks.push(hook);
    if (this._hooks.length === 1) {
      const inner = Object.getPrototypeOf(this).forward as (this: Module, x: Tensor) => Tensor;
      const self = this;
      // An own `forward` wraps the class's method only while hooks exist: no cost otherwise.
      Object.defineProperty(this, 'forward', {
        configurable: true,
        enumerable: false,
        writable: true,
        value: function hooked(x: Tensor): Tensor {
          let out = inner.call(self, x);
          for (const h of [...self._hooks]) {
            const r = h(self, x, out);
            if (r !== undefined && r !== out) {
              if (out !== x) out.dispose();
              out = r;
            }
          }
          return out;
        },
      });
    }
    let removed = false;
    return {
      remove: () => {
        if (removed) return;
        removed = true;
        this._hooks = this._hooks.filter((h) => h !== hook);
        if (this._hooks.length === 0) delete (this as unknown as Record<string, unknown>).forward;
      },
    };
  }

  // --- lifetime ----------------------------------------------------------------------

  /** Frees every parameter and buffer of this module and its children. Safe to call twice. */
  dispose(): void {
    for (const m of this.modules()) {
      if (m._disposed) continue;
      m._disposed = true;
      for (const n of [...m._paramNames, ...m._bufferNames]) m.slot(n)?.dispose();
    }
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** One line per module with its parameter count (for logs). */
  summary(): string {
    const lines: string[] = [];
    for (const [name, m] of this.namedModules()) {
      const own = m._paramNames.reduce((a, n) => a + (m.slot(n)?.numel ?? 0), 0);
      const depth = name === '' ? 0 : name.split('.').length;
      lines.push(`${'  '.repeat(depth)}${name || '(root)'}: ${m.constructor.name}${own ? ` (${own} params)` : ''}`);
    }
    lines.push(`total parameters: ${this.numParameters()}`);
    return lines.join('\n');
  }
}

/** A forward step: a module or a function of one tensor. */
export type Step = Module | ((x: Tensor) => Tensor);

/**
 * Applies the steps in turn, freeing each intermediate result as soon as the
 * next step has consumed it (the autograd graph keeps what backward needs).
 * The input is never freed; a step may return its input (in-place ops).
 */
export function pipe(x: Tensor, ...steps: Step[]): Tensor {
  let cur = x;
  for (const s of steps) {
    const next = s instanceof Module ? s.forward(cur) : s(cur);
    if (cur !== x && next !== cur) cur.dispose();
    cur = next;
  }
  return cur;
}
