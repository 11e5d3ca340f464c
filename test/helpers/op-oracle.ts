// Parity harness: runs op cases in goodsrec, then ONE PyTorch process
// (test/oracle/ops_oracle.py) on the same inputs and cotangents, and compares
// forward outputs and input gradients. Spawning Python per op would cost the
// ~1.5 s torch import each time.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../../src/tensor/index.js';

export const ORACLE_PYTHON = process.env.GOODSREC_ORACLE_PYTHON ?? '/usr/bin/python3';

/** How an input is generated: normal, uniform [0,1), positive (0.5..2), wide normal (x4), integers [lo, hi), a bool mask, or custom. */
export type Gen =
  | 'randn'
  | 'rand'
  | 'pos'
  | 'wide'
  | 'mask'
  | { int: [number, number] }
  | { perm: number }
  | (() => T.Tensor);

export interface InputSpec {
  /** Logical shape the op sees. */
  shape: number[];
  dtype?: T.DType;
  gen?: Gen;
  /** Gradient wanted (default: true for floating dtypes). */
  grad?: boolean;
  /** T: a transposed view (last two dims); slice: every 2nd element of the last dim; cl: channels_last storage. */
  layout?: 'T' | 'slice' | 'cl';
}

export interface Tolerance {
  rtol: number;
  atol: number;
}
/** float32: |a - b| <= 1e-5·|b| + 1e-6·max(1, max|b|) elementwise, b the PyTorch value. */
export const F32_TOL: Tolerance = { rtol: 1e-5, atol: 1e-6 };
/** bfloat16 (8-bit mantissa, eps 2^-8 ≈ 3.9e-3): two ulps relative. */
export const BF16_TOL: Tolerance = { rtol: 8e-3, atol: 8e-3 };
/** float16 (11-bit mantissa, eps ≈ 9.8e-4): two ulps relative. */
export const F16_TOL: Tolerance = { rtol: 2e-3, atol: 2e-3 };

export interface OpCase {
  name: string;
  inputs: InputSpec[];
  js: (x: T.Tensor[]) => T.Tensor | T.Tensor[];
  /** Python expression over x (list of inputs), torch and F. */
  py: string;
  tol?: Tolerance;
  /** Run the forward inside autocast('cpu') / torch.autocast('cpu', bfloat16). */
  autocast?: boolean;
}

interface Stored {
  offset: number;
  kind: 'float64' | 'int64' | 'bool';
  shape: number[];
  dtype: string;
  channelsLast: boolean;
}
interface PyResult {
  outputs?: Stored[];
  grads?: (Stored | null)[];
  error?: string;
  trace?: string;
}

export interface Values {
  shape: number[];
  dtype: string;
  channelsLast: boolean;
  values: Float64Array;
}
interface JsResult {
  outputs: Values[];
  grads: (Values | null)[];
  error?: string;
}

export interface CaseResult {
  js: JsResult;
  py: PyResult;
  pyValues: { outputs: Values[]; grads: (Values | null)[] };
}

const isFloat = (d: T.DType): boolean => T.isFloating(d);

export function generate(spec: InputSpec, baseShape: number[]): T.Tensor {
  const gen = spec.gen ?? 'randn';
  let t: T.Tensor;
  if (typeof gen === 'function') return gen();
  if (gen === 'randn') t = T.randn(baseShape);
  else if (gen === 'rand') t = T.rand(baseShape);
  else if (gen === 'pos') t = T.rand(baseShape).mul(1.5).add(0.5);
  else if (gen === 'wide') t = T.randn(baseShape).mul(4);
  else if (gen === 'mask') t = T.rand(baseShape).lt(0.5);
  else if ('int' in gen) t = T.randint(gen.int[0], gen.int[1], baseShape);
  else t = T.rand(baseShape).argsort(gen.perm);
  // Masks default to bool, integer generators to int64, the rest to float32.
  const dtype = spec.dtype ?? (T.isFloating(t.dtype) ? 'float32' : t.dtype);
  return t.dtype === dtype ? t : t.to({ dtype });
}

export function baseShapeOf(spec: InputSpec): number[] {
  const s = [...spec.shape];
  const n = s.length;
  if (spec.layout === 'T') [s[n - 2], s[n - 1]] = [s[n - 1]!, s[n - 2]!];
  if (spec.layout === 'slice') s[n - 1] = s[n - 1]! * 2;
  return s;
}

export function values(t: T.Tensor): Values {
  const channelsLast = t.ndim === 4 && t.isContiguous('channelsLast') && !t.isContiguous();
  return { shape: [...t.shape], dtype: t.dtype, channelsLast, values: Float64Array.from(t.toArray()) };
}

function bytesOf(t: T.Tensor): Uint8Array {
  const d = t.data() as ArrayBufferView;
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

class BinWriter {
  chunks: Uint8Array[] = [];
  size = 0;
  add(bytes: Uint8Array): number {
    const pad = (8 - (this.size % 8)) % 8;
    if (pad) {
      this.chunks.push(new Uint8Array(pad));
      this.size += pad;
    }
    const off = this.size;
    this.chunks.push(bytes);
    this.size += bytes.length;
    return off;
  }
  concat(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** Runs every case in goodsrec and in PyTorch; returns per-case results keyed by name. */
export function runOracle(cases: OpCase[], seed = 1234): Map<string, CaseResult> {
  const names = new Set<string>();
  for (const c of cases) {
    if (names.has(c.name)) throw new Error(`duplicate op case name ${c.name}`);
    names.add(c.name);
  }
  T.manualSeed(seed);
  const bin = new BinWriter();
  const manifestCases: unknown[] = [];
  const jsResults = new Map<string, JsResult>();
  for (const c of cases) {
    T.tidy(() => {
      const leaves: T.Tensor[] = [];
      const views: T.Tensor[] = [];
      const specs: unknown[] = [];
      for (const s of c.inputs) {
        let base = generate(s, baseShapeOf(s));
        if (s.layout === 'cl') base = base.contiguous('channelsLast');
        const grad = s.grad ?? isFloat(base.dtype);
        if (grad) base.setRequiresGrad(true);
        leaves.push(base);
        views.push(
          s.layout === 'T' ? base.transpose(-1, -2) : s.layout === 'slice' ? base.slice(-1, 0, undefined, 2) : base,
        );
        specs.push({
          offset: bin.add(bytesOf(base)),
          dtype: base.dtype,
          shape: [...base.shape],
          layout: s.layout ?? null,
          grad,
        });
      }
      const result: JsResult = { outputs: [], grads: [] };
      const cots: unknown[] = [];
      try {
        const raw = c.autocast ? T.autocast('cpu', () => c.js(views)) : c.js(views);
        const outs = Array.isArray(raw) ? raw : [raw];
        result.outputs = outs.map(values);
        let loss: T.Tensor | undefined;
        outs.forEach((o, i) => {
          if (!o.requiresGrad) return;
          const cot = T.randn(o.shape, { dtype: o.dtype });
          cots.push({ output: i, offset: bin.add(bytesOf(cot)), dtype: cot.dtype, shape: [...cot.shape] });
          const term = o.mul(cot).sum();
          loss = loss ? loss.add(term) : term;
        });
        if (loss) loss.backward();
        result.grads = leaves.map((l) => {
          const g = l.grad;
          return g ? values(g) : null;
        });
      } catch (e) {
        result.error = (e as Error).message;
      }
      jsResults.set(c.name, result);
      manifestCases.push({ name: c.name, py: c.py, inputs: specs, cots, autocast: c.autocast ?? false });
    });
  }

  const dir = mkdtempSync(join(tmpdir(), 'goodsrec-oracle-'));
  try {
    writeFileSync(join(dir, 'inputs.bin'), bin.concat());
    writeFileSync(join(dir, 'inputs.json'), JSON.stringify({ threads: T.getNumThreads(), cases: manifestCases }));
    const script = new URL('../../../test/oracle/ops_oracle.py', import.meta.url);
    const r = spawnSync(ORACLE_PYTHON, [script.pathname, dir], { encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0) {
      throw new Error(
        `PyTorch oracle failed (${ORACLE_PYTHON} ${script.pathname}; status ${r.status}${r.error ? ', ' + r.error.message : ''}): ${r.stderr}\n` +
          'The oracle is Debian python3-torch 1.13 (bash scripts/setup.sh --test installs it).',
      );
    }
    const out = JSON.parse(readFileSync(join(dir, 'outputs.json'), 'utf8')) as { results: Record<string, PyResult> };
    const data = readFileSync(join(dir, 'outputs.bin'));
    const ab = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
    const load = (s: Stored): Values => {
      const n = s.shape.reduce((a, b) => a * b, 1);
      const v =
        s.kind === 'float64'
          ? new Float64Array(ab, s.offset, n)
          : s.kind === 'int64'
            ? Float64Array.from(new BigInt64Array(ab, s.offset, n), (x) => Number(x))
            : Float64Array.from(new Uint8Array(ab, s.offset, n));
      return { shape: s.shape, dtype: s.dtype, channelsLast: s.channelsLast, values: Float64Array.from(v) };
    };
    const results = new Map<string, CaseResult>();
    for (const c of cases) {
      const py = out.results[c.name] ?? { error: 'missing from oracle output' };
      results.set(c.name, {
        js: jsResults.get(c.name)!,
        py,
        pyValues: { outputs: (py.outputs ?? []).map(load), grads: (py.grads ?? []).map((g) => (g ? load(g) : null)) },
      });
    }
    return results;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Largest violation of the tolerance (<= 0 means within), for the message. */
export function compareValues(what: string, a: Values, b: Values, tol: Tolerance, exact: boolean): string | null {
  if (a.shape.join(',') !== b.shape.join(',')) return `${what}: shape [${a.shape}] vs PyTorch [${b.shape}]`;
  if (a.dtype !== b.dtype) return `${what}: dtype ${a.dtype} vs PyTorch ${b.dtype}`;
  let maxAbs = 0;
  for (const v of b.values) maxAbs = Math.max(maxAbs, Math.abs(v));
  const atol = tol.atol * Math.max(1, maxAbs);
  for (let i = 0; i < a.values.length; i++) {
    const x = a.values[i]!;
    const y = b.values[i]!;
    if (Number.isNaN(x) && Number.isNaN(y)) continue;
    const bad = exact ? x !== y : !(Math.abs(x - y) <= tol.rtol * Math.abs(y) + atol);
    if (bad) return `${what}: element ${i} is ${x}, PyTorch ${y} (rtol ${tol.rtol}, atol ${atol.toExponential(2)})`;
  }
  return null;
}

/** Throws with a precise message when goodsrec and PyTorch disagree. */
export function assertMatches(c: OpCase, r: CaseResult): void {
  if (r.py.error) throw new Error(`PyTorch raised for ${c.name}: ${r.py.error}\n${r.py.trace ?? ''}`);
  if (r.js.error) throw new Error(`goodsrec raised for ${c.name}: ${r.js.error}`);
  const tol = c.tol ?? F32_TOL;
  const { outputs, grads } = r.pyValues;
  if (r.js.outputs.length !== outputs.length)
    throw new Error(`${c.name}: ${r.js.outputs.length} outputs vs PyTorch ${outputs.length}`);
  const problems: string[] = [];
  r.js.outputs.forEach((o, i) => {
    const p = outputs[i]!;
    const exact = !T.isFloating(p.dtype as T.DType);
    const m = compareValues(`output ${i}`, o, p, tol, exact);
    if (m) problems.push(m);
    if (o.channelsLast !== p.channelsLast)
      problems.push(`output ${i}: channels_last ${o.channelsLast} vs PyTorch ${p.channelsLast}`);
  });
  r.js.grads.forEach((g, i) => {
    const p = grads[i] ?? null;
    if ((g === null) !== (p === null)) {
      problems.push(`grad of input ${i}: ${g ? 'present' : 'missing'} vs PyTorch ${p ? 'present' : 'missing'}`);
      return;
    }
    if (g && p) {
      const m = compareValues(`grad of input ${i}`, g, p, tol, false);
      if (m) problems.push(m);
    }
  });
  if (problems.length) throw new Error(`${c.name}:\n  ${problems.join('\n  ')}`);
}
