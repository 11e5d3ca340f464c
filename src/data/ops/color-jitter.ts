/** colorJitter: torchvision ColorJitter (brightness, contrast, saturation, hue in a random order). */
import { invalid } from './fields.js';
import type { OpSpec } from './op.js';

export interface ColorJitterOp {
  op: 'colorJitter';
  brightness?: number;
  contrast?: number;
  saturation?: number;
  hue?: number;
}

export const colorJitter: OpSpec<ColorJitterOp> = {
  name: 'colorJitter',
  validate(o, at) {
    for (const k of ['brightness', 'contrast', 'saturation'] as const) {
      const v = o[k];
      if (v !== undefined && !(typeof v === 'number' && v >= 0)) throw invalid(`${at}.${k}`, 'a number >= 0', v);
    }
    if (o.hue !== undefined && !(typeof o.hue === 'number' && o.hue >= 0 && o.hue <= 0.5))
      throw invalid(`${at}.hue`, 'a number in [0, 0.5]', o.hue);
  },
  stage: 'pixels',
  deterministic: false,
  pixelwise: true,
  eval: false,
  apply(o, st, ctx) {
    const plan = ctx.k.color.planColorJitter(ctx.rng, o);
    st.img = ctx.k.color.applyColorJitter(ctx.writable(st.img), plan);
  },
  browser: 'server-only',
};
