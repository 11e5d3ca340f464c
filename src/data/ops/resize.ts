/** resize: torchvision Resize (shorter side), a squash to a square, or an exact [height, width]. */
import { resizeOutput, resizeWhole, type Interpolation } from '../pil-pixels.js';
import { checkInterpolation, checkOneOf, checkSize, hw, type Size } from './fields.js';
import type { OpSpec } from './op.js';

/** 'shorter' (torchvision Resize(int)): shorter side to size; 'squash': to size x size ignoring aspect. [h, w] is exact. */
export interface ResizeOp {
  op: 'resize';
  size: Size;
  mode?: 'shorter' | 'squash';
  interpolation?: Interpolation;
}

/** The output [height, width] when it does not depend on the image (an exact size or a squash). */
const fixedSize = (o: ResizeOp): [number, number] | null =>
  Array.isArray(o.size) || o.mode === 'squash' ? hw(o.size) : null;

export const resize: OpSpec<ResizeOp> = {
  name: 'resize',
  validate(o, at) {
    checkSize(`${at}.size`, o.size);
    checkInterpolation(`${at}.interpolation`, o.interpolation);
    checkOneOf(`${at}.mode`, o.mode, ['shorter', 'squash']);
  },
  stage: 'pixels',
  deterministic: true,
  pixelwise: false,
  eval: true,
  apply(o, st, ctx) {
    st.img = ctx.k.resample.resize(st.img, o.size, o.mode, o.interpolation);
  },
  browser: {
    apply(o, img) {
      const [w, h] = resizeOutput(img.width, img.height, o.size, o.mode);
      return resizeWhole(img, w, h, o.interpolation);
    },
  },
  outputSize: fixedSize,
  decodeShrink(o) {
    const fixed = fixedSize(o);
    if (!fixed) return null;
    const kernel = o.interpolation === 'bicubic' ? 'cubic' : 'linear';
    return { reads: 'image', out: [fixed[1], fixed[0]], vips: { fit: 'fill', background: [0, 0, 0], kernel } };
  },
};
