// BatchNorm1d over [N, C] features (BAM's channel gate, the wide classifier head):
// the same statistics as BatchNorm2d on [N, C, 1, 1], so it reuses that layer.
import type * as T from '../../tensor/index.js';
import { BatchNorm2d } from './norm.js';

export class BatchNorm1d extends BatchNorm2d {
  override forward(x: T.Tensor): T.Tensor {
    if (x.ndim !== 2)
      throw new RangeError(`Error in BatchNorm1d: expected an input [N, C] but received shape [${x.shape.join(', ')}]`);
    const [n, c] = x.shape as [number, number];
    const x4 = x.reshape([n, c, 1, 1]);
    const y4 = super.forward(x4);
    const y = y4.reshape([n, c]);
    x4.dispose();
    y4.dispose();
    return y;
  }
}
