// AdamW (decoupled weight decay): torch.optim.AdamW's update (1.13,
// single-tensor, non-capturable path), operation for operation.
import type * as T from '../tensor/index.js';
import * as TT from '../tensor/index.js';
import { Optimizer, type GroupBase, type ParamGroup, type ParamsInput, type ParamState } from './optimizer.js';

export interface AdamWOptions extends GroupBase {
  betas: [number, number];
  eps: number;
  weightDecay: number;
  amsgrad: boolean;
  maximize: boolean;
}

export class AdamW extends Optimizer<AdamWOptions> {
  protected readonly torchNames = {
    lr: 'lr',
    betas: 'betas',
    eps: 'eps',
    weightDecay: 'weight_decay',
    amsgrad: 'amsgrad',
    maximize: 'maximize',
  } as const;

  constructor(params: ParamsInput<AdamWOptions>, options: Partial<AdamWOptions> = {}) {
    super(params, {
      lr: 1e-3,
      betas: [0.9, 0.999],
      eps: 1e-8,
      weightDecay: 1e-2,
      amsgrad: false,
      maximize: false,
      ...options,
    });
  }

  protected validate(g: ParamGroup<AdamWOptions>): void {
    if (!(g.lr >= 0)) throw new RangeError(`Expected lr >= 0 for AdamW but received ${g.lr}`);
    if (!(g.eps >= 0)) throw new RangeError(`Expected eps >= 0 for AdamW but received ${g.eps}`);
    const [b1, b2] = g.betas;
    if (!(b1 >= 0 && b1 < 1) || !(b2 >= 0 && b2 < 1))
      throw new RangeError(`Expected betas in [0, 1) for AdamW but received [${g.betas.join(', ')}]`);
    if (!(g.weightDecay >= 0))
      throw new RangeError(`Expected weightDecay >= 0 for AdamW but received ${g.weightDecay}`);
  }

  protected update(p: T.Tensor, grad0: T.Tensor, g: ParamGroup<AdamWOptions>, st: ParamState): void {
    const grad = g.maximize ? grad0.neg() : grad0;
    const [beta1, beta2] = g.betas;
    if (st.step === undefined) {
      st.step = 0;
      this.setState(st, 'exp_avg', TT.zerosLike(p));
      this.setState(st, 'exp_avg_sq', TT.zerosLike(p));
      if (g.amsgrad) this.setState(st, 'max_exp_avg_sq', TT.zerosLike(p));
    }
    const expAvg = st.exp_avg as T.Tensor;
    const expAvgSq = st.exp_avg_sq as T.Tensor;
    const step = (st.step as number) + 1;
    st.step = step;
    p.mul_(1 - g.lr * g.weightDecay);
    expAvg.mul_(beta1).add_(grad, 1 - beta1);
    expAvgSq.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
    const biasCorrection1 = 1 - beta1 ** step;
    const biasCorrection2 = 1 - beta2 ** step;
    const stepSize = g.lr / biasCorrection1;
    const bc2Sqrt = Math.sqrt(biasCorrection2);
    let second = expAvgSq;
    if (g.amsgrad) {
      const maxSq = st.max_exp_avg_sq as T.Tensor;
      maxSq.copy_(maxSq.maximum(expAvgSq));
      second = maxSq;
    }
    const denom = second.sqrt().div(bc2Sqrt).add_(g.eps);
    p.addcdiv_(expAvg, denom, -stepSize);
  }
}
