/**
 * The transform pipeline: a plain JSON-able config (stored in the run folder), validated once, then
 * applied per sample with an Rng derived from (seed, epoch, index).
 *
 * Ops before `normalize` work on 8-bit RGB; `normalize` produces float32 CHW; `cutout` and
 * `randomErasing` come after it (as in timm and the recipe). With `output: 'uint8'` the result stays
 * 8-bit HWC for normalising later on the GPU: `normalize` is then not applied (its mean/std are kept
 * for the consumer), and erasing fills with the colours that normalise to the same values.
 *
 * Each op is a file in ops/ (its validation, flags, application and browser version); this file is the
 * pipeline around them: its checks, the cacheable prefix, fusion, the fused native JPEG path and the
 * decode at reduced size (planned in decode-plan.ts).
 */
import type { RgbImage } from './image.js';
import { BadImageError, decodeBuffer, decodeJpegNative, imageSizeFromHeader, readImageFile } from './image.js';
import { DEFAULT_MAX_PIXELS } from './limits.js';
import { Rng } from '../util/rng.js';
import { looksLikeJpeg, nativeImage, orientedSize } from './native-image.js';
import { leadingShrink, planFusedJpegDecode, prefixJpegScale, vipsShrinkOnLoad } from './decode-plan.js';
import { SERVER_KERNELS } from './kernels.js';
import { fillRgb, invalid, isTriple, names, type Triple } from './ops/fields.js';
import { planFusedCrop } from './ops/letterbox.js';
import type { ApplyContext, OpState } from './ops/op.js';
import { findOp, OP_LIST, opSpec, type TransformOp } from './ops/registry.js';

export type { FillSpec, Size, Triple } from './ops/fields.js';
export type { OpName, TransformOp } from './ops/registry.js';
export { planRandomResizedCrop, type CropBox } from './ops/random-resized-crop.js';
export { DEFAULT_REDUCING_GAP } from './decode-plan.js';

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

export interface ValidateOptions {
  /** An evaluation pipeline (predict, the server, the browser page): only ops marked `eval` may appear. */
  eval?: boolean;
}

/** The registered ops `keep` selects, as 'a, b and c'. */
const opNames = (keep: (s: (typeof OP_LIST)[number]) => boolean): string =>
  names(
    OP_LIST.filter(keep).map((s) => s.name),
    'and',
  );

/** Validates a config; throws with the op index and field on the first problem. */
export function validatePipeline(cfg: PipelineConfig, opts: ValidateOptions = {}): void {
  if (!cfg || !Array.isArray(cfg.ops)) throw invalid('pipeline.ops', 'an array of ops', cfg?.ops);
  if (cfg.output !== undefined && cfg.output !== 'float32' && cfg.output !== 'uint8')
    throw invalid('pipeline.output', "'float32' or 'uint8'", cfg.output);
  if (cfg.reducingGap !== undefined && !(typeof cfg.reducingGap === 'number' && cfg.reducingGap >= 1))
    throw invalid('pipeline.reducingGap', 'a number >= 1', cfg.reducingGap);
  const after = opNames((s) => s.stage === 'normalized');
  let normalized = false;
  cfg.ops.forEach((o, i) => {
    const at = `pipeline.ops[${i}]`;
    const spec = findOp((o as { op?: unknown } | null)?.op);
    if (!spec) throw invalid(`${at}.op`, `a known op (${OP_LIST.map((s) => s.name).join(', ')})`, o?.op);
    if (normalized && spec.stage !== 'normalized')
      throw new Error(`${at}: '${o.op}' must come before 'normalize' (only ${after} may follow it)`);
    if (!normalized && spec.stage === 'normalized')
      throw new Error(`${at}: ${after} act on normalised data: put a 'normalize' op before them`);
    if (opts.eval && !spec.eval)
      throw new Error(`${at}: '${o.op}' has no place in an evaluation pipeline (its ops: ${opNames((s) => s.eval)})`);
    spec.validate(o, at);
    if (spec.stage === 'normalize') normalized = true;
  });
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

/** True when op i will be done together with the op after it (see OpSpec.fusion). */
function fusesWithNext(cfg: PipelineConfig, i: number): boolean {
  const o = cfg.ops[i];
  const next = cfg.ops[i + 1];
  return !!o && !!next && (opSpec(o).fusion?.accepts(o, next, cfg) ?? false);
}

/** Index of the first op whose output depends on the rng: ops before it form a cacheable prefix. */
export function deterministicPrefixLength(cfg: PipelineConfig): number {
  let i = 0;
  for (; i < cfg.ops.length; i++) {
    const s = opSpec(cfg.ops[i]!);
    if (!s.deterministic || s.stage !== 'pixels') break;
  }
  return i;
}

/**
 * Where decoding stops and per-sample ops start when nothing is cached: the deterministic prefix,
 * except an op that is fused with the one after it.
 */
export function decodePrefixLength(cfg: PipelineConfig): number {
  const k = deterministicPrefixLength(cfg);
  return k > 0 && fusesWithNext(cfg, k - 1) ? k - 1 : k;
}

/** Result of one sample through the pipeline. */
export interface Processed {
  /** float32 CHW (normalised) or uint8 HWC. */
  data: Float32Array | Uint8Array;
  width: number;
  height: number;
}

/**
 * A leading letterbox + RandomResizedCrop straight from JPEG bytes: the crop is planned from the header,
 * and only the window the filter reads is decompressed (libjpeg-turbo crop/skip), giving the same pixels
 * as decoding everything; with `fastDecode` at a reduced scale (planFusedJpegDecode). Null when this
 * path does not apply; `rng` may then have advanced, so the caller starts over from the seed.
 */
function fusedCropFromJpeg(buf: Uint8Array, cfg: PipelineConfig, rng: Rng): RgbImage | null {
  const nat = nativeImage();
  const [lb, rrc] = cfg.ops;
  // Only complete files: a window above a truncation would decode cleanly and hide the damage.
  if (
    !nat ||
    lb?.op !== 'letterbox' ||
    rrc?.op !== 'randomResizedCrop' ||
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
  const p = planFusedCrop(W, H, lb, rrc, rng);
  const plan = planFusedJpegDecode(W, H, p, cfg);
  const fill = fillRgb(lb.fill, [0, 0, 0]);
  const res = nat.decodeJpeg(
    buf,
    plan.scale,
    maxPixels,
    [...plan.window, fill[0], fill[1], fill[2]],
    [p.outW, p.outH, ...plan.axes],
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
  const shrink = prefixEnd > 0 ? leadingShrink(cfg) : null;
  if (shrink) {
    // JPEG: decode at 1/2..1/8 in the DCT domain while the image stays at least the first op's output
    // size, then run the op itself (PIL's filter) on the smaller image.
    const nat = nativeImage();
    const info = nat && looksLikeJpeg(buf) ? nat.jpegInfo(buf) : null;
    if (nat && info?.supported && info.width * info.height <= dopts.maxPixels) {
      const d = prefixJpegScale(shrink, ...orientedSize(info));
      if (d > 1) img = decodeJpegNative(buf, d, dopts.maxPixels);
    } else {
      // Other formats (and JPEGs the native decoder does not take): libvips resizes while decoding.
      const resize = header && vipsShrinkOnLoad(shrink, header.width, header.height);
      if (resize) {
        img = await decodeBuffer(buf, path, { ...dopts, resize });
        start = 1;
      }
    }
  }
  img ??= await decodeBuffer(buf, path, dopts);
  checkLetterboxCanvas(path, cfg, img.width, img.height);
  return applyOps(img, cfg, new Rng(0), start, prefixEnd).img;
}

/**
 * Applies ops [from, to) to an 8-bit image, each through its registry entry. `img0` is copied before
 * the first in-place change unless `owned`; `into` receives the float output of normalize when it has
 * the right length.
 */
function applyOps(
  img0: RgbImage,
  cfg: PipelineConfig,
  rng: Rng,
  from: number,
  to: number,
  owned = false,
  into?: Float32Array,
): OpState {
  // `input` is what must not be modified: nothing when the caller hands over the image.
  const input: RgbImage | null = owned ? null : img0;
  const st: OpState = { img: img0, float: null, mean: null, std: null, flip: false };
  const writable = (img: RgbImage): RgbImage => (img === input ? { ...img, data: new Uint8Array(img.data) } : img);
  for (let i = from; i < to; i++) {
    const o = cfg.ops[i]!;
    const spec = opSpec(o);
    const ctx: ApplyContext = {
      cfg,
      index: i,
      rng,
      k: SERVER_KERNELS,
      writable,
      flipCanWait: () => flipCanWait(cfg, i),
      into,
    };
    const next = cfg.ops[i + 1];
    if (spec.fusion && next && i + 1 < to && spec.fusion.accepts(o, next, cfg)) {
      spec.fusion.apply(o, next, st, ctx);
      i++;
    } else spec.apply(o, st, ctx);
  }
  return st;
}

/** A mirror at op i can wait for the float conversion when only pixel-wise ops lie between it and normalize. */
function flipCanWait(cfg: PipelineConfig, i: number): boolean {
  if (cfg.output === 'uint8') return false;
  for (let j = i + 1; j < cfg.ops.length; j++) {
    const s = opSpec(cfg.ops[j]!);
    if (s.stage === 'normalize') return true;
    if (!s.pixelwise) return false;
  }
  return false;
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
  const data = st.float ?? SERVER_KERNELS.toFloatChw(out, [0, 0, 0], [1, 1, 1], false, intoF);
  return { data, width: out.width, height: out.height };
}

/**
 * The fixed height and width of the pipeline's output, when its ops determine it whatever the input
 * size (a final crop or resize to a given size); null when it depends on the image.
 */
export function pipelineOutputSize(cfg: PipelineConfig): [number, number] | null {
  let size: [number, number] | null = null;
  for (const o of cfg.ops) {
    const s = opSpec(o);
    if (s.outputSize) size = s.outputSize(o, size);
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
