// Exponential moving average of a model's weights (timm's ModelEmaV2): a second copy of the model in
// eval mode, float tensors averaged after every optimizer step, integer buffers copied.
import * as T from '../tensor/index.js';
import { createModel, type ClassifierModel } from '../models/index.js';
import { headOptions, type TrainConfig } from '../run/config.js';

export class WeightEma {
  constructor(
    readonly model: ClassifierModel,
    readonly decay: number,
  ) {}

  update(src: ClassifierModel): void {
    const mine = this.model.stateTensors();
    T.tidy(() =>
      T.noGrad(() => {
        for (const [k, t] of src.stateTensors()) {
          const e = mine.get(k)!;
          if (T.isFloating(t.dtype)) e.mul_(this.decay).add_(t.detach(), 1 - this.decay);
          else e.copy_(t);
        }
      }),
    );
  }

  dispose(): void {
    this.model.dispose();
  }
}

/** The EMA the config asks for (`ema` > 0: its decay), starting from the model's weights; null when off. */
export function createEma(
  c: Pick<TrainConfig, 'ema' | 'model'>,
  model: ClassifierModel,
  numClasses: number,
  device: T.Device,
): WeightEma | null {
  if (!(c.ema > 0)) return null;
  const m = createModel(c.model.name, { numClasses, ...headOptions(c.model), log: null });
  m.to(device);
  T.tidy(() => {
    m.loadStateDict(model.stateDict());
  });
  m.eval();
  return new WeightEma(m, c.ema);
}
