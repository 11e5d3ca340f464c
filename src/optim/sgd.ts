// SGD with momentum, dampening, Nesterov and L2 weight decay: torch.optim.SGD's
// update (1.13, single-tensor path), operation for operation.
import type * as T from '../tensor/index.js';
import { Optimizer, type GroupBase, type ParamGroup, type ParamsInput, type ParamState } from './optimizer.js';

export interface SGDOptions extends GroupBase {
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  maximize: boolean;
}

export class SGD extends Optimizer<SGDOptions> {
  protected readonly torchNames = {
    lr: 'lr',
    momentum: 'momentum',
    dampening: 'dampening',
    weightDecay: 'weight_decay',
    nesterov: 'nesterov',
    maximize: 'maximize',
  } as const;

  constructor(params: ParamsInput<SGDOptions>, options: Partial<SGDOptions> & { lr: number }) {
    super(params, { momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, maximize: false, ...options });
  }

  protected validate(g: ParamGroup<SGDOptions>): void {
    if (!(g.lr >= 0)) throw new RangeError(`Expected lr >= 0 for SGD but received ${g.lr}`);
    if (!(g.momentum >= 0)) throw new RangeError(`Expected momentum >= 0 for SGD but received ${g.momentum}`);
    if (!(g.weightDecay >= 0)) throw new RangeError(`Expected weightDecay >= 0 for SGD but received ${g.weightDecay}`);
    if (g.nesterov && (g.momentum <= 0 || g.dampening !== 0))
      throw new RangeError('SGD: Nesterov momentum requires a momentum and zero dampening');
  }

  protected update(p: T.Tensor, grad: T.Tensor, g: ParamGroup<SGDOptions>, st: ParamState): void {
    let d = g.maximize ? grad.neg() : grad;
    if (g.weightDecay !== 0) d = d.add(p, g.weightDecay);
    if (g.momentum !== 0) {
      let buf = st.momentum_buffer as T.Tensor | undefined;
      if (!buf) buf = this.setState(st, 'momentum_buffer', d.clone().detach());
      else buf.mul_(g.momentum).add_(d, 1 - g.dampening);
      d = g.nesterov ? d.add(buf, g.momentum) : buf;
    }
    p.add_(d, -g.lr);
  }
}
