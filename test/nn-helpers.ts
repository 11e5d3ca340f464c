// Shared by the nn/optim/models tests: running the PyTorch oracle once per file and comparing tensors.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '../src/tensor/index.js';
import { readSafetensorsSync } from '../src/io/index.js';
import type { ClassifierModel, CheckpointFilter } from '../src/models/index.js';

const ORACLE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'oracle');

export interface OracleRun {
  dir: string;
  json: Record<string, unknown>;
  cleanup(): void;
}

/** Runs test/oracle/<script> with /usr/bin/python3 (the interpreter that has torch) into a fresh temp dir. */
export function runOracle(script: string, ...args: string[]): OracleRun {
  const dir = mkdtempSync(join(tmpdir(), 'goodsrec-nn-'));
  execFileSync('/usr/bin/python3', [join(ORACLE_DIR, script), dir, ...args], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE', PYTHONWARNINGS: 'ignore' },
  });
  const json = JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8')) as Record<string, unknown>;
  return { dir, json, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Tensors of a safetensors file (kept: free them with dispose). */
export function loadTensors(path: string): Map<string, T.Tensor> {
  const out = new Map<string, T.Tensor>();
  for (const [k, r] of readSafetensorsSync(path)) out.set(k, T.fromRaw(r).keep());
  return out;
}

/** max|a - b| / max|b| (0 when both are all zeros); shapes must match. */
export function relError(a: T.Tensor, b: T.Tensor): number {
  if (a.shape.join() !== b.shape.join()) return Infinity;
  return T.tidy(() => {
    const af = a.to({ dtype: 'float64' }),
      bf = b.to({ dtype: 'float64' });
    const diff = af.sub(bf).abs().max().item();
    const scale = bf.abs().max().item();
    return diff === 0 ? 0 : diff / Math.max(scale, 1e-30);
  });
}

/**
 * Tolerance of the float64 twin checks (max-abs error over max-abs value, per tensor). Measured errors are
 * 1e-13..1e-10 on Intel and AMD; a wrong architecture gives 1e-2..1e0, so there is room on both sides.
 */
export const TWIN_TOL = 1e-7;

export interface TwinComparison {
  /** Relative error of the eval-mode logits and of the train-mode loss. */
  evalErr: number;
  lossErr: number;
  /** Parameters whose gradient is over TWIN_TOL (name and error), or missing. */
  failures: string[];
  /** The largest gradient error (zero-gradient parameters excluded). */
  maxGradErr: number;
  compared: number;
  expected: number;
}

/**
 * Runs `model` (already in the oracle's dtype, float64) on the oracle's `x`/`y` in eval mode and for one
 * train-mode cross-entropy backward, and compares logits, loss and every parameter's gradient with the
 * oracle's `eval.logits`, `loss` and `grad.<name>`. Gradients that are zero in exact arithmetic (`zeroGrad`:
 * biases right before a train-mode BatchNorm) are bounded by TWIN_TOL times the largest gradient instead.
 */
/**
 * One parameter's gradient against the oracle's (float64): relative error below TWIN_TOL. A gradient the
 * oracle gives as zero up to rounding (e.g. a BatchNorm bias whose shift the next train-mode BatchNorm removes),
 * or one known to be zero, is rounding noise on both sides, which other kernels (libtorch 2.x, another BLAS)
 * make differently: it must be ~0 here too, relative to the largest gradient (`scale`).
 */
export function compareGradient(
  name: string,
  g: T.Tensor,
  ref: T.Tensor,
  scale: number,
  knownZero = false,
): { err: number; failure: string | null } {
  const refMax = ref.abs().max().item();
  if (knownZero || refMax <= 1e-12 * scale) {
    const m = Math.max(g.abs().max().item(), refMax);
    return {
      err: NaN,
      failure: m <= TWIN_TOL * scale ? null : `${name}: |grad| ${m} should be ~0 (largest gradient ${scale})`,
    };
  }
  const err = relError(g, ref);
  return { err, failure: err < TWIN_TOL ? null : `${name} ${err}` };
}

export function compareTwin(
  model: ClassifierModel,
  result: Map<string, T.Tensor>,
  opts: { filter?: CheckpointFilter | undefined; zeroGrad?: RegExp } = {},
): TwinComparison {
  const x = result.get('x')!,
    y = result.get('y')!;
  model.eval();
  const evalErr = T.tidy(() =>
    relError(
      T.noGrad(() => model.forward(x)),
      result.get('eval.logits')!,
    ),
  );
  model.train();
  const loss = T.tidy(() => {
    const l = T.F.crossEntropy(model.forward(x), y);
    l.backward();
    return l.item();
  });
  const refLoss = result.get('loss')!.item();
  const lossErr = Math.abs(loss - refLoss) / Math.abs(refLoss);
  const failures: string[] = [];
  let compared = 0,
    maxGradErr = 0;
  T.tidy(() => {
    let refs = new Map([...result].filter(([k]) => k.startsWith('grad.')).map(([k, t]) => [k.slice(5), t]));
    if (opts.filter) refs = opts.filter(refs, model);
    const params = model.namedParameters();
    const scale = Math.max(...params.map(([, p]) => (p.grad ? p.grad.abs().max().item() : 0)));
    for (const [k, p] of params) {
      const ref = refs.get(k);
      const g = p.grad;
      if (!ref) {
        failures.push(`${k}: the oracle has no gradient`);
        continue;
      }
      compared++;
      if (!g) {
        failures.push(`${k}: no gradient`);
        continue;
      }
      const { err, failure } = compareGradient(k, g, ref, scale, opts.zeroGrad?.test(k) ?? false);
      if (Number.isFinite(err)) maxGradErr = Math.max(maxGradErr, err);
      if (failure) failures.push(failure);
    }
  });
  const expected = [...result.keys()].filter((k) => k.startsWith('grad.')).length;
  return { evalErr, lossErr, failures, maxGradErr, compared, expected };
}
