// Classifier heads shared by the model families. 'linear' is the reference
// implementations' single Linear; 'wide' is the write-up's wider head for many
// classes: numFeatures -> 4096 (Linear without bias, BatchNorm1d, ReLU) -> classes.
// Either way the head sits in the family's classifier slot (ResNet `fc`,
// Inception-ResNet-v2 `classif`), so resetClassifier and pretrained loading,
// which drop every key under that prefix, work unchanged.
import type { Module } from '../nn/module.js';
import { Linear, Identity } from '../nn/layers/linear.js';
import { Sequential } from '../nn/layers/containers.js';
import { BatchNorm1d } from '../nn/layers/batchnorm1d.js';
import { ReLU } from '../nn/layers/activation.js';

export type HeadType = 'linear' | 'wide';
export const HEAD_TYPES: readonly HeadType[] = ['linear', 'wide'];

export interface HeadOptions {
  head?: HeadType;
  /** Hidden width of the wide head (default 4096). */
  headHidden?: number;
  /** Bias in the last Linear (default true; the recipe's "wider" variants use none). */
  bias?: boolean;
}

/** Throws the usual message unless numClasses is a non-negative integer (0: no classifier). */
export function checkNumClasses(numClasses: number): void {
  if (!Number.isInteger(numClasses) || numClasses < 0)
    throw new RangeError(`Expected a non-negative integer for numClasses but received ${numClasses}`);
}

/** Throws the usual message when a head option is not one of HEAD_TYPES. */
export function checkHead(head: unknown): HeadType {
  if (head === undefined) return 'linear';
  if (typeof head !== 'string' || !(HEAD_TYPES as readonly string[]).includes(head)) {
    throw new TypeError(`Expected one of ${HEAD_TYPES.join(', ')} for head but received ${JSON.stringify(head)}`);
  }
  return head as HeadType;
}

/**
 * The classifier for a pooled feature of numFeatures: 0 classes gives an
 * Identity (forward returns the pooled feature). Wide head children are
 * 0 Linear, 1 BatchNorm1d, 2 ReLU, 3 Linear (state-dict keys fc.0.weight ...).
 */
export function createClassifier(numFeatures: number, numClasses: number, o: HeadOptions = {}): Module {
  checkNumClasses(numClasses);
  if (numClasses === 0) return new Identity();
  const head = checkHead(o.head);
  const bias = o.bias ?? true;
  if (head === 'linear') return new Linear(numFeatures, numClasses, { bias });
  const hidden = o.headHidden ?? 4096;
  if (!Number.isInteger(hidden) || hidden < 1)
    throw new RangeError(`Expected a positive integer for headHidden but received ${hidden}`);
  return new Sequential(
    new Linear(numFeatures, hidden, { bias: false }),
    new BatchNorm1d(hidden),
    new ReLU(true),
    new Linear(hidden, numClasses, { bias }),
  );
}
