/** autoAugment: AutoAugment's ImageNet policy (timm's 'original'). */
import { planAutoAugment, type AugStep } from '../autoaugment.js';
import { checkFill, checkOneOf, fillRgb, type FillSpec } from './fields.js';
import type { ApplyContext, OpSpec, OpState } from './op.js';

export interface AutoAugmentOp {
  op: 'autoAugment';
  policy?: 'imagenet';
  /** What geometric steps uncover (default grey 128, as timm). */
  fill?: FillSpec;
}

/** Applies planned AutoAugment / RandAugment steps, copying the caller's image before the first change. */
export function applyAugSteps(steps: AugStep[], fill: FillSpec | undefined, st: OpState, ctx: ApplyContext): void {
  const rgb = fillRgb(fill, [128, 128, 128]);
  for (const s of steps) st.img = ctx.k.augment.applyAugStep(s.applied ? ctx.writable(st.img) : st.img, s, rgb);
}

export const autoAugment: OpSpec<AutoAugmentOp> = {
  name: 'autoAugment',
  validate(o, at) {
    checkOneOf(`${at}.policy`, o.policy, ['imagenet']);
    checkFill(`${at}.fill`, o.fill);
  },
  stage: 'pixels',
  deterministic: false,
  pixelwise: false,
  eval: false,
  apply(o, st, ctx) {
    applyAugSteps(planAutoAugment(ctx.rng, [st.img.width, st.img.height]), o.fill, st, ctx);
  },
  browser: 'server-only',
};
