// The training loss as one function of (logits, labels): cross-entropy with label smoothing (optionally
// logit-adjusted for a long tail), or the margin loss of an ArcFace/CosFace head. Computed in float32 whatever
// the autocast dtype of the logits.
import * as T from '../tensor/index.js';
import { marginCrossEntropy, type MarginLossOptions } from './margin-loss.js';

export type LossFn = (logits: T.Tensor, labels: T.Tensor) => T.Tensor;

export interface LossSpec {
  labelSmoothing: number;
  /** An embedding head's margin loss (run/config.ts marginOptions); null or absent: softmax cross-entropy. */
  margin?: MarginLossOptions | null;
  /** The logit-adjusted loss (config `loss.logitAdjust`): tau and the training photos per class; absent, null or tau 0: off. */
  logitAdjust?: { tau: number; classCounts: readonly number[] } | null;
}

/**
 * The logit adjustment of Menon et al. (2021, "Long-tail learning via logit adjustment", eq. 10): tau x log(prior),
 * the prior being each class's share of the training photos, added to the logits in the training loss only, so
 * that the plain argmax at test time is balanced. A class without a training photo counts as one photo (its log
 * prior stays finite). Computed in float64, returned as float32.
 */
export function logitAdjustment(tau: number, classCounts: readonly number[]): Float32Array {
  if (!(tau >= 0 && Number.isFinite(tau)))
    throw new RangeError(`logit adjustment: tau must be >= 0 but received ${tau}`);
  if (classCounts.length === 0) throw new RangeError('logit adjustment: no classes');
  const n = classCounts.map((c) => {
    if (!(c >= 0 && Number.isInteger(c))) throw new RangeError(`logit adjustment: class count ${c} is not a count`);
    return Math.max(1, c);
  });
  const total = n.reduce((a, b) => a + b, 0);
  return Float32Array.from(n, (c) => tau * Math.log(c / total));
}

export function createLoss(spec: LossSpec): LossFn {
  const margin = spec.margin ?? null;
  const la = spec.logitAdjust && spec.logitAdjust.tau > 0 ? spec.logitAdjust : null;
  if (margin && la)
    throw new Error(
      'loss.logitAdjust applies to a softmax classifier, not to a margin head (model.head arcface/cosface)',
    );
  if (margin) return (logits, labels) => marginCrossEntropy(logits.float(), labels, margin);
  const ls = { labelSmoothing: spec.labelSmoothing };
  if (!la) return (logits, labels) => T.F.crossEntropy(logits.float(), labels, ls);
  const offsets = logitAdjustment(la.tau, la.classCounts);
  return (logits, labels) => {
    const k = logits.shape[logits.shape.length - 1];
    if (k !== offsets.length)
      throw new RangeError(`logit adjustment: ${offsets.length} class counts for logits of ${k} classes`);
    // A K-float tensor per step (cheap); the caller's scope frees it with the other step tensors.
    const bias = T.tensor(offsets, [offsets.length], { device: logits.device as T.Device });
    return T.F.crossEntropy(logits.float().add(bias), labels, ls);
  };
}
