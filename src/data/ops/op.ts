/**
 * What a transform op is: one file per op in this folder exports an `OpSpec` (validation, flags, the
 * server's application, the browser page's version or 'server-only'), and `registry.ts` lists them. The
 * pipeline (`../transforms.ts`), the decode planning (`../decode-plan.ts`) and the page
 * (`../../serve/web-preprocess.ts`) only dispatch through the registry.
 *
 * Op files stay loadable in the browser: their runtime imports are browser-safe modules only (no Node,
 * no addon; `test/data-ops-registry.test.ts` walks the page's module graph). The server's kernels, which
 * may call the native addon, reach `apply` through `ApplyContext.k`.
 */
import type { RgbImage } from '../image.js';
import type { Rng } from '../../util/rng.js';
import type { PipelineConfig, TransformOp } from '../transforms.js';
import type * as Resample from '../resample.js';
import type * as Color from '../color.js';
import type * as AugmentApply from '../autoaugment-apply.js';
import type { Rgb } from '../pil-pixels.js';
import type { Triple } from './fields.js';

/** The server's pixel kernels: native when the addon is built, else TypeScript (bit-identical). */
export interface PixelKernels {
  resample: typeof Resample;
  color: typeof Color;
  augment: typeof AugmentApply;
  /** HWC uint8 -> normalised CHW float32, mirrored on the way when `flip`; into `into` when its length fits. */
  toFloatChw(
    img: RgbImage,
    mean: readonly number[],
    std: readonly number[],
    flip: boolean,
    into?: Float32Array,
  ): Float32Array;
}

/** A sample between ops on the server. */
export interface OpState {
  /** 8-bit RGB HWC (after normalize, the pixels that were normalised). */
  img: RgbImage;
  /** normalize's float32 CHW output (float32 pipelines only). */
  float: Float32Array | null;
  /** normalize's mean/std (also kept for uint8 output, where the consumer normalises). */
  mean: Triple | null;
  std: Triple | null;
  /** A mirror left for the float conversion to do (see ApplyContext.flipCanWait). */
  flip: boolean;
}

export interface ApplyContext {
  readonly cfg: PipelineConfig;
  /** This op's index in cfg.ops. */
  readonly index: number;
  /** The sample's random stream: ops draw from it in pipeline order. */
  readonly rng: Rng;
  readonly k: PixelKernels;
  /** `img`, or a copy of it when it is the caller's input, which must not be modified: call before writing in place. */
  writable(img: RgbImage): RgbImage;
  /** A mirror at this op can wait for the float conversion: only pixel-wise ops lie between it and normalize. */
  flipCanWait(): boolean;
  /** Where normalize's float output goes when its length fits (a batch slot). */
  readonly into: Float32Array | undefined;
}

/**
 * How a leading op lets a large image be decoded at reduced size (fastDecode): it resamples what it
 * `reads` (the image, or the max(W, H)² canvas it pads the image to) to `out` ([width, height]), so the
 * decoder may shrink while at least `out` remains; `vips` is the same op done by libvips while it decodes.
 */
export interface DecodeShrink {
  reads: 'image' | 'square-canvas';
  out: [number, number];
  vips: { fit: 'contain' | 'fill'; background: Rgb; kernel: 'linear' | 'cubic' };
}

/** A pipeline op's options: `{ op: name, ...fields }`. */
export interface OpOptions {
  op: string;
}

/**
 * One transform op. Methods (not function-typed fields) so that a spec of one op is a spec of the
 * `TransformOp` union too (the registry hands them out that way).
 */
export interface OpSpec<O extends OpOptions> {
  readonly name: O['op'];
  /** Throws naming `${at}.<field>` and what it accepts on the first bad field (`o` comes from JSON). */
  validate(o: O, at: string): void;
  /**
   * 'pixels': on 8-bit RGB, before normalize; 'normalize': the op that makes float32 CHW (once);
   * 'normalized': after normalize (on its float output, or on uint8 output that the consumer normalises).
   */
  readonly stage: 'pixels' | 'normalize' | 'normalized';
  /** Draws nothing from the rng: leading deterministic pixel ops form the cacheable prefix. */
  readonly deterministic: boolean;
  /** Each output pixel depends only on the same input pixel, so a mirror may be deferred past it. */
  readonly pixelwise: boolean;
  /** May be part of an evaluation pipeline (predict, the server, the browser page). */
  readonly eval: boolean;
  /** Runs the op on the server, updating `st`. */
  apply(o: O, st: OpState, ctx: ApplyContext): void;
  /**
   * Done together with the op after it (one resampling instead of two) when `accepts` says so; the
   * pipeline then skips that op. Absent: never fused.
   */
  readonly fusion?: {
    accepts(o: O, next: TransformOp, cfg: PipelineConfig): boolean;
    apply(o: O, next: TransformOp, st: OpState, ctx: ApplyContext): void;
  };
  /** The browser page's version (on decoded pixels; a Float32Array result ends the pipeline), or 'server-only'. */
  readonly browser: { apply(o: O, img: RgbImage): RgbImage | Float32Array } | 'server-only';
  /** The output [height, width] given the input's (null: depends on the image). Absent: the size is kept. */
  outputSize?(o: O, input: [number, number] | null): [number, number] | null;
  /** As the first op, how a large image may be decoded at reduced size (null or absent: it may not). */
  decodeShrink?(o: O): DecodeShrink | null;
}
