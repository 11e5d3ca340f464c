/** centerCrop: torchvision CenterCrop (pads with black when the crop is larger than the image). */
import { centerCrop as centerCropPixels } from '../pil-pixels.js';
import { checkSize, hw, type Size } from './fields.js';
import type { OpSpec } from './op.js';

export interface CenterCropOp {
  op: 'centerCrop';
  size: Size;
}

export const centerCrop: OpSpec<CenterCropOp> = {
  name: 'centerCrop',
  validate(o, at) {
    checkSize(`${at}.size`, o.size);
  },
  stage: 'pixels',
  deterministic: true,
  pixelwise: false,
  eval: true,
  apply(o, st) {
    const [h, w] = hw(o.size);
    st.img = centerCropPixels(st.img, w, h);
  },
  browser: {
    apply(o, img) {
      const [h, w] = hw(o.size);
      return centerCropPixels(img, w, h);
    },
  },
  outputSize: (o) => hw(o.size),
};
