// For operators: GET /healthz (state, requests in flight, queue) and GET /metrics (Prometheus text).
import type { FastifyPluginAsync } from 'fastify';
import type { ServeContext } from '../context.js';
import { answer, fileAnswer, NO_QUERY } from '../schema.js';

const HEALTH = answer({
  status: { enum: ['ok', 'closing'] },
  inflight: { type: 'integer', description: 'requests being answered, this one included' },
  queue: { type: 'integer', description: 'images waiting for onnxruntime' },
});

export const healthRoutes: FastifyPluginAsync<ServeContext> = async (app, ctx) => {
  app.get('/healthz', { schema: { querystring: NO_QUERY, response: { 200: HEALTH } } }, async () => ({
    status: ctx.state.closing ? 'closing' : 'ok',
    inflight: ctx.state.inflight,
    queue: ctx.inference.queueLength,
  }));
  app.get(
    '/metrics',
    { schema: { querystring: NO_QUERY, response: fileAnswer('Prometheus text exposition 0.0.4') } },
    async (_req, reply) => reply.type('text/plain; version=0.0.4; charset=utf-8').send(ctx.metrics.text()),
  );
};
