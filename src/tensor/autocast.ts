// Mixed precision: an autocast scope (libtorch's own autocast: eligible ops
// run in the lower precision) and a gradient scaler for float16.
import { call } from './native.js';
import { dtypeCode, type DType } from './dtype.js';
import type { Tensor } from './tensor.js';

export type AutocastDevice = 'cpu' | 'cuda';

/**
 * Runs fn with autocast on for the device type: bfloat16 on CPU (libtorch's
 * CPU autocast supports bfloat16 only), float16 or bfloat16 on CUDA.
 */
export function autocast<T>(device: AutocastDevice, fn: () => T, dtype?: DType): T {
  const dt: DType = dtype ?? (device === 'cpu' ? 'bfloat16' : 'float16');
  if (device === 'cpu' && dt !== 'bfloat16')
    throw new TypeError(`Error in autocast: CPU autocast supports bfloat16 only, not ${dt}`);
  if (dt !== 'bfloat16' && dt !== 'float16')
    throw new TypeError(`Error in autocast: dtype must be float16 or bfloat16, not ${dt}`);
  const prev = call('setAutocast', device, true, dtypeCode(dt));
  call('autocastEnter');
  try {
    const r = fn();
    if (r instanceof Promise) throw new Error('autocast(): the function must be synchronous');
    return r;
  } finally {
    call('autocastExit');
    call('setAutocast', device, prev.enabled, prev.dtype);
  }
}

export interface GradScalerOptions {
  initScale?: number;
  growthFactor?: number;
  backoffFactor?: number;
  growthInterval?: number;
  enabled?: boolean;
}

/**
 * Dynamic loss scaling for float16 training (torch.cuda.amp.GradScaler's
 * rules): scale the loss, unscale gradients before the step, skip the step
 * when any gradient is inf/NaN and halve the scale; grow it after
 * growthInterval clean steps.
 */
export class GradScaler {
  scale: number;
  readonly growthFactor: number;
  readonly backoffFactor: number;
  readonly growthInterval: number;
  readonly enabled: boolean;
  private growthTracker = 0;

  constructor(o: GradScalerOptions = {}) {
    this.scale = o.initScale ?? 65536;
    this.growthFactor = o.growthFactor ?? 2;
    this.backoffFactor = o.backoffFactor ?? 0.5;
    this.growthInterval = o.growthInterval ?? 2000;
    this.enabled = o.enabled ?? true;
  }

  /** loss * scale (a new tensor). */
  scaleLoss(loss: Tensor): Tensor {
    return this.enabled ? loss.mul(this.scale) : loss.mul(1);
  }

  /**
   * Unscales the gradients in place; returns true when all are finite (the
   * optimizer step may run) and updates the scale.
   */
  unscaleAndUpdate(grads: readonly Tensor[]): boolean {
    if (!this.enabled)
      return call(
        'allFinite',
        grads.map((g) => g.handle),
      );
    const foundInf = call(
      'unscaleAndCheck',
      grads.map((g) => g.handle),
      1 / this.scale,
    );
    if (foundInf) {
      this.scale *= this.backoffFactor;
      this.growthTracker = 0;
    } else if (++this.growthTracker >= this.growthInterval) {
      this.scale *= this.growthFactor;
      this.growthTracker = 0;
    }
    return !foundInf;
  }

  state(): { scale: number; growthTracker: number } {
    return { scale: this.scale, growthTracker: this.growthTracker };
  }
  loadState(s: { scale: number; growthTracker: number }): void {
    this.scale = s.scale;
    this.growthTracker = s.growthTracker;
  }
}

/** True when every tensor holds only finite values. */
export function allFinite(tensors: readonly Tensor[]): boolean {
  return call(
    'allFinite',
    tensors.map((t) => t.handle),
  );
}
