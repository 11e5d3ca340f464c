/** Shared helpers for the data tests: fixture paths, the PyTorch oracle, small image builders. */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_CONFIG } from '../src/run/config.js';

/** Repository root (tests run from dist/test/). */
export const REPO = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
export const GROCERY = resolve(REPO, '..', 'shared', 'datasets', 'grocery-store');
export const ORACLE_PY = '/usr/bin/python3';

const created: string[] = [];
process.on('exit', () => {
  for (const d of created) rmSync(d, { recursive: true, force: true });
});

/** A fresh temp folder, removed when the test process exits. */
export function tmpDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), `goodsrec-${prefix}-`));
  created.push(d);
  return d;
}

export function groceryAvailable(): boolean {
  return existsSync(join(GROCERY, 'dataset', 'classes.csv'));
}

/** Fails with a clear message when the oracle interpreter lacks torch/torchvision. */
export function requireOracle(): void {
  const r = spawnSync(ORACLE_PY, ['-c', 'import torch, torchvision, PIL, numpy'], { encoding: 'utf8' });
  if (r.status !== 0) {
    throw new Error(
      `the PyTorch oracle is missing: ${ORACLE_PY} cannot import torch/torchvision/PIL/numpy (run scripts/setup.sh, which installs python3-torchvision). ${r.stderr ?? r.error?.message ?? ''}`,
    );
  }
}

export interface OracleOutput {
  index: number;
  name: string;
  shape: number[];
  dtype: string;
  data: Uint8Array | Float32Array;
}

/** Runs scripts/oracle/transforms.py on the images and returns its outputs. */
export function runTransformOracle(images: string[]): OracleOutput[] {
  requireOracle();
  const out = tmpDir('oracle');
  // The recipe's mean/std from their one source, the run config's defaults.
  const norm = JSON.stringify({ mean: DEFAULT_CONFIG.input.mean, std: DEFAULT_CONFIG.input.std });
  const stdout = execFileSync(ORACLE_PY, [join(REPO, 'scripts', 'oracle', 'transforms.py'), out, ...images], {
    encoding: 'utf8',
    env: { ...process.env, GOODSREC_NORM: norm },
  });
  return stdout
    .trim()
    .split('\n')
    .map((l) => {
      const m = JSON.parse(l) as Omit<OracleOutput, 'data'>;
      const buf = readFileSync(join(out, `${m.index}.${m.name}.bin`));
      const data =
        m.dtype === 'float32'
          ? new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4)
          : new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
      return { ...m, data };
    });
}

export interface DiffStats {
  maxAbs: number;
  meanAbs: number;
  fracOver: number;
}

/** Max / mean absolute difference and the fraction of elements differing by more than `tol`. */
export function diffStats(a: ArrayLike<number>, b: ArrayLike<number>, tol = 0): DiffStats {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let max = 0,
    sum = 0,
    over = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (d > max) max = d;
    sum += d;
    if (d > tol) over++;
  }
  return { maxAbs: max, meanAbs: sum / a.length, fracOver: over / a.length };
}
