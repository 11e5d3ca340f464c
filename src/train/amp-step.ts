// The optimizer step of a run with a float16 loss scaler (PyTorch's scaler.step(opt) + scaler.update()):
// gradients are unscaled in place, and a step whose gradients hold an inf or NaN is skipped while the scale
// is lowered. The same code runs on CPU (tests feed it a synthetic inf gradient) and on CUDA.
import type * as T from '../tensor/index.js';
import { tidy } from '../tensor/index.js';

export interface Steppable {
  step(): void;
}

/** Runs `optimizer.step()` unless the scaler found inf/NaN gradients; returns whether it stepped. */
export function scaledOptimizerStep(
  optimizer: Steppable,
  params: readonly T.Tensor[],
  scaler: T.GradScaler | null,
): boolean {
  const finite =
    scaler === null ||
    tidy(() => scaler.unscaleAndUpdate(params.map((p) => p.grad).filter((g): g is T.Tensor => g !== undefined)));
  if (finite) optimizer.step();
  return finite;
}
