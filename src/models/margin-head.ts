// Embedding heads for metric learning (ArcFace / CosFace): the backbone's pooled
// feature goes through a neck (Linear to the embedding width, optionally a
// BatchNorm1d: the "BN-neck"), and the logits are s * cos(embedding, class
// centre). The additive margin needs the labels, so it is applied in the loss
// (train/margin-loss.ts); at test time the head gives plain scaled cosines and
// `embed` gives the neck output that a gallery stores.
import * as T from '../tensor/index.js';
import { Module } from '../nn/module.js';
import { Linear } from '../nn/layers/linear.js';
import { BatchNorm1d } from '../nn/layers/batchnorm1d.js';
import { uniform_ } from '../nn/init.js';
import { ClassifierModel } from './model.js';

export type MarginHeadType = 'arcface' | 'cosface';
export const MARGIN_HEADS: readonly MarginHeadType[] = ['arcface', 'cosface'];

export function isMarginHead(head: unknown): head is MarginHeadType {
  return typeof head === 'string' && (MARGIN_HEADS as readonly string[]).includes(head);
}

export interface EmbeddingHeadOptions {
  /** Embedding width (default 512). */
  embeddingDim?: number;
  /** BatchNorm1d after the neck's Linear (which then has no bias). Default true. */
  bnNeck?: boolean;
  /** Logit scale s (default 30). */
  scale?: number;
}

function unitRows(x: T.Tensor): T.Tensor {
  return x.div(x.norm(2, 1, true).clampMin(1e-12));
}

/** neck (+ BN) -> embedding; logits = scale * cos(embedding, weight rows). State dict: neck.*, bn.*, weight. */
export class MarginHead extends Module {
  declare readonly weight: T.Tensor;
  readonly neck: Linear;
  readonly bn: BatchNorm1d | null;
  readonly scale: number;

  constructor(
    inFeatures: number,
    readonly numClasses: number,
    o: EmbeddingHeadOptions = {},
  ) {
    super();
    const dim = o.embeddingDim ?? 512;
    if (!Number.isInteger(dim) || dim < 1)
      throw new RangeError(`Expected a positive integer for embeddingDim but received ${dim}`);
    this.scale = o.scale ?? 30;
    if (!(this.scale > 0)) throw new RangeError(`Expected a positive scale but received ${this.scale}`);
    const bnNeck = o.bnNeck ?? true;
    this.neck = this.registerModule('neck', new Linear(inFeatures, dim, { bias: !bnNeck }));
    this.bn = bnNeck ? this.registerModule('bn', new BatchNorm1d(dim)) : null;
    // Xavier-uniform class centres, as insightface's ArcMarginProduct.
    const bound = Math.sqrt(6 / (numClasses + dim));
    uniform_(this.registerParameter('weight', T.empty([numClasses, dim])), -bound, bound);
  }

  get embeddingDim(): number {
    return this.neck.outFeatures;
  }

  /** The embedding of pooled features [N, inFeatures] -> [N, dim] (not normalised). */
  embed(pooled: T.Tensor): T.Tensor {
    const e = this.neck.forward(pooled);
    return this.bn ? this.bn.forward(e) : e;
  }

  /** scale * cosine to each class centre, [N, classes]. */
  override forward(pooled: T.Tensor): T.Tensor {
    return T.tidy(() => unitRows(this.embed(pooled).float()).matmul(unitRows(this.weight.float()).t()).mul(this.scale));
  }
}

/**
 * Any zoo backbone (created headless) + a MarginHead. State dict: backbone.* (the family's own names) and head.*.
 * forwardHead(f, true) and embed(x) give the embedding, forward the scaled cosines.
 */
export class EmbeddingNet extends ClassifierModel {
  readonly backbone: ClassifierModel;
  head: MarginHead;

  constructor(
    backbone: ClassifierModel,
    numClasses: number,
    readonly headOptions: EmbeddingHeadOptions,
  ) {
    super();
    this.backbone = this.registerModule('backbone', backbone);
    this.head = this.registerModule('head', new MarginHead(backbone.numFeatures, numClasses, headOptions));
    this.setNumClasses(numClasses);
  }

  get numFeatures(): number {
    return this.head.embeddingDim;
  }

  override forwardFeatures(x: T.Tensor): T.Tensor {
    return this.backbone.forwardFeatures(x);
  }

  override forwardHead(features: T.Tensor, preLogits = false): T.Tensor {
    return T.tidy(() => {
      const pooled = this.backbone.forwardHead(features, true);
      return preLogits ? this.head.embed(pooled) : this.head.forward(pooled);
    });
  }

  embed(x: T.Tensor): T.Tensor {
    return T.tidy(() => this.forwardHead(this.forwardFeatures(x), true));
  }

  override resetClassifier(numClasses: number): void {
    const old = this.head;
    this.head = this.registerModule('head', new MarginHead(this.backbone.numFeatures, numClasses, this.headOptions));
    old.dispose();
    this.setNumClasses(numClasses);
  }

  override getClassifier(): Module {
    return this.head;
  }
}
