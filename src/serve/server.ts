// The inference server: fastify + onnxruntime-node. This file is the frame (body parsers, the error
// answers, the request count and the graceful close); the routes are plugins in routes/, each with a
// schema. Uploads are pre-processed with the run's evalPipeline, micro-batched into onnxruntime
// (inference.ts) and answered with top-k labels. Every error is {error: {code, message}}.
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import { evalPipeline } from '../run/pipelines.js';
import { DEFAULT_LIMITS, type ServeContext, type ServerLimits, type ServerState } from './context.js';
import { ServeError, errorBody, fromFrameworkError } from './errors.js';
import { Inference } from './inference.js';
import { ServeMetrics } from './metrics.js';
import type { ServedModel } from './model.js';
import { checkGalleryFits, type ServedGallery } from './served-gallery.js';
import { AJV_OPTIONS, badRequest } from './schema.js';
import { galleryRoutes } from './routes/gallery.js';
import { healthRoutes } from './routes/health.js';
import { modelRoutes } from './routes/model.js';
import { predictRoutes } from './routes/predict.js';
import { staticRoutes } from './routes/static.js';

export { DEFAULT_LIMITS, type ServerLimits } from './context.js';
export type { GalleryPrediction, PredictResponse } from './routes/predict.js';
export { readReferencePhotos } from './references.js';

export interface ServerOptions extends Partial<ServerLimits> {
  model: ServedModel;
  /** Images per onnxruntime run at most (default 16). */
  maxBatch?: number;
  /** Micro-batching window (ms, default 4). */
  maxDelayMs?: number;
  /** Class name -> reference photo file (e.g. grocery-store's iconic images). */
  references?: ReadonlyMap<string, string>;
  /** fastify's logger (default off). */
  logger?: boolean;
  /** Recognise through this gallery too (the model must be served with its embedding output). */
  gallery?: ServedGallery;
  /** Bearer token for gallery writes (enrol/remove); without one, writes answer 403. Reads stay open. */
  adminToken?: string;
  /**
   * Decode large JPEGs at 1/2..1/8 in the DCT domain, as evaluation does (default true: ~20x faster on
   * phone photos). The browser page cannot do that step exactly (web-preprocess.ts); false gives the page
   * the server's input bit for bit on every photo, at the cost of full-size decoding.
   */
  fastDecode?: boolean;
}

/** Characters of one path parameter, percent-encoded, the router accepts. */
const MAX_PARAM_LENGTH = 200 * 12;

export async function buildServer(o: ServerOptions): Promise<FastifyInstance> {
  const limits: ServerLimits = {
    ...DEFAULT_LIMITS,
    ...Object.fromEntries(Object.entries(o).filter(([k, v]) => k in DEFAULT_LIMITS && v !== undefined)),
  };
  const model = o.model;
  if (o.gallery) checkGalleryFits(o.gallery, model);
  const maxBatch = o.maxBatch ?? 16;
  // The same pre-processing as evaluation; only the decoder's pixel limit is the server's.
  const pipeline = {
    ...evalPipeline(model.sidecar.preprocess),
    maxPixels: limits.maxPixels,
    ...(o.fastDecode === false ? { fastDecode: false } : {}),
  };
  const state: ServerState = { closing: false, inflight: 0 };
  const metrics = new ServeMetrics((): number => inference.queueLength);
  const inference = new Inference({ model, pipeline, metrics, maxBatch, maxDelayMs: o.maxDelayMs ?? 4, ...limits });
  const ctx: ServeContext = {
    model,
    pipeline,
    limits,
    maxBatch,
    inference,
    metrics,
    state,
    gallery: o.gallery,
    adminToken: o.adminToken || undefined,
    references: o.references,
  };

  // Every error answer, the framework's own included: {error: {code, message}} from the catalogue.
  const answerError = (err: Error, req: FastifyRequest, reply: FastifyReply): void => {
    let e =
      err instanceof ServeError
        ? err
        : fromFrameworkError(err as { code?: string; statusCode?: number; message: string }, {
            bodyBytes: limits.maxBodyBytes,
            images: limits.maxImages,
          });
    if (e.code === 'UNSUPPORTED_MEDIA_TYPE' && !(err instanceof ServeError)) {
      e = new ServeError(
        e.code,
        `content type '${req.headers['content-type'] ?? '(none)'}' is not accepted: send an image with Content-Type image/*, or multipart/form-data with image files`,
      );
    }
    if (e.code === 'INTERNAL') {
      if (o.logger) req.log.error(err);
      else console.error(err);
    }
    metrics.errors.inc({ code: e.code });
    // The rest of an unread body is not drained: the connection closes after the answer.
    if (e.statusCode === 413 || e.code === 'BAD_REQUEST' || e.code === 'REQUEST_TIMEOUT')
      void reply.header('connection', 'close');
    void reply.status(e.statusCode).type('application/json').send(errorBody(e));
  };

  const app = Fastify({
    logger: o.logger ?? false,
    bodyLimit: limits.maxBodyBytes,
    requestTimeout: limits.requestTimeoutMs,
    return503OnClosing: false,
    // Path parameters are bounded by their schemas (a class name: 200 characters, 12 when percent-encoded).
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    ajv: { customOptions: AJV_OPTIONS },
    schemaErrorFormatter: badRequest,
    // A URL the router cannot decode, or a parameter over its length, answered like every other error.
    frameworkErrors: answerError,
  });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    /^image\/[\w.+-]+$/i,
    { parseAs: 'buffer', bodyLimit: limits.maxBodyBytes },
    (_req, body, done) => done(null, body),
  );
  await app.register(multipart, {
    limits: {
      fileSize: limits.maxBodyBytes,
      files: limits.maxImages,
      fields: 8,
      parts: limits.maxImages + 8,
      fieldSize: 1024,
    },
    throwFileSizeLimit: true,
  });
  app.setErrorHandler(answerError);
  app.setNotFoundHandler((req, reply) => {
    metrics.errors.inc({ code: 'NOT_FOUND' });
    void reply.status(404).send(errorBody(new ServeError('NOT_FOUND', `no route ${req.method} ${req.url}`)));
  });

  // Requests being handled (refused ones are never counted; a client that hangs up is counted out).
  const counted = new WeakSet<FastifyRequest>();
  const countOut = (req: FastifyRequest): void => {
    if (counted.delete(req)) state.inflight--;
  };
  app.addHook('onRequest', async (req) => {
    if (state.closing) throw new ServeError('SHUTTING_DOWN', 'the server is shutting down');
    counted.add(req);
    state.inflight++;
  });
  app.addHook('onRequestAbort', async (req) => {
    countOut(req);
  });
  app.addHook('onResponse', async (req, reply) => {
    countOut(req);
    metrics.requests.inc({ route: req.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) });
  });
  app.addHook('preClose', async () => {
    state.closing = true;
  });
  // Keep-alive connections busy when close() began would otherwise stay open until keepAliveTimeout.
  app.addHook('onSend', async (_req, reply, payload) => {
    if (state.closing) void reply.header('connection', 'close');
    return payload;
  });
  // Runs after in-flight requests have been answered (fastify's close order).
  app.addHook('onClose', async () => {
    await inference.drain();
    await model.release();
  });

  await app.register(predictRoutes, ctx);
  await app.register(galleryRoutes, ctx);
  await app.register(modelRoutes, ctx);
  await app.register(healthRoutes, ctx);
  await app.register(staticRoutes);
  return app;
}
