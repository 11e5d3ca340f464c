/**
 * JPEG decode planning: at which DCT scale (1/1..1/8) to decode and, for a fused letterbox +
 * RandomResizedCrop, which window of the image to decompress. Pure arithmetic (no Node, no addon): the
 * server's pipeline (transforms.ts) and the browser page (serve/web-preprocess.ts) plan with the same code.
 */
import { canvasBoxRegion, dctScale, regionBoxAxes, type CanvasBox } from './pil-pixels.js';
import type { ResampleAxis } from './native-image.js';
import type { PipelineConfig } from './transforms.js';
import type { FusedCrop } from './ops/letterbox.js';
import type { DecodeShrink } from './ops/op.js';
import { opSpec } from './ops/registry.js';

/** PipelineConfig.reducingGap's default for random crops. */
export const DEFAULT_REDUCING_GAP = 2;

/** With fastDecode, what the first op lets a decode at reduced size skip (null: decode at full size). */
export function leadingShrink(cfg: PipelineConfig): DecodeShrink | null {
  const first = cfg.ops[0];
  if (!cfg.fastDecode || !first) return null;
  return opSpec(first).decodeShrink?.(first) ?? null;
}

/**
 * The DCT scale 1/d for an image of (displayed) size width x height that the first op then resamples:
 * the largest that keeps at least the op's output size of what it reads (PIL's draft mode).
 */
export function prefixJpegScale(shrink: DecodeShrink, width: number, height: number): 1 | 2 | 4 | 8 {
  const S = Math.max(width, height);
  const [bw, bh] = shrink.reads === 'square-canvas' ? [S, S] : [width, height];
  return dctScale(bw, bh, shrink.out[0], shrink.out[1]);
}

/** libvips' resize-while-decoding for other formats; null below 2x the output, where it does not pay off. */
export function vipsShrinkOnLoad(
  shrink: DecodeShrink,
  width: number,
  height: number,
): (DecodeShrink['vips'] & { width: number; height: number }) | null {
  const [w, h] = shrink.out;
  return Math.min(width, height) >= 2 * Math.max(w, h) ? { width: w, height: h, ...shrink.vips } : null;
}

/** How to decode a fused letterbox + crop straight from the JPEG. */
export interface FusedJpegDecode {
  /** DCT scale denominator. */
  scale: 1 | 2 | 4 | 8;
  /** [x, y, w, h] of the scaled image to decompress (parts outside the image are the letterbox fill). */
  window: [number, number, number, number];
  /** The crop box's resample axes within that window. */
  axes: [ResampleAxis, ResampleAxis];
}

/**
 * The decode of crop `p` (planned on the width x height image's letterbox canvas): with fastDecode, a
 * crop at least `reducingGap` x the output is decoded at 1/2..1/8 and the canvas and box scale with it
 * (not bit-equal then); the window is what the resampling filter reads.
 */
export function planFusedJpegDecode(width: number, height: number, p: FusedCrop, cfg: PipelineConfig): FusedJpegDecode {
  const gap = cfg.reducingGap ?? DEFAULT_REDUCING_GAP;
  const d = cfg.fastDecode ? dctScale(p.box.x1 - p.box.x0, p.box.y1 - p.box.y0, p.outW, p.outH, gap) : 1;
  // At 1/d the image is ceil(W/d) x ceil(H/d) (libjpeg's rounding); the canvas and box scale with it.
  const Wd = Math.ceil(width / d),
    Hd = Math.ceil(height / d),
    Sd = Math.max(Wd, Hd);
  const offX = d === 1 ? p.offX : Math.floor((Sd - Wd) / 2),
    offY = d === 1 ? p.offY : Math.floor((Sd - Hd) / 2);
  const box: CanvasBox =
    d === 1
      ? p.box
      : {
          x0: (p.box.x0 - p.offX) / d + offX,
          y0: (p.box.y0 - p.offY) / d + offY,
          x1: (p.box.x1 - p.offX) / d + offX,
          y1: (p.box.y1 - p.offY) / d + offY,
        };
  const r = canvasBoxRegion(Sd, Sd, box, p.outW, p.outH);
  return { scale: d, window: [r.x0 - offX, r.y0 - offY, r.x1 - r.x0, r.y1 - r.y0], axes: regionBoxAxes(r, box) };
}
