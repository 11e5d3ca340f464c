// Small synthetic photos whose classes a random-weight stand-in model still tells apart: each class is a
// flat colour with a darker square at a seeded place, a seeded wave of light and pixel noise (JPEG, 48 px). Two classes
// with near colours are look-alikes; distinct colours are far apart in the stand-in's pooled features.
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import sharp from 'sharp';
import { Rng } from '../../src/util/rng.js';

export const COLOURS = {
  red: [200, 40, 40],
  crimson: [190, 45, 50],
  green: [40, 170, 60],
  blue: [40, 60, 190],
  yellow: [190, 170, 40],
  grey: [128, 128, 128],
  purple: [140, 40, 170],
} as const satisfies Record<string, readonly [number, number, number]>;
export type Colour = keyof typeof COLOURS;

/** One photo of a colour (seeded). */
export async function colourPhoto(colour: Colour, seed: number, file: string): Promise<void> {
  const rng = new Rng(seed);
  const s = 48;
  const c = COLOURS[colour];
  const buf = Buffer.alloc(s * s * 3);
  const x0 = rng.int(0, 24);
  const y0 = rng.int(0, 24);
  // A seeded wave of light across the photo gives it structure (what a difference hash sees).
  const wave = (): number => rng.uniform(1, 2.5) * (rng.bernoulli(0.5) ? 1 : -1);
  const fx = wave();
  const fy = wave();
  const phase = rng.uniform(0, 2 * Math.PI);
  for (let y = 0; y < s; y++)
    for (let x = 0; x < s; x++) {
      const dark = x >= x0 && x < x0 + 20 && y >= y0 && y < y0 + 20 ? 0.6 : 1;
      const light = 1 + 0.3 * Math.sin((2 * Math.PI * (fx * x + fy * y)) / s + phase);
      for (let ch = 0; ch < 3; ch++)
        buf[(y * s + x) * 3 + ch] = Math.max(0, Math.min(255, Math.round(c[ch]! * dark * light + rng.normal(0, 8))));
    }
  await sharp(buf, { raw: { width: s, height: s, channels: 3 } })
    .jpeg({ quality: 90 })
    .toFile(file);
}

/** `root/<split>/<colour>/<colour>_<i>.jpg`, n photos per colour; photo i of a colour has seed (seed, colour, i). */
export async function colourDataset(
  root: string,
  colours: readonly Colour[],
  n: number,
  o: { split?: string; seed?: number; first?: number } = {},
): Promise<void> {
  const split = o.split ?? 'train';
  for (const c of colours) {
    const k = Object.keys(COLOURS).indexOf(c);
    mkdirSync(join(root, split, c), { recursive: true });
    for (let i = o.first ?? 0; i < (o.first ?? 0) + n; i++)
      await colourPhoto(c, (o.seed ?? 0) * 1_000_000 + (k + 1) * 1000 + i, join(root, split, c, `${c}_${i}.jpg`));
  }
}

/** sha256 of every file under a folder, by relative path: "the folder did not change" is equality of two of these. */
export function folderDigest(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string, rel: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p, `${rel}${name}/`);
      else out[`${rel}${name}`] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(root, '');
  return out;
}
