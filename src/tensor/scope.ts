// Deterministic memory: tidy() scopes in the manner of TensorFlow.js. Every
// tensor created inside a scope is freed when it ends, except the tensors in
// the returned value and those marked with keep().
export interface ScopedResource {
  dispose(): void;
  readonly isDisposed: boolean;
}

const SCOPED = Symbol.for('goodsrec.scoped');

interface Scope {
  tracked: Set<ScopedResource>;
  name: string;
}
const scopes: Scope[] = [];
const kept = new WeakSet<ScopedResource>();

export function markScoped(cls: { prototype: object }): void {
  Object.defineProperty(cls.prototype, SCOPED, { value: true });
}

function isScoped(v: unknown): v is ScopedResource {
  return typeof v === 'object' && v !== null && (v as Record<symbol, unknown>)[SCOPED] === true;
}

/** Called by every new tensor: the innermost open scope owns it. */
export function track(r: ScopedResource): void {
  const top = scopes[scopes.length - 1];
  if (top) top.tracked.add(r);
}

/** Removes a tensor from scope ownership: no tidy() will free it (dispose it yourself). */
export function keep<T extends ScopedResource>(r: T): T {
  kept.add(r);
  for (const s of scopes) s.tracked.delete(r);
  return r;
}

/** Tensors reachable from a value: itself, array items, Map values, plain-object values. */
export function collectScoped(value: unknown, out: Set<ScopedResource> = new Set(), depth = 0): Set<ScopedResource> {
  if (depth > 8 || value === null || typeof value !== 'object') return out;
  if (isScoped(value)) {
    out.add(value);
    return out;
  }
  if (Array.isArray(value)) {
    for (const v of value) collectScoped(v, out, depth + 1);
    return out;
  }
  if (value instanceof Map) {
    for (const v of value.values()) collectScoped(v, out, depth + 1);
    return out;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto === Object.prototype || proto === null) {
    for (const v of Object.values(value as Record<string, unknown>)) collectScoped(v, out, depth + 1);
  }
  return out;
}

/**
 * Runs fn in a new scope. Tensors created inside are disposed at the end
 * (also when fn throws), except those in the result, which move to the
 * enclosing scope. fn must be synchronous: awaiting inside would let other
 * work create tensors in this scope.
 */
export function tidy<T>(fn: () => T, name = 'tidy'): T {
  const scope: Scope = { tracked: new Set(), name };
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    endScope(scope, new Set());
    throw e;
  }
  if (result instanceof Promise) {
    endScope(scope, new Set());
    throw new Error(
      `${name}(): the function returned a Promise; tidy() only takes synchronous functions (use explicit dispose() across awaits)`,
    );
  }
  endScope(scope, collectScoped(result));
  return result;
}

function endScope(scope: Scope, survivors: Set<ScopedResource>): void {
  const idx = scopes.lastIndexOf(scope);
  if (idx >= 0) scopes.splice(idx, 1);
  const parent = scopes[scopes.length - 1];
  for (const r of scope.tracked) {
    if (survivors.has(r)) {
      if (parent && !kept.has(r)) parent.tracked.add(r);
      continue;
    }
    if (!kept.has(r)) r.dispose();
  }
}

/** Number of open scopes (for tests). */
export function scopeDepth(): number {
  return scopes.length;
}
