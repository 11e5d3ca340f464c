// Which mixed precision a run trains in, and why (issue 27 item 1). `--amp auto` picks bf16 autocast on CPUs
// that run bf16 natively (AVX512-BF16 or AMX), fp32 on the others (where oneDNN emulates bf16 and it is
// slower), and fp16 with a GradScaler on CUDA. The reason is printed at start and kept in versions.json so a
// figure from one machine is never read as a fact about another.
import type { TrainConfig } from '../run/config.js';
import type * as T from '../tensor/index.js';
import { isCuda } from '../tensor/device.js';
import { type CpuFeatures, cpuFeatures, cpuHasNativeBf16 } from '../util/cpu-features.js';

export type AmpMode = 'off' | 'bf16' | 'fp16';

export interface AmpChoice {
  /** What the run trains in. */
  amp: AmpMode;
  /** What the config asked for ('auto' or an explicit mode). */
  requested: TrainConfig['amp'];
  /** One sentence: why this mode. */
  reason: string;
}

export function chooseAmp(requested: TrainConfig['amp'], device: T.Device, cpu?: CpuFeatures): AmpChoice {
  const onCuda = isCuda(device);
  if (requested === 'fp16' && !onCuda) throw new Error("amp 'fp16' needs a CUDA device; on CPU use 'bf16' or 'off'");
  if (requested !== 'auto') return { amp: requested, requested, reason: 'set in the config' };
  if (onCuda) return { amp: 'fp16', requested, reason: 'auto on CUDA: fp16 autocast with a GradScaler' };
  const f = cpu ?? cpuFeatures();
  const native = cpuHasNativeBf16(f);
  if (native === true) {
    const isa = f.isa.filter((x) => x === 'avx512_bf16' || x === 'amx_bf16').join(', ');
    return { amp: 'bf16', requested, reason: `auto on CPU: ${f.model} has ${isa}, so bf16 autocast runs natively` };
  }
  return {
    amp: 'off',
    requested,
    reason:
      native === false
        ? `auto on CPU: ${f.model} has neither AVX512-BF16 nor AMX (bf16 would be emulated and slower), so fp32`
        : 'auto on CPU: the CPU flags are unknown, so fp32',
  };
}
