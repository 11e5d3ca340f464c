// The inference server: fastify + onnxruntime-node. Uploads are decoded and
// pre-processed by the data layer with the run's evalPipeline (the code that
// evaluation and `goodsrec predict` use), micro-batched into onnxruntime, and
// answered with top-k labels. Every error is {error: {code, message}}.
import { readFileSync, existsSync } from 'node:fs';
import { createHash, timingSafeEqual } from 'node:crypto';
import { createRequire } from 'node:module';
import { dirname, join, extname } from 'node:path';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import { processBuffer } from '../data/transforms.js';
import { parseCsv } from '../data/dataset.js';
import { BadImageError, type BadFileReason } from '../data/image.js';
import { evalPipeline } from '../run/pipelines.js';
import { softmaxRow, topk } from '../eval/metrics.js';
import { packageRoot, goodsrecVersion } from '../util/version.js';
import { MicroBatcher } from './batcher.js';
import { compiledSrcDir, pageModules } from './web-modules.js';
import { ServeError, errorBody, fromFrameworkError, type ServeErrorCode } from './errors.js';
import { ServeMetrics } from './metrics.js';
import type { ServedModel } from './model.js';
import type { ServedGallery } from './served-gallery.js';
import { GalleryError, galleryClasses } from '../gallery/format.js';
import type { GalleryAnswer } from '../gallery/recognize.js';

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

export const DEFAULT_LIMITS: ServerLimits = {
  maxBodyBytes: 10 * 1024 * 1024,
  maxImages: 16,
  maxPixels: 40_000_000,
  requestTimeoutMs: 30_000,
  maxQueue: 256,
};

/** The gallery's answer for one image: best class or null (unknown product), the neighbours' vote. */
export interface GalleryPrediction {
  class: string | null;
  unknown: boolean;
  similarity: number;
  top: { class: string; votes: number; similarity: number }[];
}

export interface PredictResponse {
  model: string;
  predictions: {
    name: string;
    top: { label: string; index: number; probability: number }[];
    gallery?: GalleryPrediction;
  }[];
  timing: { preprocessMs: number; inferenceMs: number; totalMs: number };
}

const BAD_IMAGE: Record<BadFileReason, ServeErrorCode> = {
  empty: 'EMPTY_BODY',
  unreadable: 'CORRUPT_IMAGE',
  'not-an-image': 'NOT_AN_IMAGE',
  truncated: 'TRUNCATED_IMAGE',
  'too-large': 'TOO_MANY_PIXELS',
  corrupt: 'CORRUPT_IMAGE',
};

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.png': 'image/png',
};

/** The browser page's files (src/serve/web: tsc does not copy them, so they are read from the source tree). */
function webDir(): string {
  return join(packageRoot(), 'src', 'serve', 'web');
}
/** onnxruntime-web's dist folder, for in-browser inference. */
function ortWebDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve('onnxruntime-web'));
}

interface Upload {
  name: string;
  bytes: Buffer;
}

export async function buildServer(o: ServerOptions): Promise<FastifyInstance> {
  const limits: ServerLimits = {
    ...DEFAULT_LIMITS,
    ...Object.fromEntries(Object.entries(o).filter(([k, v]) => k in DEFAULT_LIMITS && v !== undefined)),
  };
  const model = o.model;
  const sc = model.sidecar;
  const nClasses = sc.classes.length;
  if (o.gallery) checkGalleryFits(o.gallery, model);
  // Token digests have one length, so timingSafeEqual compares in constant time whatever is sent.
  const tokenDigest = (t: string): Buffer => createHash('sha256').update(t).digest();
  const adminDigest = o.adminToken ? tokenDigest(o.adminToken) : null;
  // The same pre-processing as evaluation; only the decoder's pixel limit is the server's.
  const pipeline = {
    ...evalPipeline(sc.preprocess),
    maxPixels: limits.maxPixels,
    ...(o.fastDecode === false ? { fastDecode: false } : {}),
  };
  let closing = false;

  const metrics = new ServeMetrics(() => batcher.queueLength);
  const batcher = new MicroBatcher({
    maxBatch: o.maxBatch ?? 16,
    maxDelayMs: o.maxDelayMs ?? 4,
    maxQueue: limits.maxQueue,
    itemSize: model.itemSize,
    run: (x, n) => model.run(x, n),
    onBatch: (n, s) => {
      metrics.batchSize.observe(n);
      metrics.inferenceSeconds.observe(s);
    },
  });

  const app = Fastify({
    logger: o.logger ?? false,
    bodyLimit: limits.maxBodyBytes,
    requestTimeout: limits.requestTimeoutMs,
    return503OnClosing: false,
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

  app.setErrorHandler((err, req, reply) => {
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
  });
  app.setNotFoundHandler((req, reply) => {
    metrics.errors.inc({ code: 'NOT_FOUND' });
    void reply.status(404).send(errorBody(new ServeError('NOT_FOUND', `no route ${req.method} ${req.url}`)));
  });
  // Requests being handled (refused ones are never counted; a client that hangs up is counted out).
  const counted = new WeakSet<FastifyRequest>();
  const countOut = (req: FastifyRequest): void => {
    if (counted.delete(req)) inflight--;
  };
  let inflight = 0;
  app.addHook('onRequest', async (req) => {
    if (closing) throw new ServeError('SHUTTING_DOWN', 'the server is shutting down');
    counted.add(req);
    inflight++;
  });
  app.addHook('onRequestAbort', async (req) => {
    countOut(req);
  });
  app.addHook('onResponse', async (req, reply) => {
    countOut(req);
    metrics.requests.inc({ route: req.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) });
  });
  app.addHook('preClose', async () => {
    closing = true;
  });
  // Keep-alive connections busy when close() began would otherwise stay open until keepAliveTimeout.
  app.addHook('onSend', async (_req, reply, payload) => {
    if (closing) void reply.header('connection', 'close');
    return payload;
  });
  // Runs after in-flight requests have been answered (fastify's close order).
  app.addHook('onClose', async () => {
    await batcher.drain();
    await model.release();
  });

  async function uploads(req: FastifyRequest): Promise<Upload[]> {
    if (req.isMultipart()) {
      const out: Upload[] = [];
      try {
        for await (const part of req.parts()) {
          if (part.type !== 'file') continue;
          const bytes = await partBytes(part.file);
          out.push({ name: part.filename || `image-${out.length + 1}`, bytes });
        }
      } catch (e) {
        // busboy's parse errors carry no code ("Boundary not found", "Unexpected end of multipart data").
        if (e instanceof ServeError || (e as { code?: unknown }).code !== undefined) throw e;
        throw new ServeError('BAD_REQUEST', `malformed multipart body: ${(e as Error).message}`);
      }
      if (out.length === 0) throw new ServeError('EMPTY_BODY', 'the multipart body has no image file');
      return out;
    }
    const body = req.body;
    if (Buffer.isBuffer(body)) {
      if (body.length === 0) throw new ServeError('EMPTY_BODY', 'the request body is empty');
      return [{ name: 'image', bytes: body }];
    }
    if (!req.headers['content-type']) {
      throw new ServeError(
        Number(req.headers['content-length'] ?? 0) > 0 ? 'UNSUPPORTED_MEDIA_TYPE' : 'EMPTY_BODY',
        'send an image with Content-Type image/*, or multipart/form-data with image files',
      );
    }
    throw new ServeError('EMPTY_BODY', 'the request body is empty');
  }

  /** A file part's bytes; fails as soon as it passes the limit (toBuffer would read on to the part's end). */
  function partBytes(file: NodeJS.ReadableStream & { destroy(): void }): Promise<Buffer> {
    return new Promise((res, rej) => {
      const chunks: Buffer[] = [];
      file.on('data', (c: Buffer) => chunks.push(c));
      file.once('limit', () => {
        file.destroy();
        rej(new ServeError('BODY_TOO_LARGE', `an uploaded file is over the limit of ${limits.maxBodyBytes} bytes`));
      });
      file.once('end', () => res(Buffer.concat(chunks)));
      file.once('error', rej);
    });
  }

  async function preprocess(u: Upload): Promise<Float32Array> {
    try {
      const t0 = performance.now();
      const p = await processBuffer(u.bytes, u.name, pipeline, 0);
      metrics.preprocessSeconds.observe((performance.now() - t0) / 1000);
      return p.data as Float32Array;
    } catch (e) {
      if (e instanceof BadImageError) {
        const detail = e.message.slice(e.message.indexOf(':') + 1).trim();
        const hint = e.reason === 'too-large' ? ` (limit ${limits.maxPixels} pixels)` : '';
        throw new ServeError(BAD_IMAGE[e.reason], `${u.name}: ${detail}${hint}`);
      }
      throw e;
    }
  }

  function withDeadline<X>(p: Promise<X>, ms: number): Promise<X> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new ServeError('INFERENCE_TIMEOUT', `no prediction within ${limits.requestTimeoutMs} ms`)),
        Math.max(0, ms),
      );
    });
    return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
  }

  app.post<{ Querystring: { top?: number } }>(
    '/v1/predict',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: { top: { type: 'integer', minimum: 1, maximum: sc.classes.length } },
          additionalProperties: false,
        },
      },
    },
    async (req) => {
      const t0 = performance.now();
      const k = req.query.top ?? Math.min(5, sc.classes.length);
      const ups = await uploads(req);
      const inputs = await Promise.all(ups.map(preprocess));
      const t1 = performance.now();
      // Test-time views and ensembles are inside the graph: one row of scores per image.
      const rows = await withDeadline(batcher.predictMany(inputs), limits.requestTimeoutMs - (t1 - t0));
      const answers = o.gallery ? galleryAnswers(rows) : null;
      const t2 = performance.now();
      const predictions = ups.map((u, i) => {
        const logits = rows[i]!.subarray(0, nClasses);
        const p = softmaxRow(logits);
        const top = topk(logits, k).map((j) => ({ label: sc.classes[j]!, index: j, probability: p[j]! }));
        return answers ? { name: u.name, top, gallery: answers[i]! } : { name: u.name, top };
      });
      metrics.images.inc({}, ups.length);
      metrics.requestSeconds.observe((performance.now() - t0) / 1000);
      const r: PredictResponse = {
        model: sc.model,
        predictions,
        timing: {
          preprocessMs: +(t1 - t0).toFixed(2),
          inferenceMs: +(t2 - t1).toFixed(2),
          totalMs: +(performance.now() - t0).toFixed(2),
        },
      };
      return r;
    },
  );

  /** Rows of [logits | embedding] -> the gallery's answers, from one snapshot for the whole request. */
  function galleryAnswers(rows: readonly Float32Array[]): GalleryPrediction[] {
    const d = model.embeddingDim;
    const q = new Float32Array(rows.length * d);
    rows.forEach((r, i) => q.set(r.subarray(nClasses, nClasses + d), i * d));
    return o.gallery!.current.matcher.match(q).map((a: GalleryAnswer) => ({
      class: a.class,
      unknown: a.unknown,
      similarity: a.similarity,
      top: a.top.map((t) => ({ class: t.class, votes: t.votes, similarity: t.similarity })),
    }));
  }

  function requireAdmin(req: FastifyRequest): void {
    if (!adminDigest)
      throw new ServeError(
        'FORBIDDEN',
        'gallery writes are off: start the server with --admin-token or GOODSREC_ADMIN_TOKEN',
      );
    const m = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '');
    if (!m || !timingSafeEqual(tokenDigest(m[1]!), adminDigest)) {
      throw new ServeError(
        'UNAUTHORIZED',
        m ? 'wrong admin token' : 'gallery writes need the header Authorization: Bearer <admin token>',
      );
    }
  }

  function requireGallery(): ServedGallery {
    if (!o.gallery) throw new ServeError('NOT_FOUND', 'this server has no gallery (start it with --gallery GALLERY)');
    return o.gallery;
  }

  const galleryInfo = (g: ServedGallery): object => {
    const { gallery, version } = g.current;
    const counts = new Map<string, number>();
    for (const e of gallery.meta.entries) counts.set(e.class, (counts.get(e.class) ?? 0) + 1);
    return {
      version,
      photos: gallery.meta.entries.length,
      dim: gallery.meta.dim,
      k: gallery.meta.k,
      threshold: gallery.meta.threshold,
      search: g.searchKind,
      model: gallery.meta.model.name,
      classes: galleryClasses(gallery).map((c) => ({ class: c, photos: counts.get(c)! })),
    };
  };

  app.get('/v1/gallery', async () => galleryInfo(requireGallery()));

  // Enrol: the photos (multipart, or one image body) go through the same pre-processing and graph as predictions.
  app.post<{ Params: { name: string } }>('/v1/gallery/classes/:name', async (req, reply) => {
    requireAdmin(req);
    const g = requireGallery();
    const name = req.params.name.trim();
    // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
    if (!name || name.length > 200 || /[\u0000-\u001f]/.test(name))
      throw new ServeError(
        'BAD_REQUEST',
        `class name '${req.params.name}' is empty, too long or has control characters`,
      );
    const t0 = performance.now();
    const ups = await uploads(req);
    const inputs = await Promise.all(ups.map(preprocess));
    const rows = await withDeadline(batcher.predictMany(inputs), limits.requestTimeoutMs - (performance.now() - t0));
    const d = model.embeddingDim;
    const emb = new Float32Array(rows.length * d);
    rows.forEach((r, i) => emb.set(r.subarray(nClasses, nClasses + d), i * d));
    const snap = await g.enrol(
      name,
      ups.map((u) => ({ class: name, path: `upload:${u.name}` })),
      emb,
    );
    metrics.images.inc({}, ups.length);
    return reply
      .status(201)
      .send({ class: name, added: ups.length, photos: snap.gallery.meta.entries.length, version: snap.version });
  });

  app.delete<{ Params: { name: string } }>('/v1/gallery/classes/:name', async (req) => {
    requireAdmin(req);
    const g = requireGallery();
    try {
      const before = g.current.gallery.meta.entries.length;
      const snap = await g.remove(req.params.name);
      return {
        class: req.params.name,
        removed: before - snap.gallery.meta.entries.length,
        photos: snap.gallery.meta.entries.length,
        version: snap.version,
      };
    } catch (e) {
      if (e instanceof GalleryError) throw new ServeError('NOT_FOUND', e.message);
      throw e;
    }
  });

  app.get('/v1/model', async () => ({
    // `pipeline`: the ops this server runs on uploads, which the page runs in the browser (web-preprocess.ts).
    pipeline,
    model: sc.model,
    classes: sc.classes,
    preprocess: sc.preprocess,
    tta: sc.tta,
    ttaMean: sc.ttaMean,
    members: sc.members?.map((m) => ({ model: m.model, weight: m.weight })) ?? [],
    input: sc.input,
    output: sc.output,
    opset: sc.opset,
    exportedBy: sc.goodsrecVersion,
    server: goodsrecVersion(),
    sha256: sc.sha256,
    references: o.references ? sc.classes.map((c) => o.references!.has(c)) : sc.classes.map(() => false),
    limits: { ...limits, maxBatch: o.maxBatch ?? 16 },
    gallery: o.gallery ? { photos: o.gallery.current.gallery.meta.entries.length, enrol: adminDigest !== null } : null,
  }));
  app.get('/v1/model.onnx', async (_req, reply) =>
    reply.type('application/octet-stream').send(readFileSync(model.onnxPath)),
  );
  app.get<{ Params: { index: string } }>('/v1/classes/:index/image', async (req, reply) => {
    const i = Number(req.params.index);
    const file = Number.isInteger(i) ? o.references?.get(sc.classes[i] ?? '') : undefined;
    if (!file || !existsSync(file))
      throw new ServeError('NOT_FOUND', `no reference photo for class ${req.params.index}`);
    return reply
      .type(MIME[extname(file).toLowerCase()] ?? 'application/octet-stream')
      .header('cache-control', 'max-age=3600')
      .send(readFileSync(file));
  });
  // inflight counts this request too.
  app.get('/healthz', async () => ({ status: closing ? 'closing' : 'ok', inflight, queue: batcher.queueLength }));
  app.get('/metrics', async (_req, reply) =>
    reply.type('text/plain; version=0.0.4; charset=utf-8').send(metrics.text()),
  );

  // The browser page and onnxruntime-web's files (self-contained: no CDN).
  const sendFile = (dir: string, name: string, reply: import('fastify').FastifyReply) => {
    const file = join(dir, name);
    if (!existsSync(file)) throw new ServeError('NOT_FOUND', `no file ${name}`);
    return reply.type(MIME[extname(name)] ?? 'application/octet-stream').send(readFileSync(file));
  };
  app.get('/', async (_req, reply) => sendFile(webDir(), 'index.html', reply));
  app.get<{ Params: { file: string } }>('/web/:file', async (req, reply) => {
    if (!/^[\w-]+\.(js|css)$/.test(req.params.file)) throw new ServeError('NOT_FOUND', `no file ${req.params.file}`);
    return sendFile(webDir(), req.params.file, reply);
  });
  // Compiled modules the page imports (web-preprocess.js and its module graph, no Node imports).
  app.get<{ Params: { '*': string } }>('/lib/*', async (req, reply) => {
    const name = req.params['*'];
    if (!pageModules().has(name)) throw new ServeError('NOT_FOUND', `no file ${name}`);
    return sendFile(compiledSrcDir(), name, reply);
  });
  app.get<{ Params: { file: string } }>('/ort/:file', async (req, reply) => {
    if (!/^ort[\w.-]*\.(mjs|wasm)$/.test(req.params.file))
      throw new ServeError('NOT_FOUND', `no file ${req.params.file}`);
    return sendFile(ortWebDir(), req.params.file, reply);
  });

  return app;
}

/** Throws unless the gallery was made by the weights the served graph came from, at its embedding width. */
export function checkGalleryFits(g: ServedGallery, model: ServedModel): void {
  const emb = model.sidecar.embedding;
  const meta = g.current.gallery.meta;
  if (!emb || model.embeddingDim === 0)
    throw new Error(`${model.onnxPath}: served without its embedding output; open it with { embedding: true }`);
  if (emb.weightsSha256 !== meta.model.hash) {
    throw new Error(
      `${g.path}: built with other weights (sha256 ${meta.model.hash.slice(0, 12)}…, ${meta.model.checkpoint}) than the served graph ` +
        `(${emb.weightsSha256.slice(0, 12)}…, ${model.sidecar.source.checkpoint}); rebuild the gallery with goodsrec gallery build`,
    );
  }
  if (meta.dim !== model.embeddingDim)
    throw new Error(`${g.path}: ${meta.dim}-d embeddings, the graph gives ${model.embeddingDim}`);
}

/**
 * Reference photos by class name from a grocery-store style dataset (dataset/classes.csv, 'Iconic Image Path'
 * column), read with the data layer's CSV parser; names NFC-normalised like every dataset's class names.
 */
export function readReferencePhotos(datasetDir: string): Map<string, string> {
  const base = existsSync(join(datasetDir, 'dataset', 'classes.csv')) ? join(datasetDir, 'dataset') : datasetDir;
  const csv = join(base, 'classes.csv');
  if (!existsSync(csv)) throw new Error(`${datasetDir}: no classes.csv with reference photos (expected ${csv})`);
  const rows = parseCsv(readFileSync(csv, 'utf8'));
  const header = (rows[0] ?? []).map((h) => h.trim().toLowerCase());
  const nameCol = header.findIndex((c) => c.startsWith('class name'));
  const iconCol = header.findIndex((c) => c.startsWith('iconic image path'));
  if (nameCol < 0 || iconCol < 0) throw new Error(`${csv}: expected 'Class Name' and 'Iconic Image Path' columns`);
  const out = new Map<string, string>();
  for (const r of rows.slice(1)) {
    const name = r[nameCol]?.trim().normalize('NFC');
    const icon = r[iconCol]?.trim();
    if (name && icon) out.set(name, join(base, icon.replace(/^\/+/, '')));
  }
  return out;
}
