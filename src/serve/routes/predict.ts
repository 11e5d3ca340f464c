// POST /v1/predict: top-k labels for each uploaded image, and the gallery's answer when the server
// recognises through one.
import type { FastifyPluginAsync } from 'fastify';
import { softmaxRow, topk } from '../../eval/metrics.js';
import type { GalleryAnswer } from '../../gallery/recognize.js';
import type { ServeContext } from '../context.js';
import { answer, fields } from '../schema.js';

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

const GALLERY_PREDICTION = answer({
  class: { type: ['string', 'null'] },
  unknown: { type: 'boolean' },
  similarity: { type: 'number' },
  top: {
    type: 'array',
    items: answer({ class: { type: 'string' }, votes: { type: 'number' }, similarity: { type: 'number' } }),
  },
});

const PREDICT_RESPONSE = answer({
  model: { type: 'string' },
  predictions: {
    type: 'array',
    items: answer(
      {
        name: { type: 'string' },
        top: {
          type: 'array',
          items: answer({ label: { type: 'string' }, index: { type: 'integer' }, probability: { type: 'number' } }),
        },
        gallery: GALLERY_PREDICTION,
      },
      ['gallery'],
    ),
  },
  timing: answer({ preprocessMs: { type: 'number' }, inferenceMs: { type: 'number' }, totalMs: { type: 'number' } }),
});

export const predictRoutes: FastifyPluginAsync<ServeContext> = async (app, ctx) => {
  const sc = ctx.model.sidecar;
  const nClasses = sc.classes.length;
  const defaultTop = Math.min(5, nClasses);

  /** Rows of [logits | embedding] -> the gallery's answers, from one snapshot for the whole request. */
  const galleryAnswers = (rows: readonly Float32Array[]): GalleryPrediction[] | null =>
    ctx.gallery
      ? ctx.gallery.current.matcher.match(ctx.inference.embeddings(rows)).map((a: GalleryAnswer) => ({
          class: a.class,
          unknown: a.unknown,
          similarity: a.similarity,
          top: a.top.map((t) => ({ class: t.class, votes: t.votes, similarity: t.similarity })),
        }))
      : null;

  app.post<{ Querystring: { top?: number } }>(
    '/v1/predict',
    {
      schema: {
        querystring: fields({
          top: {
            type: 'integer',
            minimum: 1,
            maximum: nClasses,
            description: `an integer from 1 to ${nClasses}, the labels per image (default ${defaultTop})`,
          },
        }),
        response: { 200: PREDICT_RESPONSE },
      },
    },
    async (req): Promise<PredictResponse> => {
      const k = req.query.top ?? defaultTop;
      const { uploads, rows, startedAt, preprocessedAt } = await ctx.inference.run(req);
      // Test-time views and ensembles are inside the graph: one row of scores per image.
      const answers = galleryAnswers(rows);
      const inferredAt = performance.now();
      const predictions = uploads.map((u, i) => {
        const logits = rows[i]!.subarray(0, nClasses);
        const p = softmaxRow(logits);
        const top = topk(logits, k).map((j) => ({ label: sc.classes[j]!, index: j, probability: p[j]! }));
        return answers ? { name: u.name, top, gallery: answers[i]! } : { name: u.name, top };
      });
      ctx.metrics.images.inc({}, uploads.length);
      ctx.metrics.requestSeconds.observe((performance.now() - startedAt) / 1000);
      return {
        model: sc.model,
        predictions,
        timing: {
          preprocessMs: +(preprocessedAt - startedAt).toFixed(2),
          inferenceMs: +(inferredAt - preprocessedAt).toFixed(2),
          totalMs: +(performance.now() - startedAt).toFixed(2),
        },
      };
    },
  );
};
