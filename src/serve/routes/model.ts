// What is served: GET /v1/model (classes, pre-processing, the pipeline the page runs, limits),
// GET /v1/model.onnx (the graph, for the page's in-browser mode) and the classes' reference photos.
import { existsSync, readFileSync } from 'node:fs';
import type { FastifyPluginAsync } from 'fastify';
import { goodsrecVersion } from '../../util/version.js';
import type { ServeContext } from '../context.js';
import { ServeError } from '../errors.js';
import { contentType } from '../files.js';
import { answer, fields, fileAnswer, NO_QUERY, notFound } from '../schema.js';

const ANY = {};

/** Open: fields added to the answer (by the exporter, say) are sent too. */
const MODEL_INFO = {
  ...answer(
    {
      pipeline: { ...ANY, description: 'the ops this server runs on uploads, which the page runs in the browser' },
      model: { type: 'string' },
      classes: { type: 'array', items: { type: 'string' } },
      preprocess: ANY,
      tta: ANY,
      ttaMean: ANY,
      members: ANY,
      input: ANY,
      output: ANY,
      opset: ANY,
      precision: { type: 'string', description: "the graph's convolutions: 'fp32' or 'int8'" },
      quantization: { ...ANY, description: 'int8: how the weights and activations were quantized and calibrated' },
      exportedBy: ANY,
      server: { type: 'string' },
      sha256: ANY,
      references: { type: 'array', items: { type: 'boolean' } },
      limits: ANY,
      gallery: ANY,
    },
    ['tta', 'ttaMean', 'opset', 'exportedBy', 'sha256'],
  ),
  additionalProperties: true,
};

export const modelRoutes: FastifyPluginAsync<ServeContext> = async (app, ctx) => {
  const sc = ctx.model.sidecar;

  app.get('/v1/model', { schema: { querystring: NO_QUERY, response: { 200: MODEL_INFO } } }, async () => ({
    // `pipeline`: the ops this server runs on uploads, which the page runs in the browser (web-preprocess.ts).
    pipeline: ctx.pipeline,
    model: sc.model,
    classes: sc.classes,
    preprocess: sc.preprocess,
    tta: sc.tta,
    ttaMean: sc.ttaMean,
    members: sc.members?.map((m) => ({ model: m.model, weight: m.weight })) ?? [],
    input: sc.input,
    output: sc.output,
    opset: sc.opset,
    precision: sc.precision ?? 'fp32',
    quantization: sc.quantization ?? null,
    exportedBy: sc.goodsrecVersion,
    server: goodsrecVersion(),
    sha256: sc.sha256,
    references: sc.classes.map((c) => ctx.references?.has(c) ?? false),
    limits: { ...ctx.limits, maxBatch: ctx.maxBatch },
    gallery: ctx.gallery
      ? { photos: ctx.gallery.current.gallery.meta.entries.length, enrol: ctx.adminToken !== undefined }
      : null,
  }));

  app.get(
    '/v1/model.onnx',
    { schema: { querystring: NO_QUERY, response: fileAnswer('the ONNX graph') } },
    async (_req, reply) => reply.type('application/octet-stream').send(readFileSync(ctx.model.onnxPath)),
  );

  const noPhoto = (index: string): string => `no reference photo for class ${index}`;
  app.get<{ Params: { index: number } }>(
    '/v1/classes/:index/image',
    {
      schema: {
        params: fields(
          {
            index: {
              type: 'integer',
              minimum: 0,
              maximum: sc.classes.length - 1,
              description: `a class index from 0 to ${sc.classes.length - 1}`,
            },
          },
          ['index'],
        ),
        querystring: NO_QUERY,
        response: fileAnswer("the class's reference photo (--reference)"),
      },
      schemaErrorFormatter: notFound(noPhoto),
    },
    async (req, reply) => {
      const file = ctx.references?.get(sc.classes[req.params.index]!);
      if (!file || !existsSync(file)) throw new ServeError('NOT_FOUND', noPhoto(String(req.params.index)));
      return reply.type(contentType(file)).header('cache-control', 'max-age=3600').send(readFileSync(file));
    },
  );
};
