// Containers: Sequential (children '0', '1', ... run in order), ModuleList and ModuleDict.
import type * as T from '../../tensor/index.js';
import { Module, pipe } from '../module.js';

/** Children named '0', '1', ... in order (shared by Sequential and ModuleList). */
abstract class IndexedModules extends Module {
  private readonly _items: Module[] = [];

  constructor(modules: Iterable<Module>) {
    super();
    for (const m of modules) this.append(m);
  }

  append(m: Module): this {
    this.registerModule(String(this._items.length), m);
    this._items.push(m);
    return this;
  }

  get length(): number {
    return this._items.length;
  }

  at(i: number): Module {
    const m = this._items.at(i);
    if (!m) throw new RangeError(`${this.constructor.name} index ${i} out of range for ${this._items.length} modules`);
    return m;
  }

  [Symbol.iterator](): Iterator<Module> {
    return this._items[Symbol.iterator]();
  }
}

/** Runs its children in order. */
export class Sequential extends IndexedModules {
  constructor(...modules: Module[]) {
    super(modules);
  }

  override forward(x: T.Tensor): T.Tensor {
    return pipe(x, ...this);
  }
}

export class ModuleList extends IndexedModules {
  constructor(modules: Iterable<Module> = []) {
    super(modules);
  }
}

export class ModuleDict extends Module {
  private readonly _items = new Map<string, Module>();

  constructor(modules: Iterable<[string, Module]> | Record<string, Module> = {}) {
    super();
    const entries = Symbol.iterator in modules ? (modules as Iterable<[string, Module]>) : Object.entries(modules);
    for (const [k, m] of entries) this.set(k, m);
  }

  set(name: string, m: Module): this {
    if (this._items.has(name)) throw new Error(`ModuleDict already has '${name}'`);
    this.registerModule(name, m);
    this._items.set(name, m);
    return this;
  }

  get(name: string): Module {
    const m = this._items.get(name);
    if (!m) throw new RangeError(`ModuleDict has no '${name}' (has: ${[...this._items.keys()].join(', ')})`);
    return m;
  }

  has(name: string): boolean {
    return this._items.has(name);
  }
  keys(): string[] {
    return [...this._items.keys()];
  }
  entries(): [string, Module][] {
    return [...this._items.entries()];
  }
}
