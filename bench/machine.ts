// One line that tells machines apart in benchmark output: a speed figure from one CPU kind is not a fact about another.
import { readdirSync, realpathSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { cpuFeatures } from '../src/util/cpu-features.js';

/** CPU model, the ISA flags that pick kernels, cores, load, BLAS and OpenBLAS overrides, libtorch build. */
export function machineLine(extra: Record<string, string | number | boolean | undefined> = {}): string {
  const { model, isa } = cpuFeatures();
  let blas = 'unknown';
  try {
    const dir = '/usr/lib/x86_64-linux-gnu';
    const lib = readdirSync(dir).find((f) => f === 'libblas.so.3');
    // Debian's alternatives: .../openblas-pthread/libblas.so.3 names the implementation by its folder.
    if (lib) blas = realpathSync(`${dir}/${lib}`).replace(`${dir}/`, '');
  } catch {
    /* no Debian layout */
  }
  const parts: Record<string, string | number | boolean | undefined> = {
    cpu: model,
    isa: isa.join(',') || 'none',
    cores: availableParallelism(),
    load: loadavg()[0]!.toFixed(2),
    blas,
    OPENBLAS_CORETYPE: process.env.OPENBLAS_CORETYPE ?? 'unset',
    ...extra,
  };
  return Object.entries(parts)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}: ${v}`)
    .join('; ');
}
