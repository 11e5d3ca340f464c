/**
 * The server's pixel kernels handed to the op files (ops/op.ts `PixelKernels`): native when the image
 * addon is built, else TypeScript, bit-identical. The op files do not import these modules themselves
 * so that the browser page can load them.
 */
import type { RgbImage } from './image.js';
import * as augment from './autoaugment-apply.js';
import * as color from './color.js';
import { nativeImage } from './native-image.js';
import type { PixelKernels } from './ops/op.js';
import { normalizeChw } from './pil-pixels.js';
import * as resample from './resample.js';

/** HWC uint8 -> normalised CHW float32, optionally mirrored left-right on the way (a deferred hflip). */
function toFloatChw(
  img: RgbImage,
  mean: readonly number[],
  std: readonly number[],
  flip = false,
  into?: Float32Array,
): Float32Array {
  const target = into && into.length === img.width * img.height * 3 ? into : undefined;
  const nat = nativeImage();
  if (nat) return nat.toFloatChw(img.data, img.width, img.height, mean, std, flip, target);
  return normalizeChw(img, mean, std, flip, target);
}

export const SERVER_KERNELS: PixelKernels = { resample, color, augment, toFloatChw };
