/** randAugment: RandAugment in timm notation ('rand-m9-mstd0.5-inc1'). */
import { parseRandAugment, planRandAugment } from '../autoaugment.js';
import { checkFill, invalid, type FillSpec } from './fields.js';
import { applyAugSteps } from './auto-augment.js';
import type { OpSpec } from './op.js';

export interface RandAugmentOp {
  op: 'randAugment';
  config: string;
  /** What geometric steps uncover (default grey 128, as timm). */
  fill?: FillSpec;
}

export const randAugment: OpSpec<RandAugmentOp> = {
  name: 'randAugment',
  validate(o, at) {
    if (typeof o.config !== 'string')
      throw invalid(`${at}.config`, "a timm string like 'rand-m9-mstd0.5-inc1'", o.config);
    parseRandAugment(o.config);
    checkFill(`${at}.fill`, o.fill);
  },
  stage: 'pixels',
  deterministic: false,
  pixelwise: false,
  eval: false,
  apply(o, st, ctx) {
    const steps = planRandAugment(ctx.rng, parseRandAugment(o.config), [st.img.width, st.img.height]);
    applyAugSteps(steps, o.fill, st, ctx);
  },
  browser: 'server-only',
};
