/**
 * AutoAugment (ImageNet policy, timm's 'original') and RandAugment in timm notation
 * (`rand-m9-mstd0.5-inc1`), with timm's level-to-argument rules. Each call is split into a plan
 * (all random draws, testable) and its application. Geometric ops use bilinear resampling (timm picks
 * bilinear or bicubic at random) and fill with `fill` (timm: the dataset mean colour, default 128).
 *
 * This file holds the names, policies and plans (no pixels, no Node imports: the op files under ops/
 * import it, and the browser page loads those); autoaugment-apply.ts applies a planned step.
 */
import type { Rng } from '../util/rng.js';

const LEVEL_DENOM = 10;

export type AugOpName =
  | 'AutoContrast'
  | 'Equalize'
  | 'Invert'
  | 'Rotate'
  | 'Posterize'
  | 'PosterizeIncreasing'
  | 'PosterizeOriginal'
  | 'Solarize'
  | 'SolarizeIncreasing'
  | 'SolarizeAdd'
  | 'Color'
  | 'ColorIncreasing'
  | 'Contrast'
  | 'ContrastIncreasing'
  | 'Brightness'
  | 'BrightnessIncreasing'
  | 'Sharpness'
  | 'SharpnessIncreasing'
  | 'ShearX'
  | 'ShearY'
  | 'TranslateX'
  | 'TranslateY'
  | 'TranslateXRel'
  | 'TranslateYRel';

export const RAND_TRANSFORMS: readonly AugOpName[] = [
  'AutoContrast',
  'Equalize',
  'Invert',
  'Rotate',
  'Posterize',
  'Solarize',
  'SolarizeAdd',
  'Color',
  'Contrast',
  'Brightness',
  'Sharpness',
  'ShearX',
  'ShearY',
  'TranslateXRel',
  'TranslateYRel',
];
export const RAND_INCREASING_TRANSFORMS: readonly AugOpName[] = [
  'AutoContrast',
  'Equalize',
  'Invert',
  'Rotate',
  'PosterizeIncreasing',
  'SolarizeIncreasing',
  'SolarizeAdd',
  'ColorIncreasing',
  'ContrastIncreasing',
  'BrightnessIncreasing',
  'SharpnessIncreasing',
  'ShearX',
  'ShearY',
  'TranslateXRel',
  'TranslateYRel',
];

/** AutoAugment ImageNet policy (Cubuk et al. 2018), as timm's auto_augment_policy_original. */
export const IMAGENET_POLICY: readonly (readonly [AugOpName, number, number])[][] = [
  [
    ['PosterizeOriginal', 0.4, 8],
    ['Rotate', 0.6, 9],
  ],
  [
    ['Solarize', 0.6, 5],
    ['AutoContrast', 0.6, 5],
  ],
  [
    ['Equalize', 0.8, 8],
    ['Equalize', 0.6, 3],
  ],
  [
    ['PosterizeOriginal', 0.6, 7],
    ['PosterizeOriginal', 0.6, 6],
  ],
  [
    ['Equalize', 0.4, 7],
    ['Solarize', 0.2, 4],
  ],
  [
    ['Equalize', 0.4, 4],
    ['Rotate', 0.8, 8],
  ],
  [
    ['Solarize', 0.6, 3],
    ['Equalize', 0.6, 7],
  ],
  [
    ['PosterizeOriginal', 0.8, 5],
    ['Equalize', 1.0, 2],
  ],
  [
    ['Rotate', 0.2, 3],
    ['Solarize', 0.6, 8],
  ],
  [
    ['Equalize', 0.6, 8],
    ['PosterizeOriginal', 0.4, 6],
  ],
  [
    ['Rotate', 0.8, 8],
    ['Color', 0.4, 0],
  ],
  [
    ['Rotate', 0.4, 9],
    ['Equalize', 0.6, 2],
  ],
  [
    ['Equalize', 0.0, 7],
    ['Equalize', 0.8, 8],
  ],
  [
    ['Invert', 0.6, 4],
    ['Equalize', 1.0, 8],
  ],
  [
    ['Color', 0.6, 4],
    ['Contrast', 1.0, 8],
  ],
  [
    ['Rotate', 0.8, 8],
    ['Color', 1.0, 2],
  ],
  [
    ['Color', 0.8, 8],
    ['Solarize', 0.8, 7],
  ],
  [
    ['Sharpness', 0.4, 7],
    ['Invert', 0.6, 8],
  ],
  [
    ['ShearX', 0.6, 5],
    ['Equalize', 1.0, 9],
  ],
  [
    ['Color', 0.4, 0],
    ['Equalize', 0.6, 3],
  ],
  [
    ['Equalize', 0.4, 7],
    ['Solarize', 0.2, 4],
  ],
  [
    ['Solarize', 0.6, 5],
    ['AutoContrast', 0.6, 5],
  ],
  [
    ['Invert', 0.6, 4],
    ['Equalize', 1.0, 8],
  ],
  [
    ['Color', 0.6, 4],
    ['Contrast', 1.0, 8],
  ],
  [
    ['Equalize', 0.8, 8],
    ['Equalize', 0.6, 3],
  ],
];

export interface RandAugmentConfig {
  magnitude: number;
  numLayers: number;
  magnitudeStd: number;
  magnitudeMax: number;
  increasing: boolean;
}

/** Parses timm's RandAugment string, e.g. 'rand-m9-mstd0.5-inc1' (keys m, n, mstd, mmax, inc). */
export function parseRandAugment(s: string): RandAugmentConfig {
  const parts = s.split('-');
  if (parts[0] !== 'rand') throw new Error(`RandAugment config '${s}': must start with 'rand'`);
  const cfg: RandAugmentConfig = {
    magnitude: LEVEL_DENOM,
    numLayers: 2,
    magnitudeStd: 0,
    magnitudeMax: LEVEL_DENOM,
    increasing: false,
  };
  for (const p of parts.slice(1)) {
    const m = /^([a-z]+)(\d.*)$/.exec(p);
    if (!m) throw new Error(`RandAugment config '${s}': cannot parse section '${p}'`);
    const key = m[1]!,
      v = Number(m[2]);
    if (!Number.isFinite(v)) throw new Error(`RandAugment config '${s}': bad number in '${p}'`);
    if (key === 'm') cfg.magnitude = Math.trunc(v);
    else if (key === 'n') cfg.numLayers = Math.trunc(v);
    else if (key === 'mstd') cfg.magnitudeStd = v > 100 ? Infinity : v;
    else if (key === 'mmax') cfg.magnitudeMax = Math.trunc(v);
    else if (key === 'inc') cfg.increasing = v !== 0;
    else throw new Error(`RandAugment config '${s}': unknown section '${key}' (known: m, n, mstd, mmax, inc)`);
  }
  return cfg;
}

export interface AugStep {
  name: AugOpName;
  applied: boolean;
  magnitude: number;
  /** The op's argument after the level function (degrees, factor, bits, pixels...). */
  arg: number;
}

function negate(rng: Rng, v: number): number {
  return rng.random() > 0.5 ? -v : v;
}

/** timm LEVEL_TO_ARG. `size` is the image size for the *Rel translations. */
function levelToArg(rng: Rng, name: AugOpName, level: number, size: [number, number], translateConst: number): number {
  const l = level / LEVEL_DENOM;
  switch (name) {
    case 'Rotate':
      return negate(rng, l * 30);
    case 'Posterize':
      return Math.trunc(l * 4);
    case 'PosterizeIncreasing':
      return 4 - Math.trunc(l * 4);
    case 'PosterizeOriginal':
      return Math.trunc(l * 4) + 4;
    case 'Solarize':
      return Math.trunc(l * 256);
    case 'SolarizeIncreasing':
      return 256 - Math.trunc(l * 256);
    case 'SolarizeAdd':
      return Math.trunc(l * 110);
    case 'Color':
    case 'Contrast':
    case 'Brightness':
    case 'Sharpness':
      return l * 1.8 + 0.1;
    case 'ColorIncreasing':
    case 'ContrastIncreasing':
    case 'BrightnessIncreasing':
    case 'SharpnessIncreasing':
      return Math.max(0.1, 1 + negate(rng, l * 0.9));
    case 'ShearX':
    case 'ShearY':
      return negate(rng, l * 0.3);
    case 'TranslateX':
    case 'TranslateY':
      return negate(rng, l * translateConst);
    case 'TranslateXRel':
      return negate(rng, l * 0.45) * size[0];
    case 'TranslateYRel':
      return negate(rng, l * 0.45) * size[1];
    default:
      return 0;
  }
}

/** timm AugmentOp.__call__ draws: probability gate, magnitude noise, clip, level args. */
function planOp(
  rng: Rng,
  name: AugOpName,
  prob: number,
  magnitude: number,
  std: number,
  max: number,
  size: [number, number],
): AugStep {
  if (prob < 1 && rng.random() > prob) return { name, applied: false, magnitude, arg: 0 };
  let m = magnitude;
  if (std === Infinity) m = rng.uniform(0, magnitude);
  else if (std > 0) m = rng.normal(magnitude, std);
  m = Math.max(0, Math.min(m, max));
  return { name, applied: true, magnitude: m, arg: levelToArg(rng, name, m, size, 250) };
}

export function planRandAugment(rng: Rng, cfg: RandAugmentConfig, size: [number, number]): AugStep[] {
  const ops = cfg.increasing ? RAND_INCREASING_TRANSFORMS : RAND_TRANSFORMS;
  const chosen: AugOpName[] = [];
  for (let i = 0; i < cfg.numLayers; i++) chosen.push(rng.choice(ops)); // with replacement, like timm
  return chosen.map((n) => planOp(rng, n, 0.5, cfg.magnitude, cfg.magnitudeStd, cfg.magnitudeMax, size));
}

export function planAutoAugment(rng: Rng, size: [number, number]): AugStep[] {
  const sub = rng.choice(IMAGENET_POLICY);
  return sub.map(([n, p, m]) => planOp(rng, n, p, m, 0, LEVEL_DENOM, size));
}
