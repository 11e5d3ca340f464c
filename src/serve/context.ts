// What the server's route plugins share: the served model and its pre-processing, the limits, the
// inference path, the metrics, the optional gallery and reference photos, and the server's state.
import type { PipelineConfig } from '../data/transforms.js';
import type { Inference } from './inference.js';
import type { ServeMetrics } from './metrics.js';
import type { ServedModel } from './model.js';
import type { ServedGallery } from './served-gallery.js';

export interface ServerLimits {
  /** Bytes per image (raw body, or each multipart file). */
  maxBodyBytes: number;
  /** Images per request. */
  maxImages: number;
  /** Pixels per image before decoding (decompression bombs). */
  maxPixels: number;
  /** A request gets INFERENCE_TIMEOUT when its predictions take longer (ms); bodies must arrive within it too. */
  requestTimeoutMs: number;
  /** Images waiting for inference at most. */
  maxQueue: number;
}

export const DEFAULT_LIMITS: ServerLimits = {
  maxBodyBytes: 10 * 1024 * 1024,
  maxImages: 16,
  maxPixels: 40_000_000,
  requestTimeoutMs: 30_000,
  maxQueue: 256,
};

/** Requests being answered, and whether close() has begun (kept by the server's hooks). */
export interface ServerState {
  closing: boolean;
  inflight: number;
}

/** The options every route plugin is registered with. */
export interface ServeContext {
  readonly model: ServedModel;
  /** The ops run on every upload (the run's evalPipeline with the server's pixel limit). */
  readonly pipeline: PipelineConfig;
  readonly limits: ServerLimits;
  readonly maxBatch: number;
  readonly inference: Inference;
  readonly metrics: ServeMetrics;
  readonly state: Readonly<ServerState>;
  readonly gallery: ServedGallery | undefined;
  /** Bearer token for gallery writes; undefined: writes are off. */
  readonly adminToken: string | undefined;
  /** Class name -> reference photo file. */
  readonly references: ReadonlyMap<string, string> | undefined;
}
