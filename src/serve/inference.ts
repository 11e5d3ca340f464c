// From a request to rows of the graph's output: the uploads are decoded and pre-processed by the
// data layer with the run's evalPipeline (the code evaluation and `goodsrec predict` use), then
// micro-batched into onnxruntime, all within the request timeout. Used by predictions and enrolment.
import type { FastifyRequest } from 'fastify';
import { processBuffer, type PipelineConfig } from '../data/transforms.js';
import { BadImageError, type BadFileReason } from '../data/image.js';
import { MicroBatcher } from './batcher.js';
import { ServeError, type ServeErrorCode } from './errors.js';
import type { ServeMetrics } from './metrics.js';
import type { ServedModel } from './model.js';
import { readUploads, type Upload } from './uploads.js';

const BAD_IMAGE: Record<BadFileReason, ServeErrorCode> = {
  empty: 'EMPTY_BODY',
  unreadable: 'CORRUPT_IMAGE',
  'not-an-image': 'NOT_AN_IMAGE',
  truncated: 'TRUNCATED_IMAGE',
  'too-large': 'TOO_MANY_PIXELS',
  corrupt: 'CORRUPT_IMAGE',
};

export interface InferenceOptions {
  model: ServedModel;
  pipeline: PipelineConfig;
  metrics: ServeMetrics;
  maxBatch: number;
  maxDelayMs: number;
  maxQueue: number;
  maxBodyBytes: number;
  maxPixels: number;
  requestTimeoutMs: number;
}

export interface Inferred {
  uploads: Upload[];
  /** One row per upload: the logits, then the embedding when the graph has one. */
  rows: Float32Array[];
  /** performance.now() when the request's work began, and when its pre-processing ended. */
  startedAt: number;
  preprocessedAt: number;
}

export class Inference {
  private readonly batcher: MicroBatcher;

  constructor(private readonly o: InferenceOptions) {
    this.batcher = new MicroBatcher({
      maxBatch: o.maxBatch,
      maxDelayMs: o.maxDelayMs,
      maxQueue: o.maxQueue,
      itemSize: o.model.itemSize,
      run: (x, n) => o.model.run(x, n),
      onBatch: (n, s) => {
        o.metrics.batchSize.observe(n);
        o.metrics.inferenceSeconds.observe(s);
      },
    });
  }

  /** Images waiting for onnxruntime. */
  get queueLength(): number {
    return this.batcher.queueLength;
  }

  /** The request's images through pre-processing and the graph; INFERENCE_TIMEOUT past the request timeout. */
  async run(req: FastifyRequest): Promise<Inferred> {
    const startedAt = performance.now();
    const uploads = await readUploads(req, this.o.maxBodyBytes);
    const inputs = await Promise.all(uploads.map((u) => this.preprocess(u)));
    const preprocessedAt = performance.now();
    const left = this.o.requestTimeoutMs - (preprocessedAt - startedAt);
    const rows = await this.withDeadline(this.batcher.predictMany(inputs), left);
    return { uploads, rows, startedAt, preprocessedAt };
  }

  /** The embedding part of each row, row after row ([rows.length, embeddingDim], unit rows). */
  embeddings(rows: readonly Float32Array[]): Float32Array {
    const offset = this.o.model.sidecar.classes.length;
    const d = this.o.model.embeddingDim;
    const out = new Float32Array(rows.length * d);
    rows.forEach((r, i) => out.set(r.subarray(offset, offset + d), i * d));
    return out;
  }

  /** Runs what is queued, then refuses more (the server's close). */
  drain(): Promise<void> {
    return this.batcher.drain();
  }

  private async preprocess(u: Upload): Promise<Float32Array> {
    try {
      const t0 = performance.now();
      const p = await processBuffer(u.bytes, u.name, this.o.pipeline, 0);
      this.o.metrics.preprocessSeconds.observe((performance.now() - t0) / 1000);
      return p.data as Float32Array;
    } catch (e) {
      if (e instanceof BadImageError) {
        const detail = e.message.slice(e.message.indexOf(':') + 1).trim();
        const hint = e.reason === 'too-large' ? ` (limit ${this.o.maxPixels} pixels)` : '';
        throw new ServeError(BAD_IMAGE[e.reason], `${u.name}: ${detail}${hint}`);
      }
      throw e;
    }
  }

  private withDeadline<X>(p: Promise<X>, ms: number): Promise<X> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new ServeError('INFERENCE_TIMEOUT', `no prediction within ${this.o.requestTimeoutMs} ms`)),
        Math.max(0, ms),
      );
    });
    return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
  }
}
