/**
 * The transform pipeline: a plain JSON-able config (stored in the run folder), validated once, then
 * applied per sample with an Rng derived from (seed, epoch, index).
 *
 * Ops before `normalize` work on 8-bit RGB; `normalize` produces float32 CHW; `cutout` and
 * `randomErasing` come after it (as in timm and the recipe). With `output: 'uint8'` the result stays
 * 8-bit HWC for normalising later on the GPU: `normalize` is then not applied (its mean/std are kept
 * for the consumer), and erasing fills with the colours that normalise to the same values.
 */
import type { RgbImage } from './image.js';
import { BadImageError, decodeBuffer, decodeJpegNative, readImageFile, DEFAULT_MAX_PIXELS } from './image.js';
import { Rng } from '../util/rng.js';
import {
  canvasBoxRegion,
  centerCrop,
  hflipInPlace,
  padToSquare,
  regionBoxAxes,
  resampleCanvasBox,
  resizeBilinear,
  resizeWith,
  shorterSideSize,
  type CanvasBox,
  type Interpolation,
  type Rgb,
} from './resample.js';
import { imageSizeFromHeader } from './image.js';
import { applyColorJitter, planColorJitter } from './color.js';
import { applyAugStep, parseRandAugment, planAutoAugment, planRandAugment } from './autoaugment.js';
import { looksLikeJpeg, nativeImage, orientedSize } from './native-image.js';
import { dctScale, normalizeChw } from './pil-pixels.js';
import { eraseFloatChw, eraseUint8Hwc, planCutout, planRandomErasing } from './erasing.js';

/** A size: one number (square, or the shorter side for resize 'shorter') or [height, width]. */
export type Size = number | [number, number];
/** Padding colour: black, the dataset / normalisation mean, or explicit 8-bit RGB. */
export type FillSpec = 'black' | 'mean' | [number, number, number];
export type Triple = [number, number, number];

export type TransformOp =
  /**
   * Structure-retention resize: pad to a square (image centred), then resize to size x size if given
   * (bilinear unless `interpolation` says otherwise).
   */
  | { op: 'letterbox'; size?: number; fill?: FillSpec; interpolation?: Interpolation }
  /** 'shorter' (torchvision Resize(int)): shorter side to size; 'squash': to size x size ignoring aspect. [h, w] is exact. */
  | { op: 'resize'; size: Size; mode?: 'shorter' | 'squash'; interpolation?: Interpolation }
  | { op: 'centerCrop'; size: Size }
  | { op: 'randomResizedCrop'; size: Size; scale?: [number, number]; ratio?: [number, number] }
  | { op: 'hflip'; p?: number }
  | { op: 'colorJitter'; brightness?: number; contrast?: number; saturation?: number; hue?: number }
  | { op: 'autoAugment'; policy?: 'imagenet'; fill?: FillSpec }
  | { op: 'randAugment'; config: string; fill?: FillSpec }
  /** mean/std in 0..1 units; 'dataset' is replaced by statistics of the training split (resolvePipeline). */
  | { op: 'normalize'; mean: Triple | 'dataset'; std: Triple | 'dataset' }
  | { op: 'cutout'; length: number; holes?: number }
  | {
      op: 'randomErasing';
      p?: number;
      scale?: [number, number];
      ratio?: [number, number];
      mode?: 'const' | 'rand' | 'pixel';
      count?: [number, number];
    };

export interface PipelineConfig {
  ops: TransformOp[];
  /** 'float32': normalised CHW (batched NCHW); 'uint8': 8-bit HWC (batched NHWC). Default float32. */
  output?: 'float32' | 'uint8';
  /** Alpha handling at decode (default 'drop', like PIL convert('RGB')). */
  alpha?: 'drop' | 'black' | 'white';
  /**
   * Decode large images at reduced size: a JPEG at 1/2, 1/4 or 1/8 in the DCT domain (libjpeg-turbo, as
   * PIL's draft mode) while it stays at least the size the first op needs (a letterbox or fixed resize
   * target; for a RandomResizedCrop, `reducingGap` x its output); other formats through libvips'
   * shrink-on-load.
   * Much faster on photos several times the training size; close to, not bit-equal with, full
   * decoding. Default false.
   */
  fastDecode?: boolean;
  /**
   * With `fastDecode`, how much larger than the output a RandomResizedCrop's window stays after DCT
   * reduction (PIL's reducing_gap); the resampling filter does the rest. Default 2: reducing to just the
   * output size (1) made training images measurably softer and cost accuracy (docs/speed.md).
   */
  reducingGap?: number;
  /** Decompression-bomb limit in pixels. */
  maxPixels?: number;
  /**
   * Apply every op literally, like torchvision. Default false: a letterbox directly followed by
   * randomResizedCrop is done as one resampling from the source (same crop box, one interpolation
   * instead of two; faster and slightly sharper).
   */
  exact?: boolean;
}

export interface ChannelStats {
  mean: Triple;
  std: Triple;
}

function invalid(name: string, expected: string, actual: unknown): Error {
  return new Error(`Expected ${expected} for ${name} but received ${JSON.stringify(actual)} of type ${typeof actual}`);
}
const isPosInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;
const isTriple = (v: unknown): v is Triple =>
  Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x));
const isRange = (v: unknown): v is [number, number] =>
  Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number' && Number.isFinite(x)) && v[0] <= v[1];

function checkSize(name: string, v: unknown): void {
  if (!(isPosInt(v) || (Array.isArray(v) && v.length === 2 && v.every(isPosInt))))
    throw invalid(name, 'a positive integer or [height, width]', v);
}
function checkFill(name: string, v: unknown): void {
  if (v === undefined || v === 'black' || v === 'mean') return;
  if (!isTriple(v) || v.some((x) => x < 0 || x > 255)) throw invalid(name, "'black', 'mean' or [r, g, b] in 0..255", v);
}
function checkInterpolation(name: string, v: unknown): void {
  if (v !== undefined && v !== 'bilinear' && v !== 'bicubic') throw invalid(name, "'bilinear' or 'bicubic'", v);
}
function checkProb(name: string, v: unknown): void {
  if (v !== undefined && !(typeof v === 'number' && v >= 0 && v <= 1))
    throw invalid(name, 'a probability in [0, 1]', v);
}

/** Validates a config; throws with the op index and field on the first problem. */
export function validatePipeline(cfg: PipelineConfig): void {
  if (!cfg || !Array.isArray(cfg.ops)) throw invalid('pipeline.ops', 'an array of ops', cfg?.ops);
  if (cfg.output !== undefined && cfg.output !== 'float32' && cfg.output !== 'uint8')
    throw invalid('pipeline.output', "'float32' or 'uint8'", cfg.output);
  if (cfg.reducingGap !== undefined && !(typeof cfg.reducingGap === 'number' && cfg.reducingGap >= 1))
    throw invalid('pipeline.reducingGap', 'a number >= 1', cfg.reducingGap);
  let normalized = false;
  cfg.ops.forEach((o, i) => {
    const at = `pipeline.ops[${i}]`;
    const raw = o as unknown as Record<string, unknown>;
    if (normalized && o.op !== 'cutout' && o.op !== 'randomErasing')
      throw new Error(`${at}: '${o.op}' must come before 'normalize' (only cutout and randomErasing may follow it)`);
    switch (o.op) {
      case 'letterbox':
        if (o.size !== undefined && !isPosInt(o.size)) throw invalid(`${at}.size`, 'a positive integer', o.size);
        checkFill(`${at}.fill`, o.fill);
        checkInterpolation(`${at}.interpolation`, o.interpolation);
        break;
      case 'resize':
        checkSize(`${at}.size`, o.size);
        checkInterpolation(`${at}.interpolation`, o.interpolation);
        if (o.mode !== undefined && o.mode !== 'shorter' && o.mode !== 'squash')
          throw invalid(`${at}.mode`, "'shorter' or 'squash'", o.mode);
        break;
      case 'centerCrop':
        checkSize(`${at}.size`, o.size);
        break;
      case 'randomResizedCrop':
        checkSize(`${at}.size`, o.size);
        if (o.scale !== undefined && !(isRange(o.scale) && o.scale[0] > 0 && o.scale[1] <= 1))
          throw invalid(`${at}.scale`, '[min, max] within (0, 1]', o.scale);
        if (o.ratio !== undefined && !(isRange(o.ratio) && o.ratio[0] > 0))
          throw invalid(`${at}.ratio`, '[min, max] > 0', o.ratio);
        break;
      case 'hflip':
        checkProb(`${at}.p`, o.p);
        break;
      case 'colorJitter':
        for (const k of ['brightness', 'contrast', 'saturation'] as const)
          if (o[k] !== undefined && !(typeof o[k] === 'number' && o[k]! >= 0))
            throw invalid(`${at}.${k}`, 'a number >= 0', o[k]);
        if (o.hue !== undefined && !(typeof o.hue === 'number' && o.hue >= 0 && o.hue <= 0.5))
          throw invalid(`${at}.hue`, 'a number in [0, 0.5]', o.hue);
        break;
      case 'autoAugment':
        if (o.policy !== undefined && o.policy !== 'imagenet') throw invalid(`${at}.policy`, "'imagenet'", o.policy);
        checkFill(`${at}.fill`, o.fill);
        break;
      case 'randAugment':
        if (typeof o.config !== 'string')
          throw invalid(`${at}.config`, "a timm string like 'rand-m9-mstd0.5-inc1'", o.config);
        parseRandAugment(o.config);
        checkFill(`${at}.fill`, o.fill);
        break;
      case 'normalize':
        if (o.mean !== 'dataset' && !isTriple(o.mean)) throw invalid(`${at}.mean`, "[r, g, b] or 'dataset'", o.mean);
        if (o.std !== 'dataset' && !(isTriple(o.std) && o.std.every((x) => x > 0)))
          throw invalid(`${at}.std`, "[r, g, b] > 0 or 'dataset'", o.std);
        normalized = true;
        break;
      case 'cutout':
        if (!isPosInt(o.length)) throw invalid(`${at}.length`, 'a positive integer', o.length);
        if (o.holes !== undefined && !isPosInt(o.holes)) throw invalid(`${at}.holes`, 'a positive integer', o.holes);
        break;
      case 'randomErasing':
        checkProb(`${at}.p`, o.p);
        if (o.scale !== undefined && !(isRange(o.scale) && o.scale[0] > 0 && o.scale[1] <= 1))
          throw invalid(`${at}.scale`, '[min, max] within (0, 1]', o.scale);
        if (o.ratio !== undefined && !(isRange(o.ratio) && o.ratio[0] > 0))
          throw invalid(`${at}.ratio`, '[min, max] > 0', o.ratio);
        if (o.mode !== undefined && !['const', 'rand', 'pixel'].includes(o.mode))
          throw invalid(`${at}.mode`, "'const', 'rand' or 'pixel'", o.mode);
        if (o.count !== undefined && !(isRange(o.count) && o.count[0] >= 1 && o.count.every(Number.isInteger)))
          throw invalid(`${at}.count`, '[min, max] integers >= 1', o.count);
        break;
      default:
        throw invalid(
          `${at}.op`,
          'a known op (letterbox, resize, centerCrop, randomResizedCrop, hflip, colorJitter, autoAugment, randAugment, normalize, cutout, randomErasing)',
          raw['op'],
        );
    }
  });
  if (cfg.ops.some((o) => o.op === 'cutout' || o.op === 'randomErasing') && !normalized)
    throw new Error("pipeline: cutout and randomErasing act on normalised data: put a 'normalize' op before them");
}

/** True when the pipeline needs dataset statistics ('dataset' mean/std or 'mean' fill without numeric mean). */
export function needsDatasetStats(cfg: PipelineConfig): boolean {
  return (
    cfg.ops.some((o) => o.op === 'normalize' && (o.mean === 'dataset' || o.std === 'dataset')) ||
    (cfg.ops.some((o) => 'fill' in o && o.fill === 'mean') &&
      !cfg.ops.some((o) => o.op === 'normalize' && isTriple(o.mean)))
  );
}

/** Replaces 'dataset' statistics and 'mean' fills with numbers; the result is what a run stores. */
export function resolvePipeline(cfg: PipelineConfig, stats?: ChannelStats): PipelineConfig {
  validatePipeline(cfg);
  const norm = cfg.ops.find((o) => o.op === 'normalize') as Extract<TransformOp, { op: 'normalize' }> | undefined;
  const need = (what: string) => {
    if (!stats)
      throw new Error(
        `pipeline: ${what} needs dataset statistics (compute them with computeChannelStats on the training split)`,
      );
    return stats;
  };
  const mean: Triple | undefined = norm
    ? norm.mean === 'dataset'
      ? need("normalize mean 'dataset'").mean
      : norm.mean
    : stats?.mean;
  const fillMean = (): Triple => {
    const m = mean ?? need("fill 'mean'").mean;
    return m.map((v) => Math.min(255, Math.max(0, Math.round(v * 255)))) as Triple;
  };
  const ops = cfg.ops.map((o): TransformOp => {
    if (o.op === 'normalize')
      return {
        op: 'normalize',
        mean: o.mean === 'dataset' ? need("normalize mean 'dataset'").mean : o.mean,
        std: o.std === 'dataset' ? need("normalize std 'dataset'").std : o.std,
      };
    if ('fill' in o && o.fill === 'mean') return { ...o, fill: fillMean() };
    return { ...o };
  });
  return { ...cfg, ops };
}

function fillRgb(f: FillSpec | undefined, dflt: Rgb): Rgb {
  if (f === undefined) return dflt;
  if (f === 'black') return [0, 0, 0];
  if (f === 'mean') throw new Error("pipeline: fill 'mean' is unresolved; call resolvePipeline first");
  return f;
}
const hw = (s: Size): [number, number] => (typeof s === 'number' ? [s, s] : s);

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

/** Structure-retention resize: pad to square (PIL paste offsets), then resize (bilinear by default). */
export function letterbox(
  img: RgbImage,
  size: number | undefined,
  fill: Rgb = [0, 0, 0],
  filter: Interpolation = 'bilinear',
): RgbImage {
  const sq = padToSquare(img, fill);
  return size === undefined || size === sq.width ? sq : resizeWith(sq, size, size, filter);
}

export function resize(
  img: RgbImage,
  size: Size,
  mode: 'shorter' | 'squash' = 'shorter',
  filter: Interpolation = 'bilinear',
): RgbImage {
  let w: number, h: number;
  if (Array.isArray(size)) [h, w] = size;
  else if (mode === 'squash') w = h = size;
  else [w, h] = shorterSideSize(img.width, img.height, size);
  return w === img.width && h === img.height ? img : resizeWith(img, w, h, filter);
}

/** Result of one sample through the pipeline. */
export interface Processed {
  /** float32 CHW (normalised) or uint8 HWC. */
  data: Float32Array | Uint8Array;
  width: number;
  height: number;
}

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

/** A flip at op i can wait for the float conversion when only pixel-wise colour ops come before it. */
function canDeferFlip(cfg: PipelineConfig, i: number): boolean {
  if (cfg.output === 'uint8') return false;
  for (let j = i + 1; j < cfg.ops.length; j++) {
    const op = cfg.ops[j]!.op;
    if (op === 'normalize') return true;
    if (op !== 'colorJitter') return false;
  }
  return false;
}

/** Index of the first op whose output depends on the rng: ops before it form a cacheable prefix. */
export function deterministicPrefixLength(cfg: PipelineConfig): number {
  let i = 0;
  for (; i < cfg.ops.length; i++) {
    const o = cfg.ops[i]!;
    if (o.op !== 'letterbox' && o.op !== 'resize' && o.op !== 'centerCrop') break;
  }
  return i;
}

/** PipelineConfig.reducingGap's default for random crops. */
export const DEFAULT_REDUCING_GAP = 2;

/** True when op i is a letterbox that will be fused with the randomResizedCrop after it. */
function fusesWithNext(cfg: PipelineConfig, i: number): boolean {
  const o = cfg.ops[i];
  return (
    !cfg.exact &&
    o?.op === 'letterbox' &&
    (o.interpolation ?? 'bilinear') === 'bilinear' &&
    cfg.ops[i + 1]?.op === 'randomResizedCrop'
  );
}

/**
 * Where decoding stops and per-sample ops start when nothing is cached: the deterministic prefix,
 * except a letterbox that is fused with the following randomResizedCrop.
 */
export function decodePrefixLength(cfg: PipelineConfig): number {
  const k = deterministicPrefixLength(cfg);
  return k > 0 && fusesWithNext(cfg, k - 1) ? k - 1 : k;
}

type RrcOp = Extract<TransformOp, { op: 'randomResizedCrop' }>;
type LetterboxOp = Extract<TransformOp, { op: 'letterbox' }>;

/**
 * letterbox + RandomResizedCrop as one resampling: the crop is planned on the letterboxed canvas (the
 * same draws as the two-step path) and mapped to the padded source canvas (S x S, image at offX, offY).
 */
function planFusedCrop(
  width: number,
  height: number,
  lb: LetterboxOp,
  rrc: RrcOp,
  rng: Rng,
): { S: number; offX: number; offY: number; box: CanvasBox; outW: number; outH: number } {
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

/**
 * A leading letterbox + RandomResizedCrop straight from JPEG bytes: the crop is planned from the header,
 * and only the window the filter reads is decompressed (libjpeg-turbo crop/skip), giving the same pixels
 * as decoding everything. With `fastDecode`, a crop at least 2 x `reducingGap` times the output is
 * decoded at 1/2..1/8 in the DCT domain (not bit-equal then). Null when this path does not apply; `rng`
 * may then have advanced, so the caller starts over from the seed.
 */
function fusedCropFromJpeg(buf: Uint8Array, cfg: PipelineConfig, rng: Rng): RgbImage | null {
  const nat = nativeImage();
  const lb = cfg.ops[0];
  // Only complete files: a window above a truncation would decode cleanly and hide the damage.
  if (
    !nat ||
    lb?.op !== 'letterbox' ||
    !fusesWithNext(cfg, 0) ||
    !looksLikeJpeg(buf) ||
    buf[buf.length - 2] !== 0xff ||
    buf[buf.length - 1] !== 0xd9
  )
    return null;
  const info = nat.jpegInfo(buf);
  const maxPixels = cfg.maxPixels ?? DEFAULT_MAX_PIXELS;
  // Over a limit: decodeBufferWithPrefix refuses it with the file's name.
  if (!info?.supported || info.width * info.height > maxPixels || Math.max(info.width, info.height) ** 2 > maxPixels)
    return null;
  const [W, H] = orientedSize(info);
  const p = planFusedCrop(W, H, lb, cfg.ops[1] as RrcOp, rng);
  const gap = cfg.reducingGap ?? DEFAULT_REDUCING_GAP;
  const d = cfg.fastDecode ? dctScale(p.box.x1 - p.box.x0, p.box.y1 - p.box.y0, p.outW, p.outH, gap) : 1;
  // At 1/d the image is ceil(W/d) x ceil(H/d) (libjpeg's rounding); the canvas and box scale with it.
  const Wd = Math.ceil(W / d),
    Hd = Math.ceil(H / d),
    Sd = Math.max(Wd, Hd);
  const offX = d === 1 ? p.offX : Math.floor((Sd - Wd) / 2),
    offY = d === 1 ? p.offY : Math.floor((Sd - Hd) / 2);
  const box =
    d === 1
      ? p.box
      : {
          x0: (p.box.x0 - p.offX) / d + offX,
          y0: (p.box.y0 - p.offY) / d + offY,
          x1: (p.box.x1 - p.offX) / d + offX,
          y1: (p.box.y1 - p.offY) / d + offY,
        };
  const r = canvasBoxRegion(Sd, Sd, box, p.outW, p.outH);
  const fill = fillRgb(lb.fill, [0, 0, 0]);
  const [ax, ay] = regionBoxAxes(r, box);
  const res = nat.decodeJpeg(
    buf,
    d,
    maxPixels,
    [r.x0 - offX, r.y0 - offY, r.x1 - r.x0, r.y1 - r.y0, fill[0], fill[1], fill[2]],
    [p.outW, p.outH, ax, ay],
  );
  return res.status === 'ok' ? { data: res.data, width: res.width, height: res.height } : null;
}

/**
 * A leading letterbox pads to a max(W, H)² canvas (or, fused with a crop, reads a window of up to that
 * size): the pixel limit bounds that canvas too. Without this a 24 x 32768 JPEG (786k pixels, 1 kB)
 * made eval and predict allocate 3.2 GB, and a 1 x 40M PNG passed the server's limit (found by fuzzing).
 */
function checkLetterboxCanvas(path: string, cfg: PipelineConfig, width: number, height: number): void {
  const maxPixels = cfg.maxPixels ?? DEFAULT_MAX_PIXELS;
  const s = Math.max(width, height);
  if (cfg.ops[0]?.op === 'letterbox' && s * s > maxPixels) {
    // Name the image's own size first when it alone is over the limit.
    const why =
      width * height > maxPixels
        ? `${width}x${height} is over the pixel limit of ${maxPixels} pixels`
        : `${width}x${height} letterboxes to a ${s}x${s} canvas, over the pixel limit of ${maxPixels} pixels`;
    throw new BadImageError(path, 'too-large', why);
  }
}

/**
 * Decodes a file and applies the deterministic prefix ops [0, prefixEnd). With `fastDecode`, a large
 * image is decoded at reduced size for a leading letterbox-with-size or fixed resize (see fastDecode).
 */
export async function decodeWithPrefix(
  path: string,
  cfg: PipelineConfig,
  prefixEnd = deterministicPrefixLength(cfg),
): Promise<RgbImage> {
  return decodeBufferWithPrefix(await readImageFile(path), path, cfg, prefixEnd);
}

/** decodeWithPrefix for an image already in memory (an upload); `path` only names it in errors. */
export async function decodeBufferWithPrefix(
  buf: Buffer,
  path: string,
  cfg: PipelineConfig,
  prefixEnd = deterministicPrefixLength(cfg),
): Promise<RgbImage> {
  const dopts = { maxPixels: cfg.maxPixels ?? DEFAULT_MAX_PIXELS, alpha: cfg.alpha ?? 'drop' } as const;
  const header = imageSizeFromHeader(buf);
  if (header) checkLetterboxCanvas(path, cfg, header.width, header.height);
  let start = 0;
  let img: RgbImage | null = null;
  const first = cfg.ops[0];
  // The size a leading letterbox-with-size or fixed resize produces, [height, width].
  const target = !first
    ? null
    : first.op === 'letterbox'
      ? first.size === undefined
        ? null
        : [first.size, first.size]
      : first.op === 'resize' && (Array.isArray(first.size) || first.mode === 'squash')
        ? hw(first.size)
        : null;
  if (cfg.fastDecode && prefixEnd > 0 && target) {
    // JPEG: decode at 1/2..1/8 in the DCT domain while the image stays at least the target size, then
    // run the op itself (PIL's filter) on the smaller image.
    const nat = nativeImage();
    const info = nat && looksLikeJpeg(buf) ? nat.jpegInfo(buf) : null;
    if (nat && info?.supported && info.width * info.height <= dopts.maxPixels) {
      const [W, H] = orientedSize(info);
      const S = Math.max(W, H);
      const d = first!.op === 'letterbox' ? dctScale(S, S, target[1], target[0]) : dctScale(W, H, target[1], target[0]);
      if (d > 1) img = decodeJpegNative(buf, d, dopts.maxPixels);
    } else {
      // Other formats (and JPEGs the native decoder does not take): libvips resizes while decoding
      // (shrink-on-load pays off from 2x the target).
      const dims = imageSizeFromHeader(buf);
      if (dims && Math.min(dims.width, dims.height) >= 2 * Math.max(target[0], target[1])) {
        const kernel =
          'interpolation' in first! && first.interpolation === 'bicubic' ? ('cubic' as const) : ('linear' as const);
        const resize =
          first!.op === 'letterbox'
            ? {
                width: target[1],
                height: target[0],
                fit: 'contain' as const,
                background: fillRgb(first!.fill, [0, 0, 0]),
                kernel,
              }
            : { width: target[1], height: target[0], fit: 'fill' as const, background: [0, 0, 0] as const, kernel };
        img = await decodeBuffer(buf, path, { ...dopts, resize });
        start = 1;
      }
    }
  }
  img ??= await decodeBuffer(buf, path, dopts);
  checkLetterboxCanvas(path, cfg, img.width, img.height);
  return applyOps(img, cfg, new Rng(0), start, prefixEnd).img;
}

interface OpsState {
  img: RgbImage;
  float: Float32Array | null;
  mean: Triple | null;
  std: Triple | null;
  flip: boolean;
}

/**
 * Applies ops [from, to) to an 8-bit image. `input` is copied before the first in-place op unless
 * `owned`; `into` receives the float output of normalize when it has the right length.
 */
function applyOps(
  img0: RgbImage,
  cfg: PipelineConfig,
  rng: Rng,
  from: number,
  to: number,
  owned = false,
  into?: Float32Array,
): OpsState {
  // `input` is what must not be modified: nothing when the caller hands over the image.
  const input: RgbImage | null = owned ? null : img0;
  const st: OpsState = { img: img0, float: null, mean: null, std: null, flip: false };
  const uint8Out = cfg.output === 'uint8';
  for (let i = from; i < to; i++) {
    const o = cfg.ops[i]!;
    let img = st.img;
    switch (o.op) {
      case 'letterbox': {
        const fill = fillRgb(o.fill, [0, 0, 0]);
        if (i + 1 < to && fusesWithNext(cfg, i)) {
          const p = planFusedCrop(img.width, img.height, o, cfg.ops[i + 1] as RrcOp, rng);
          img = resampleCanvasBox(img, p.S, p.S, p.offX, p.offY, p.box, p.outW, p.outH, fill);
          i++;
        } else img = letterbox(img, o.size, fill, o.interpolation);
        break;
      }
      case 'resize':
        img = resize(img, o.size, o.mode, o.interpolation);
        break;
      case 'centerCrop': {
        const [h, w] = hw(o.size);
        img = centerCrop(img, w, h);
        break;
      }
      case 'randomResizedCrop': {
        const [h, w] = hw(o.size);
        const b = planRandomResizedCrop(rng, img.width, img.height, o.scale, o.ratio);
        img = resizeBilinear(img, w, h, b);
        break;
      }
      case 'hflip':
        if (rng.random() < (o.p ?? 0.5)) {
          if (canDeferFlip(cfg, i))
            st.flip = !st.flip; // ColorJitter commutes with a mirror
          else img = hflipInPlace(img === input ? { ...img, data: new Uint8Array(img.data) } : img);
        }
        break;
      case 'colorJitter': {
        const plan = planColorJitter(rng, o);
        if (img === input) img = { ...img, data: new Uint8Array(img.data) };
        img = applyColorJitter(img, plan);
        break;
      }
      case 'autoAugment':
      case 'randAugment': {
        const steps =
          o.op === 'autoAugment'
            ? planAutoAugment(rng, [img.width, img.height])
            : planRandAugment(rng, parseRandAugment(o.config), [img.width, img.height]);
        const fill = fillRgb(o.fill, [128, 128, 128]);
        for (const s of steps) {
          if (s.applied && img === input) img = { ...img, data: new Uint8Array(img.data) };
          img = applyAugStep(img, s, fill);
        }
        break;
      }
      case 'normalize': {
        if (o.mean === 'dataset' || o.std === 'dataset')
          throw new Error("pipeline: normalize 'dataset' is unresolved; call resolvePipeline first");
        st.mean = o.mean;
        st.std = o.std;
        if (!uint8Out) st.float = toFloatChw(img, o.mean, o.std, st.flip, into);
        break;
      }
      case 'cutout':
      case 'randomErasing': {
        const rects =
          o.op === 'cutout'
            ? { rects: planCutout(rng, o.length, o.holes ?? 1, img.height, img.width), mode: 'const' as const }
            : planRandomErasing(rng, o, img.height, img.width);
        if (rects.rects.length === 0) break;
        if (st.float) eraseFloatChw(st.float, img.height, img.width, rects.rects, rects.mode, rng);
        else {
          if (img === input) img = { ...img, data: new Uint8Array(img.data) };
          eraseUint8Hwc(img.data, img.width, rects.rects, rects.mode, rng, st.mean ?? [0, 0, 0], st.std ?? [1, 1, 1]);
        }
        break;
      }
    }
    st.img = img;
  }
  return st;
}

export interface FinishOptions {
  /** The image may be modified in place (it is not shared with anyone). Default false. */
  owned?: boolean;
  /**
   * Where the result should go (a slot of a batch): used when its type and length fit the result,
   * which is then returned as `data`; otherwise a new array is returned.
   */
  into?: Float32Array | Uint8Array;
}

/**
 * Runs ops [from, end) on an already decoded image (the cacheable prefix output) and produces the final
 * sample. The input image is not modified unless `opts.owned`.
 */
export function finishSample(
  img: RgbImage,
  cfg: PipelineConfig,
  rng: Rng,
  from: number,
  opts: FinishOptions = {},
): Processed {
  const intoF = opts.into instanceof Float32Array ? opts.into : undefined;
  const st = applyOps(img, cfg, rng, from, cfg.ops.length, opts.owned ?? false, intoF);
  const out = st.img;
  if (cfg.output === 'uint8') {
    if (opts.into instanceof Uint8Array && opts.into.length === out.data.length) {
      opts.into.set(out.data);
      return { data: opts.into, width: out.width, height: out.height };
    }
    return {
      data: out.data === img.data && !opts.owned ? new Uint8Array(out.data) : out.data,
      width: out.width,
      height: out.height,
    };
  }
  const data = st.float ?? toFloatChw(out, [0, 0, 0], [1, 1, 1], false, intoF);
  return { data, width: out.width, height: out.height };
}

/**
 * The fixed height and width of the pipeline's output, when its ops determine it whatever the input
 * size (a final crop or resize to a given size); null when it depends on the image.
 */
export function pipelineOutputSize(cfg: PipelineConfig): [number, number] | null {
  let size: [number, number] | null = null;
  for (const o of cfg.ops) {
    if (o.op === 'letterbox') size = o.size === undefined ? null : [o.size, o.size];
    else if (o.op === 'resize') size = Array.isArray(o.size) ? o.size : o.mode === 'squash' ? [o.size, o.size] : null;
    else if (o.op === 'centerCrop' || o.op === 'randomResizedCrop') size = hw(o.size);
  }
  return size;
}

/** Decodes and transforms one file; `seed` is the per-sample seed (see sampleSeed). */
export async function processFile(
  path: string,
  cfg: PipelineConfig,
  seed: number,
  into?: Float32Array | Uint8Array,
): Promise<Processed> {
  return processBuffer(await readImageFile(path), path, cfg, seed, into);
}

/**
 * processFile for an encoded image in memory (the server's uploads): same decode, same ops. `into`: see
 * FinishOptions.
 */
export async function processBuffer(
  buf: Buffer,
  path: string,
  cfg: PipelineConfig,
  seed: number,
  into?: Float32Array | Uint8Array,
): Promise<Processed> {
  const rng = new Rng(seed);
  const fused = fusedCropFromJpeg(buf, cfg, rng);
  if (fused) return finishSample(fused, cfg, rng, 2, { owned: true, into });
  const k = decodePrefixLength(cfg);
  const img = await decodeBufferWithPrefix(buf, path, cfg, k);
  return finishSample(img, cfg, new Rng(seed), k, { owned: true, into });
}

/** mean/std the consumer must apply to uint8 output (null when the pipeline has no normalize op). */
export function pipelineNormalization(cfg: PipelineConfig): ChannelStats | null {
  const n = cfg.ops.find((o) => o.op === 'normalize');
  if (n?.op !== 'normalize' || n.mean === 'dataset' || n.std === 'dataset') return null;
  return { mean: n.mean, std: n.std };
}
