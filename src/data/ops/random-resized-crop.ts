/** randomResizedCrop: torchvision RandomResizedCrop (bilinear). */
import type { Rng } from '../../util/rng.js';
import { checkRatio, checkScale, checkSize, hw, type Size } from './fields.js';
import type { OpSpec } from './op.js';

export interface RandomResizedCropOp {
  op: 'randomResizedCrop';
  size: Size;
  scale?: [number, number];
  ratio?: [number, number];
}

export interface CropBox {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** torchvision RandomResizedCrop.get_params, with its 10 tries and centre-crop fallback. */
export function planRandomResizedCrop(
  rng: Rng,
  width: number,
  height: number,
  scale: [number, number] = [0.08, 1],
  ratio: [number, number] = [3 / 4, 4 / 3],
): CropBox {
  const area = width * height;
  const lr0 = Math.log(ratio[0]),
    lr1 = Math.log(ratio[1]);
  for (let t = 0; t < 10; t++) {
    const target = area * rng.uniform(scale[0], scale[1]);
    const ar = Math.exp(rng.uniform(lr0, lr1));
    const w = Math.round(Math.sqrt(target * ar));
    const h = Math.round(Math.sqrt(target / ar));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      return { y: rng.int(0, height - h + 1), x: rng.int(0, width - w + 1), w, h };
    }
  }
  const inRatio = width / height;
  let w: number, h: number;
  if (inRatio < Math.min(ratio[0], ratio[1])) {
    w = width;
    h = Math.round(w / Math.min(ratio[0], ratio[1]));
  } else if (inRatio > Math.max(ratio[0], ratio[1])) {
    h = height;
    w = Math.round(h * Math.max(ratio[0], ratio[1]));
  } else {
    w = width;
    h = height;
  }
  return { y: Math.floor((height - h) / 2), x: Math.floor((width - w) / 2), w, h };
}

export const randomResizedCrop: OpSpec<RandomResizedCropOp> = {
  name: 'randomResizedCrop',
  validate(o, at) {
    checkSize(`${at}.size`, o.size);
    checkScale(`${at}.scale`, o.scale);
    checkRatio(`${at}.ratio`, o.ratio);
  },
  stage: 'pixels',
  deterministic: false,
  pixelwise: false,
  eval: false,
  apply(o, st, ctx) {
    const [h, w] = hw(o.size);
    const b = planRandomResizedCrop(ctx.rng, st.img.width, st.img.height, o.scale, o.ratio);
    st.img = ctx.k.resample.resizeBilinear(st.img, w, h, b);
  },
  browser: 'server-only',
  outputSize: (o) => hw(o.size),
};
