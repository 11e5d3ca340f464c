/**
 * Applies one planned AutoAugment / RandAugment step (autoaugment.ts plans them) with the colour and
 * affine kernels (native when built).
 */
import type { RgbImage } from './image.js';
import type { AugStep } from './autoaugment.js';
import { affineBilinear, type Rgb } from './resample.js';
import * as C from './color.js';

function rotateMatrix(w: number, h: number, degrees: number): number[] {
  const angle = -((degrees % 360) * Math.PI) / 180;
  const m = [Math.cos(angle), Math.sin(angle), 0, -Math.sin(angle), Math.cos(angle), 0];
  const cx = w / 2,
    cy = h / 2;
  m[2] = m[0]! * -cx + m[1]! * -cy + cx;
  m[5] = m[3]! * -cx + m[4]! * -cy + cy;
  return m;
}

export function applyAugStep(img: RgbImage, s: AugStep, fill: Rgb): RgbImage {
  if (!s.applied) return img;
  switch (s.name) {
    case 'AutoContrast':
      return C.autoContrast(img);
    case 'Equalize':
      return C.equalize(img);
    case 'Invert':
      return C.invert(img);
    case 'Rotate':
      return affineBilinear(img, rotateMatrix(img.width, img.height, s.arg), fill);
    case 'Posterize':
    case 'PosterizeIncreasing':
    case 'PosterizeOriginal':
      return C.posterize(img, s.arg);
    case 'Solarize':
    case 'SolarizeIncreasing':
      return C.solarize(img, s.arg);
    case 'SolarizeAdd':
      return C.solarizeAdd(img, s.arg);
    case 'Color':
    case 'ColorIncreasing':
      return C.adjustSaturation(img, s.arg);
    case 'Contrast':
    case 'ContrastIncreasing':
      return C.adjustContrast(img, s.arg);
    case 'Brightness':
    case 'BrightnessIncreasing':
      return C.adjustBrightness(img, s.arg);
    case 'Sharpness':
    case 'SharpnessIncreasing':
      return C.adjustSharpness(img, s.arg);
    case 'ShearX':
      return affineBilinear(img, [1, s.arg, 0, 0, 1, 0], fill);
    case 'ShearY':
      return affineBilinear(img, [1, 0, 0, s.arg, 1, 0], fill);
    case 'TranslateX':
    case 'TranslateXRel':
      return affineBilinear(img, [1, 0, s.arg, 0, 1, 0], fill);
    case 'TranslateY':
    case 'TranslateYRel':
      return affineBilinear(img, [1, 0, 0, 0, 1, s.arg], fill);
  }
}
