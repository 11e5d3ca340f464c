/** cutout: DeVries & Taylor's Cutout (square holes set to zero), after normalize. */
import { planCutout } from '../erasing.js';
import { invalid, isPosInt } from './fields.js';
import type { OpSpec } from './op.js';
import { applyErasePlan } from './random-erasing.js';

export interface CutoutOp {
  op: 'cutout';
  length: number;
  holes?: number;
}

export const cutout: OpSpec<CutoutOp> = {
  name: 'cutout',
  validate(o, at) {
    if (!isPosInt(o.length)) throw invalid(`${at}.length`, 'a positive integer', o.length);
    if (o.holes !== undefined && !isPosInt(o.holes)) throw invalid(`${at}.holes`, 'a positive integer', o.holes);
  },
  stage: 'normalized',
  deterministic: false,
  pixelwise: false,
  eval: false,
  apply(o, st, ctx) {
    const rects = planCutout(ctx.rng, o.length, o.holes ?? 1, st.img.height, st.img.width);
    applyErasePlan({ rects, mode: 'const' }, st, ctx);
  },
  browser: 'server-only',
};
