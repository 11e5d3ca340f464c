// goodsrec serve: HTTP inference server (fastify + onnxruntime-node) with a browser page.
import { defineCommand } from 'citty';
import { fail } from '../errors.js';

function int(v: string | undefined, what: string, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${what}: expected an integer >= ${min} but received '${v}'`);
  return n;
}

export default defineCommand({
  meta: { name: 'serve', description: 'Serve a recognizer over HTTP: POST /v1/predict, GET /v1/model, /healthz, /metrics, and a web page at /.' },
  args: {
    model: { type: 'positional', description: 'model.onnx (with its model.json), an export folder, or a run/checkpoint folder (exported first)', required: true },
    port: { type: 'string', description: 'TCP port (0: any free port)', default: '8080' },
    host: { type: 'string', description: 'address to listen on', default: '127.0.0.1' },
    threads: { type: 'string', description: 'onnxruntime intra-op threads (default: all cores)' },
    'max-batch': { type: 'string', description: 'images per onnxruntime run at most', default: '16' },
    'batch-delay': { type: 'string', description: 'micro-batching window in ms', default: '4' },
    'max-queue': { type: 'string', description: 'images waiting for inference at most (then 503)', default: '256' },
    'max-body': { type: 'string', description: 'bytes per image at most (then 413)', default: String(10 * 1024 * 1024) },
    'max-images': { type: 'string', description: 'images per request at most', default: '16' },
    'max-pixels': { type: 'string', description: 'pixels per image at most (decompression bombs)', default: '40000000' },
    timeout: { type: 'string', description: 'request timeout in ms', default: '30000' },
    reference: { type: 'string', description: "dataset folder with classes.csv 'Iconic Image Path' (grocery-store): reference photos on the page" },
    log: { type: 'boolean', description: 'log every request (fastify logger)' },
    gallery: { type: 'string', description: 'gallery file (goodsrec gallery build): answers also name the nearest enrolled product or "unknown"' },
    'admin-token': { type: 'string', description: 'bearer token for POST/DELETE /v1/gallery/classes/:name (default GOODSREC_ADMIN_TOKEN; none: writes are off)' },
  },
  async run({ args }) {
    try {
      const { openServedModel } = await import('../../serve/model.js');
      const { buildServer, readReferencePhotos } = await import('../../serve/server.js');
      const threads = int(args.threads, 'threads', 1);
      const model = await openServedModel(args.model, { ...(threads ? { threads } : {}), embedding: Boolean(args.gallery), log: (m) => console.log(m) });
      let gallery: import('../../serve/served-gallery.js').ServedGallery | undefined;
      if (args.gallery) {
        const { readGallery } = await import('../../gallery/format.js');
        const { ServedGallery } = await import('../../serve/served-gallery.js');
        const { resolve } = await import('node:path');
        const path = resolve(args.gallery);
        gallery = new ServedGallery(path, readGallery(path), (m) => console.log(m));
      }
      const adminToken = args['admin-token'] ?? process.env.GOODSREC_ADMIN_TOKEN;
      if (adminToken !== undefined && adminToken.length < 16) throw new Error('--admin-token: use at least 16 characters');
      const app = await buildServer({
        model, ...(gallery ? { gallery } : {}), ...(adminToken ? { adminToken } : {}),
        maxBatch: int(args['max-batch'], 'max-batch', 1)!, maxDelayMs: int(args['batch-delay'], 'batch-delay', 0)!,
        maxQueue: int(args['max-queue'], 'max-queue', 1)!, maxBodyBytes: int(args['max-body'], 'max-body', 1)!,
        maxImages: int(args['max-images'], 'max-images', 1)!, maxPixels: int(args['max-pixels'], 'max-pixels', 1)!,
        requestTimeoutMs: int(args.timeout, 'timeout', 1)!,
        ...(args.reference ? { references: readReferencePhotos(args.reference) } : {}),
        logger: Boolean(args.log),
      });
      const address = await app.listen({ port: int(args.port, 'port', 0)!, host: args.host });
      let stopping = false;
      const stop = (sig: string): void => {
        if (stopping) return;
        stopping = true;
        console.log(`${sig}: draining in-flight requests`);
        app.close().then(() => { console.log('stopped'); process.exit(0); }, (e: unknown) => { console.error(e); process.exit(1); });
      };
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGTERM', () => stop('SIGTERM'));
      // Announced only once the signal handlers are in place (a supervisor may stop us right away).
      console.log(`${model.sidecar.model} (${model.sidecar.classes.length} classes) from ${model.onnxPath}`);
      if (gallery) {
        const g = gallery.current.gallery;
        console.log(`gallery ${gallery.path}: ${g.meta.entries.length} photos, ${gallery.searchKind} search, enrolment ${adminToken ? 'on (bearer token)' : 'off'}`);
      }
      console.log(`listening on ${address}  (page: ${address}/, API: POST ${address}/v1/predict)`);
    } catch (e) {
      if (process.env.GOODSREC_DEBUG) console.error(e);
      fail((e as Error).message);
    }
  },
});
