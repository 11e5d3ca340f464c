// The training loss as one function of (logits, labels): cross-entropy with label smoothing, or the
// margin loss of an ArcFace/CosFace head. Computed in float32 whatever the autocast dtype of the logits.
import * as T from '../tensor/index.js';
import { marginCrossEntropy, type MarginLossOptions } from './margin-loss.js';

export type LossFn = (logits: T.Tensor, labels: T.Tensor) => T.Tensor;

export interface LossSpec {
  labelSmoothing: number;
  /** An embedding head's margin loss (run/config.ts marginOptions); null or absent: softmax cross-entropy. */
  margin?: MarginLossOptions | null;
}

export function createLoss(spec: LossSpec): LossFn {
  const margin = spec.margin ?? null;
  if (margin) return (logits, labels) => marginCrossEntropy(logits.float(), labels, margin);
  return (logits, labels) => T.F.crossEntropy(logits.float(), labels, { labelSmoothing: spec.labelSmoothing });
}
