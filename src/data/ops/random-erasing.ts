/** randomErasing: timm's RandomErasing, after normalize. */
import { eraseFloatChw, eraseUint8Hwc, planRandomErasing, type ErasePlan } from '../erasing.js';
import { checkCount, checkOneOf, checkProb, checkRatio, checkScale } from './fields.js';
import type { ApplyContext, OpSpec, OpState } from './op.js';

export interface RandomErasingOp {
  op: 'randomErasing';
  p?: number;
  scale?: [number, number];
  ratio?: [number, number];
  mode?: 'const' | 'rand' | 'pixel';
  count?: [number, number];
}

/**
 * Erases planned rectangles: in the float output, or in the 8-bit image of a uint8 pipeline with the
 * colours that normalise to the same values.
 */
export function applyErasePlan(plan: ErasePlan, st: OpState, ctx: ApplyContext): void {
  if (plan.rects.length === 0) return;
  const { height, width } = st.img;
  if (st.float) eraseFloatChw(st.float, height, width, plan.rects, plan.mode, ctx.rng);
  else {
    st.img = ctx.writable(st.img);
    eraseUint8Hwc(st.img.data, width, plan.rects, plan.mode, ctx.rng, st.mean ?? [0, 0, 0], st.std ?? [1, 1, 1]);
  }
}

export const randomErasing: OpSpec<RandomErasingOp> = {
  name: 'randomErasing',
  validate(o, at) {
    checkProb(`${at}.p`, o.p);
    checkScale(`${at}.scale`, o.scale);
    checkRatio(`${at}.ratio`, o.ratio);
    checkOneOf(`${at}.mode`, o.mode, ['const', 'rand', 'pixel']);
    checkCount(`${at}.count`, o.count);
  },
  stage: 'normalized',
  deterministic: false,
  pixelwise: false,
  eval: false,
  apply(o, st, ctx) {
    applyErasePlan(planRandomErasing(ctx.rng, o, st.img.height, st.img.width), st, ctx);
  },
  browser: 'server-only',
};
