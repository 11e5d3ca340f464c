/**
 * Photometric operations on 8-bit RGB (HWC), following PIL's ImageEnhance / ImageOps arithmetic
 * (what torchvision's ColorJitter and timm's AutoAugment/RandAugment call on PIL images).
 * All operate in place unless noted.
 */
import type { RgbImage } from './image.js';
import type { Rng } from '../util/rng.js';
import { nativeImage } from './native-image.js';

/** PIL Image.blend for 8-bit: out = trunc(a + alpha (b - a)), clipped. */
function blendTo(out: Uint8Array, i: number, a: number, b: number, alpha: number): void {
  const t = a + alpha * (b - a);
  out[i] = t <= 0 ? 0 : t >= 255 ? 255 : Math.trunc(t);
}

/** PIL's L conversion: (R*19595 + G*38470 + B*7471 + 0x8000) >> 16. */
export function luma(r: number, g: number, b: number): number {
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >>> 16;
}

/** One ColorJitter op (0 brightness, 1 contrast, 2 saturation, 3 hue) through the native kernels; false when unavailable. */
function jitterNative(img: RgbImage, op: 0 | 1 | 2 | 3, f: number): boolean {
  const nat = nativeImage();
  if (!nat) return false;
  nat.colorJitter(img.data, [op], op === 0 ? f : NaN, op === 1 ? f : NaN, op === 2 ? f : NaN, op === 3 ? f : NaN);
  return true;
}

/** lut[v] = PIL blend(a, v, alpha). */
function blendLut(a: number, alpha: number): Uint8Array {
  const lut = new Uint8Array(256);
  for (let v = 0; v < 256; v++) blendTo(lut, v, a, v, alpha);
  return lut;
}

export function adjustBrightness(img: RgbImage, f: number): RgbImage {
  if (jitterNative(img, 0, f)) return img;
  const d = img.data;
  const lut = blendLut(0, f);
  for (let i = 0; i < d.length; i++) d[i] = lut[d[i]!]!;
  return img;
}

export function adjustContrast(img: RgbImage, f: number): RgbImage {
  if (jitterNative(img, 1, f)) return img;
  const d = img.data;
  let sum = 0;
  for (let i = 0; i < d.length; i += 3) sum += luma(d[i]!, d[i + 1]!, d[i + 2]!);
  const mean = Math.trunc(sum / (d.length / 3) + 0.5);
  const lut = blendLut(mean, f);
  for (let i = 0; i < d.length; i++) d[i] = lut[d[i]!]!;
  return img;
}

export function adjustSaturation(img: RgbImage, f: number): RgbImage {
  if (jitterNative(img, 2, f)) return img;
  const d = img.data;
  const g = 1 - f;
  for (let i = 0; i < d.length; i += 3) {
    const r = d[i]!,
      gr = d[i + 1]!,
      b = d[i + 2]!;
    const l = ((r * 19595 + gr * 38470 + b * 7471 + 0x8000) >>> 16) * g;
    // PIL blend: trunc(l + f (v - l)), clipped; Uint8Array stores truncate after the clamp below.
    const x = l + f * r,
      y = l + f * gr,
      z = l + f * b;
    d[i] = x <= 0 ? 0 : x >= 255 ? 255 : x;
    d[i + 1] = y <= 0 ? 0 : y >= 255 ? 255 : y;
    d[i + 2] = z <= 0 ? 0 : z >= 255 ? 255 : z;
  }
  return img;
}

/** Hue shift by `h` in [-0.5, 0.5] of a turn (torchvision adjust_hue via 8-bit HSV like PIL). */
export function adjustHue(img: RgbImage, h: number): RgbImage {
  if (h === 0 || jitterNative(img, 3, h)) return img;
  const d = img.data;
  const shift = Math.trunc(h * 255); // torchvision: np_h += np.uint8(hue_factor * 255) (wraps)
  for (let i = 0; i < d.length; i += 3) {
    const r = d[i]!,
      g = d[i + 1]!,
      b = d[i + 2]!;
    const mx = Math.max(r, g, b),
      mn = Math.min(r, g, b);
    const v = mx;
    const c = mx - mn;
    let hh = 0;
    const s = mx === 0 ? 0 : Math.round((c * 255) / mx);
    if (c !== 0) {
      let hf: number;
      if (mx === r) hf = (g - b) / c;
      else if (mx === g) hf = 2 + (b - r) / c;
      else hf = 4 + (r - g) / c;
      hf = (hf / 6) % 1;
      if (hf < 0) hf += 1;
      hh = Math.round(hf * 255) & 255;
    }
    hh = (hh + shift + 256) & 255;
    // HSV (8-bit) back to RGB.
    const hf = (hh / 255) * 6;
    const sf = s / 255;
    const k = Math.floor(hf) % 6;
    const fr = hf - Math.floor(hf);
    const p = v * (1 - sf),
      q = v * (1 - sf * fr),
      t = v * (1 - sf * (1 - fr));
    let rr: number, gg: number, bb: number;
    switch (k) {
      case 0:
        rr = v;
        gg = t;
        bb = p;
        break;
      case 1:
        rr = q;
        gg = v;
        bb = p;
        break;
      case 2:
        rr = p;
        gg = v;
        bb = t;
        break;
      case 3:
        rr = p;
        gg = q;
        bb = v;
        break;
      case 4:
        rr = t;
        gg = p;
        bb = v;
        break;
      default:
        rr = v;
        gg = p;
        bb = q;
    }
    d[i] = Math.round(rr);
    d[i + 1] = Math.round(gg);
    d[i + 2] = Math.round(bb);
  }
  return img;
}

/** PIL ImageEnhance.Sharpness: blend with the SMOOTH-filtered image (borders unchanged). */
export function adjustSharpness(img: RgbImage, f: number): RgbImage {
  const { data: d, width: w, height: h } = img;
  if (w < 3 || h < 3) return img;
  const nat = nativeImage();
  if (nat) {
    nat.sharpness(d, w, h, f);
    return img;
  }
  const src = new Uint8Array(d);
  for (let y = 1; y < h - 1; y++) {
    for (let x = 1; x < w - 1; x++) {
      for (let c = 0; c < 3; c++) {
        const o = (y * w + x) * 3 + c;
        let s = 4 * src[o]!; // kernel [[1,1,1],[1,5,1],[1,1,1]] / 13
        for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) s += src[o + (dy * w + dx) * 3]!;
        const smooth = Math.min(255, Math.max(0, Math.round(s / 13)));
        blendTo(d, o, smooth, src[o]!, f);
      }
    }
  }
  return img;
}

function applyLut(img: RgbImage, luts: [Uint8Array, Uint8Array, Uint8Array] | Uint8Array): RgbImage {
  const d = img.data;
  const [l0, l1, l2] = luts instanceof Uint8Array ? [luts, luts, luts] : luts;
  const nat = nativeImage();
  if (nat) {
    nat.applyLuts(d, l0, l1, l2);
    return img;
  }
  for (let i = 0; i < d.length; i += 3) {
    d[i] = l0[d[i]!]!;
    d[i + 1] = l1[d[i + 1]!]!;
    d[i + 2] = l2[d[i + 2]!]!;
  }
  return img;
}

function histograms(img: RgbImage): [Float64Array, Float64Array, Float64Array] {
  const nat = nativeImage();
  if (nat) {
    const h = nat.histograms(img.data);
    return [
      Float64Array.from(h.subarray(0, 256)),
      Float64Array.from(h.subarray(256, 512)),
      Float64Array.from(h.subarray(512)),
    ];
  }
  const hs: [Float64Array, Float64Array, Float64Array] = [
    new Float64Array(256),
    new Float64Array(256),
    new Float64Array(256),
  ];
  const d = img.data;
  for (let i = 0; i < d.length; i += 3) {
    hs[0][d[i]!]!++;
    hs[1][d[i + 1]!]!++;
    hs[2][d[i + 2]!]!++;
  }
  return hs;
}

/** PIL ImageOps.autocontrast(cutoff=0), per channel. */
export function autoContrast(img: RgbImage): RgbImage {
  const luts = histograms(img).map((h) => {
    const lut = new Uint8Array(256);
    let lo = 0;
    while (lo < 256 && h[lo] === 0) lo++;
    let hi = 255;
    while (hi >= 0 && h[hi] === 0) hi--;
    if (hi <= lo) {
      for (let i = 0; i < 256; i++) lut[i] = i;
      return lut;
    }
    const scale = 255 / (hi - lo);
    const offset = -lo * scale;
    for (let i = 0; i < 256; i++) {
      const v = Math.trunc(i * scale + offset);
      lut[i] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
    return lut;
  }) as [Uint8Array, Uint8Array, Uint8Array];
  return applyLut(img, luts);
}

/** PIL ImageOps.equalize, per channel. */
export function equalize(img: RgbImage): RgbImage {
  const luts = histograms(img).map((h) => {
    const lut = new Uint8Array(256);
    const nz: number[] = [];
    for (let i = 0; i < 256; i++) if (h[i]! > 0) nz.push(h[i]!);
    let step = 0;
    if (nz.length > 1) step = Math.floor((nz.reduce((a, b) => a + b, 0) - nz[nz.length - 1]!) / 255);
    if (step === 0) {
      for (let i = 0; i < 256; i++) lut[i] = i;
      return lut;
    }
    let n = Math.floor(step / 2);
    for (let i = 0; i < 256; i++) {
      lut[i] = Math.min(255, Math.floor(n / step));
      n += h[i]!;
    }
    return lut;
  }) as [Uint8Array, Uint8Array, Uint8Array];
  return applyLut(img, luts);
}

export function invert(img: RgbImage): RgbImage {
  const lut = new Uint8Array(256);
  for (let i = 0; i < 256; i++) lut[i] = 255 - i;
  return applyLut(img, lut);
}

export function posterize(img: RgbImage, bits: number): RgbImage {
  if (bits >= 8) return img;
  const mask = ~((1 << (8 - Math.max(0, bits))) - 1) & 255;
  const lut = new Uint8Array(256);
  for (let i = 0; i < 256; i++) lut[i] = i & mask;
  return applyLut(img, lut);
}

export function solarize(img: RgbImage, thresh: number): RgbImage {
  const lut = new Uint8Array(256);
  for (let i = 0; i < 256; i++) lut[i] = i >= thresh ? 255 - i : i;
  return applyLut(img, lut);
}

export function solarizeAdd(img: RgbImage, add: number, thresh = 128): RgbImage {
  const lut = new Uint8Array(256);
  for (let i = 0; i < 256; i++) lut[i] = i < thresh ? Math.min(255, i + add) : i;
  return applyLut(img, lut);
}

export interface ColorJitterOptions {
  brightness?: number;
  contrast?: number;
  saturation?: number;
  hue?: number;
}

export interface ColorJitterPlan {
  order: number[];
  brightness: number | null;
  contrast: number | null;
  saturation: number | null;
  hue: number | null;
}

/** torchvision ColorJitter.get_params: a random order of the four ops and their factors. */
export function planColorJitter(rng: Rng, o: ColorJitterOptions): ColorJitterPlan {
  const order = rng.shuffle([0, 1, 2, 3]);
  const range = (v: number | undefined) => (v && v > 0 ? ([Math.max(0, 1 - v), 1 + v] as const) : null);
  const b = range(o.brightness),
    c = range(o.contrast),
    s = range(o.saturation);
  const h = o.hue && o.hue > 0 ? ([-o.hue, o.hue] as const) : null;
  return {
    order,
    brightness: b ? rng.uniform(b[0], b[1]) : null,
    contrast: c ? rng.uniform(c[0], c[1]) : null,
    saturation: s ? rng.uniform(s[0], s[1]) : null,
    hue: h ? rng.uniform(h[0], h[1]) : null,
  };
}

export function applyColorJitter(img: RgbImage, p: ColorJitterPlan): RgbImage {
  const nat = nativeImage();
  if (nat) {
    nat.colorJitter(img.data, p.order, p.brightness ?? NaN, p.contrast ?? NaN, p.saturation ?? NaN, p.hue ?? NaN);
    return img;
  }
  for (const k of p.order) {
    if (k === 0 && p.brightness !== null) adjustBrightness(img, p.brightness);
    else if (k === 1 && p.contrast !== null) adjustContrast(img, p.contrast);
    else if (k === 2 && p.saturation !== null) adjustSaturation(img, p.saturation);
    else if (k === 3 && p.hue !== null) adjustHue(img, p.hue);
  }
  return img;
}
