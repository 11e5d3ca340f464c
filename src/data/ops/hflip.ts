/** hflip: torchvision RandomHorizontalFlip. */
import { checkProb } from './fields.js';
import type { OpSpec } from './op.js';

export interface HflipOp {
  op: 'hflip';
  /** Probability of mirroring (default 0.5). */
  p?: number;
}

export const hflip: OpSpec<HflipOp> = {
  name: 'hflip',
  validate(o, at) {
    checkProb(`${at}.p`, o.p);
  },
  stage: 'pixels',
  deterministic: false,
  pixelwise: false,
  eval: false,
  apply(o, st, ctx) {
    if (ctx.rng.random() >= (o.p ?? 0.5)) return;
    // The float conversion can mirror while it reads: no extra pass over the image.
    if (ctx.flipCanWait()) st.flip = !st.flip;
    else st.img = ctx.k.resample.hflipInPlace(ctx.writable(st.img));
  },
  browser: 'server-only',
};
