// Additive-margin softmax losses on the scaled cosines of a MarginHead
// (models/margin-head.ts), with insightface's ArcMarginProduct semantics:
//   ArcFace: the target logit is s*cos(theta + m) = s*(cos*cos(m) - sin*sin(m)); where theta + m would pass pi
//            (cos <= cos(pi - m)) it is s*(cos - m*sin(m)) instead, so the target stays monotonic in theta;
//            with easyMargin the margin applies only where cos > 0.
//   CosFace: the target logit is s*(cos - m).
// Other logits are s*cos; the result goes through cross-entropy (optional label smoothing).
import * as T from '../tensor/index.js';
import type { MarginHeadType } from '../models/margin-head.js';

export interface MarginLossOptions {
  type: MarginHeadType;
  /** The head's scale s (the logits are s * cos). */
  scale: number;
  margin: number;
  easyMargin?: boolean;
  labelSmoothing?: number;
}

/** The margin-adjusted logits [N, C] from scaled cosines and integer labels [N]. */
export function marginLogits(logits: T.Tensor, labels: T.Tensor, o: MarginLossOptions): T.Tensor {
  return T.tidy(() => {
    const cos = logits.div(o.scale).clamp(-1, 1);
    let phi: T.Tensor;
    if (o.type === 'cosface') phi = cos.sub(o.margin);
    else {
      const m = o.margin;
      const sin = T.F.relu(cos.square().neg().add(1)).sqrt();
      phi = cos.mul(Math.cos(m)).sub(sin.mul(Math.sin(m)));
      phi = o.easyMargin
        ? T.F.where(cos.gt(0), phi, cos)
        : T.F.where(cos.gt(Math.cos(Math.PI - m)), phi, cos.sub(Math.sin(Math.PI - m) * m));
    }
    const target = T.F.oneHot(labels.long(), cos.shape[1]!).to(cos.dtype);
    return target.mul(phi).add(target.neg().add(1).mul(cos)).mul(o.scale);
  });
}

/** Cross-entropy of the margin-adjusted logits (mean over the batch). */
export function marginCrossEntropy(logits: T.Tensor, labels: T.Tensor, o: MarginLossOptions): T.Tensor {
  return T.tidy(() =>
    T.F.crossEntropy(marginLogits(logits, labels, o), labels, { labelSmoothing: o.labelSmoothing ?? 0 }),
  );
}
