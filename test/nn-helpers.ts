// Shared by the nn/optim/models tests: running the PyTorch oracle once per file and comparing tensors.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '../src/tensor/index.js';
import { readSafetensorsSync } from '../src/io/index.js';

const ORACLE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'oracle');

export interface OracleRun { dir: string; json: Record<string, unknown>; cleanup(): void }

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
    const af = a.to({ dtype: 'float64' }), bf = b.to({ dtype: 'float64' });
    const diff = af.sub(bf).abs().max().item();
    const scale = bf.abs().max().item();
    return diff === 0 ? 0 : diff / Math.max(scale, 1e-30);
  });
}
