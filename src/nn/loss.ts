// Loss modules over the functional losses (PyTorch semantics).
import * as T from '../tensor/index.js';
import { Module } from './module.js';

/** Cross entropy on logits with class-index targets; labelSmoothing as in torch.nn.CrossEntropyLoss. */
export class CrossEntropyLoss extends Module {
  constructor(readonly options: T.F.CrossEntropyOptions = {}) {
    super();
    const ls = options.labelSmoothing ?? 0;
    if (!(ls >= 0 && ls <= 1)) throw new RangeError(`Expected labelSmoothing in [0, 1] but received ${ls}`);
  }
  compute(logits: T.Tensor, target: T.Tensor): T.Tensor {
    return T.F.crossEntropy(logits, target, this.options);
  }
}

/** Cross entropy against soft (probability) targets, as after mixup/cutmix (timm's SoftTargetCrossEntropy). */
export class SoftTargetCrossEntropy extends Module {
  compute(logits: T.Tensor, target: T.Tensor): T.Tensor {
    return T.F.softTargetCrossEntropy(logits, target);
  }
}
