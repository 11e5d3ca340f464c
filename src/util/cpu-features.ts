// The CPU's model and the ISA flags that decide which kernels libtorch/oneDNN run: recorded with a run and
// printed by the benches (a speed figure from one CPU kind is not a fact about another), and checked before
// bf16 autocast on CPU, which is only fast with native bf16 instructions.
import { readFileSync } from 'node:fs';

export interface CpuFeatures {
  /** e.g. 'AMD EPYC 7B13', 'unknown CPU' where /proc/cpuinfo is missing. */
  model: string;
  /** The kernel-relevant flags present: avx2, avx512f, avx512_vnni, avx_vnni, avx512_bf16, amx_tile, amx_bf16, amx_int8. */
  isa: string[];
}

const KERNEL_FLAGS = ['avx2', 'avx512f', 'avx512_vnni', 'avx_vnni', 'avx512_bf16', 'amx_tile', 'amx_bf16', 'amx_int8'];

/** Reads /proc/cpuinfo (Linux); elsewhere the model is unknown and no flags are reported. */
export function cpuFeatures(cpuinfo?: string): CpuFeatures {
  let info = cpuinfo;
  if (info === undefined) {
    try {
      info = readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      return { model: 'unknown CPU', isa: [] };
    }
  }
  const model = /^model name\s*:\s*(.*)$/m.exec(info)?.[1]?.trim() || 'unknown CPU';
  const flags = new Set((/^flags\s*:\s*(.*)$/m.exec(info)?.[1] ?? '').split(/\s+/));
  return { model, isa: KERNEL_FLAGS.filter((f) => flags.has(f)) };
}

/**
 * Whether bf16 matmuls and convolutions run natively (AVX512-BF16 or AMX-BF16). Without them oneDNN converts
 * to fp32 and back around every op, so bf16 autocast is slower than fp32. Null when the flags are unknown.
 */
export function cpuHasNativeBf16(f: CpuFeatures = cpuFeatures()): boolean | null {
  if (f.isa.length === 0) return null;
  return f.isa.includes('avx512_bf16') || f.isa.includes('amx_bf16');
}

/**
 * Whether int8 dot products run natively (AVX512-VNNI, AVX-VNNI or AMX-INT8). Without them onnxruntime's
 * int8 convolutions gain nothing over fp32 (onnxruntime issue 17389), so the server keeps fp32 there.
 * Null when the flags are unknown.
 */
export function cpuHasVnni(f: CpuFeatures = cpuFeatures()): boolean | null {
  if (f.isa.length === 0) return null;
  return f.isa.includes('avx512_vnni') || f.isa.includes('avx_vnni') || f.isa.includes('amx_int8');
}
