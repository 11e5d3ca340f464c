/** letterbox: the recipe's structure-retention resize (pad to a square, then resize). */
import type { CanvasBox } from '../pil-pixels.js';
import { padToSquare, resizeWhole, type Interpolation } from '../pil-pixels.js';
import type { Rng } from '../../util/rng.js';
import { checkFill, checkInterpolation, fillRgb, hw, invalid, isPosInt, type FillSpec } from './fields.js';
import type { OpSpec } from './op.js';
import { planRandomResizedCrop, type RandomResizedCropOp } from './random-resized-crop.js';

/**
 * Pad to a square (image centred, PIL paste offsets), then resize to size x size if given (bilinear
 * unless `interpolation` says otherwise).
 */
export interface LetterboxOp {
  op: 'letterbox';
  size?: number;
  fill?: FillSpec;
  interpolation?: Interpolation;
}

/** A crop box on the letterbox's S x S canvas, the image at (offX, offY) in it, and the output size. */
export interface FusedCrop {
  S: number;
  offX: number;
  offY: number;
  box: CanvasBox;
  outW: number;
  outH: number;
}

/**
 * letterbox + RandomResizedCrop as one resampling: the crop is planned on the letterboxed canvas (the
 * same draws as the two-step path) and mapped to the padded source canvas (S x S, image at offX, offY).
 */
export function planFusedCrop(
  width: number,
  height: number,
  lb: LetterboxOp,
  rrc: RandomResizedCropOp,
  rng: Rng,
): FusedCrop {
  const S = Math.max(width, height);
  const size = lb.size ?? S;
  const b = planRandomResizedCrop(rng, size, size, rrc.scale, rrc.ratio);
  const f = S / size;
  const [outH, outW] = hw(rrc.size);
  return {
    S,
    offX: Math.floor((S - width) / 2),
    offY: Math.floor((S - height) / 2),
    box: { x0: b.x * f, y0: b.y * f, x1: (b.x + b.w) * f, y1: (b.y + b.h) * f },
    outW,
    outH,
  };
}

export const letterbox: OpSpec<LetterboxOp> = {
  name: 'letterbox',
  validate(o, at) {
    if (o.size !== undefined && !isPosInt(o.size)) throw invalid(`${at}.size`, 'a positive integer', o.size);
    checkFill(`${at}.fill`, o.fill);
    checkInterpolation(`${at}.interpolation`, o.interpolation);
  },
  stage: 'pixels',
  deterministic: true,
  pixelwise: false,
  eval: true,
  apply(o, st, ctx) {
    st.img = ctx.k.resample.letterbox(st.img, o.size, fillRgb(o.fill, [0, 0, 0]), o.interpolation);
  },
  // Bilinear only: the fused resampling is the native bilinear kernel (`exact` turns fusion off).
  fusion: {
    accepts: (o, next, cfg) =>
      !cfg.exact && (o.interpolation ?? 'bilinear') === 'bilinear' && next.op === 'randomResizedCrop',
    apply(o, next, st, ctx) {
      if (next.op !== 'randomResizedCrop') throw new Error(`letterbox: cannot fuse with '${next.op}'`);
      const p = planFusedCrop(st.img.width, st.img.height, o, next, ctx.rng);
      const fill = fillRgb(o.fill, [0, 0, 0]);
      st.img = ctx.k.resample.resampleCanvasBox(st.img, p.S, p.S, p.offX, p.offY, p.box, p.outW, p.outH, fill);
    },
  },
  browser: {
    apply(o, img) {
      const sq = padToSquare(img, fillRgb(o.fill, [0, 0, 0]));
      return o.size === undefined ? sq : resizeWhole(sq, o.size, o.size, o.interpolation);
    },
  },
  outputSize: (o) => (o.size === undefined ? null : [o.size, o.size]),
  decodeShrink(o) {
    if (o.size === undefined) return null;
    const kernel = o.interpolation === 'bicubic' ? 'cubic' : 'linear';
    const vips = { fit: 'contain', background: fillRgb(o.fill, [0, 0, 0]), kernel } as const;
    return { reads: 'square-canvas', out: [o.size, o.size], vips };
  },
};
