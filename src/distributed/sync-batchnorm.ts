// Synchronized BatchNorm (torch.nn.SyncBatchNorm) for data-parallel training: in training mode the
// batch statistics are those of the global batch, from one all-reduce of per-channel sum, sum of
// squares and count; the all-reduce is differentiable, so backward all-reduces the gradients of those
// sums (PyTorch's sum_dy and sum_dy_xmu). Running statistics take the global mean and the unbiased
// global variance; eval mode is plain BatchNorm on the running statistics.
import * as T from '../tensor/index.js';
import { BatchNorm2d, type Module } from '../nn/index.js';

/**
 * Training-mode forward of `bn` over the batches of every rank of `pg`. The sums are taken around the
 * running mean (the same on every rank: DDP broadcasts buffers), so E[(x-k)^2] - E[x-k]^2 keeps float32's
 * precision when the mean is far from zero.
 */
export function syncBatchNorm(pg: T.ProcessGroup, bn: BatchNorm2d, x: T.Tensor, factor: number): T.Tensor {
  const c = bn.numFeatures;
  if (x.shape[1] !== c) {
    throw new RangeError(`SyncBatchNorm: expected ${c} channels but received shape [${x.shape.join(', ')}]`);
  }
  return T.tidy(() => {
    // Statistics in at least float32 (bf16/fp16 activations under autocast), as batch_norm_stats.
    const xs = x.dtype === 'float64' || x.dtype === 'float32' ? x : x.float();
    const dims = [0, ...x.shape.slice(2).map((_, i) => i + 2)];
    const view = [1, c, ...x.shape.slice(2).map(() => 1)];
    // A copy: the running mean is updated in place below.
    const shift = bn.running_mean
      ? bn.running_mean.detach().to({ dtype: xs.dtype, copy: true })
      : T.zeros([c], { dtype: xs.dtype, device: x.device as T.Device });
    const xc = xs.sub(shift.reshape(view));
    const count = x.numel / c;
    const countT = T.full([1], count, { dtype: xs.dtype, device: x.device as T.Device });
    const local = T.cat([xc.sum(dims), xc.square().sum(dims), countT]);
    const total = pg.allreduceSum(local);
    const n = total.narrow(0, 2 * c, 1).item();
    if (n <= 1) {
      throw new RangeError(`SyncBatchNorm: expected more than 1 value per channel over all ranks, got ${n}`);
    }
    const meanC = total.narrow(0, 0, c).div(n);
    const variance = total.narrow(0, c, c).div(n).sub(meanC.square()); // biased, for normalisation
    let y = xc.sub(meanC.reshape(view)).mul(variance.add(bn.eps).rsqrt().reshape(view));
    if (bn.weight) y = y.mul(bn.weight.reshape(view));
    if (bn.bias) y = y.add(bn.bias.reshape(view));
    const rm = bn.running_mean;
    const rv = bn.running_var;
    if (rm && rv) {
      T.noGrad(() => {
        rm.mul_(1 - factor).add_(meanC.add(shift).to({ dtype: rm.dtype }), factor);
        rv.mul_(1 - factor).add_(variance.mul(n / (n - 1)).to({ dtype: rv.dtype }), factor);
      });
    }
    return y.dtype === x.dtype ? y : y.to({ dtype: x.dtype });
  });
}

/**
 * As nn.SyncBatchNorm.convert_sync_batchnorm: every BatchNorm of `model` (1d and 2d) normalises over the
 * global batch in training. The layers keep their tensors, so an optimizer built before still applies.
 * Returns the number of layers converted.
 */
export function convertSyncBatchNorm(model: Module, pg: T.ProcessGroup): number {
  let n = 0;
  for (const m of model.modules()) {
    if (!(m instanceof BatchNorm2d)) continue;
    m.syncForward = (bn, x, factor) => syncBatchNorm(pg, bn, x, factor);
    n++;
  }
  return n;
}
