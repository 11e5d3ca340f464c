// goodsrec serve: HTTP inference server (fastify + onnxruntime-node, or libtorch with --device) with a browser page.
import { resolve } from 'node:path';
import { defineCliCommand, deviceOption, maxPixelsOption } from '../options.js';
import { UsageError } from '../errors.js';

export default defineCliCommand({
  name: 'serve',
  description:
    'Serve a recognizer over HTTP: POST /v1/predict, GET /v1/model, /healthz, /metrics, and a web page at /.',
  positionals: {
    model: {
      description: 'model.onnx (with its model.json), an export folder, or a run/checkpoint folder (exported first)',
      required: true,
      exists: 'any',
    },
  },
  options: {
    port: { type: 'integer', min: 0, max: 65535, default: 8080, description: 'TCP port (0: any free port)' },
    host: { type: 'string', default: '127.0.0.1', description: 'address to listen on' },
    threads: { type: 'integer', min: 1, description: 'onnxruntime intra-op threads (default: all cores)' },
    device: {
      ...deviceOption,
      default: undefined,
      description:
        "run inference through libtorch on this device ('cuda', 'cuda:N', 'cpu', 'auto') instead of onnxruntime (default)",
    },
    'max-batch': { type: 'integer', min: 1, default: 16, description: 'images per onnxruntime run at most' },
    'batch-delay': { type: 'integer', min: 0, default: 4, description: 'micro-batching window in ms' },
    'max-queue': {
      type: 'integer',
      min: 1,
      default: 256,
      description: 'images waiting for inference at most (then 503)',
    },
    'max-body': {
      type: 'integer',
      min: 1,
      default: 10 * 1024 * 1024,
      description: 'bytes per image at most (then 413)',
    },
    'max-images': { type: 'integer', min: 1, default: 16, description: 'images per request at most' },
    // Uploads from anyone: a lower default than the commands that read the user's own files.
    'max-pixels': {
      ...maxPixelsOption,
      default: 40_000_000,
      description: maxPixelsOption.description.replace(/default \d+/, 'default 40000000'),
    },
    timeout: { type: 'integer', min: 1, default: 30000, description: 'request timeout in ms' },
    reference: {
      type: 'path',
      exists: 'dir',
      description: "dataset folder with classes.csv 'Iconic Image Path' (grocery-store): reference photos on the page",
    },
    log: { type: 'boolean', description: 'log every request (fastify logger)' },
    gallery: {
      type: 'path',
      exists: 'file',
      description: 'gallery file (goodsrec gallery build): answers also name the nearest enrolled product or "unknown"',
    },
    'admin-token': {
      type: 'string',
      description:
        'bearer token for POST/DELETE /v1/gallery/classes/:name (default GOODSREC_ADMIN_TOKEN; none: writes are off)',
    },
  },
  async run({ options: o, args }) {
    const { openServedModel } = await import('../../serve/model.js');
    const { buildServer, readReferencePhotos } = await import('../../serve/server.js');
    const adminToken = o['admin-token'] ?? process.env.GOODSREC_ADMIN_TOKEN;
    if (adminToken !== undefined && adminToken.length < 16)
      throw new UsageError('--admin-token: expected at least 16 characters');
    const open = {
      ...(o.threads ? { threads: o.threads } : {}),
      embedding: Boolean(o.gallery),
      log: (m: string) => console.log(m),
    };
    // --device: libtorch on that device (resolved first: CUDA without a GPU is a usage error, exit 2).
    const model = o.device
      ? await (async () => {
          const T = await import('../../tensor/index.js');
          const device = T.resolveDevice(o.device!);
          const { openTorchServedModel } = await import('../../serve/torch-model.js');
          return openTorchServedModel(args.model, { ...open, device });
        })()
      : await openServedModel(args.model, open);
    let gallery: import('../../serve/served-gallery.js').ServedGallery | undefined;
    if (o.gallery) {
      const { readGallery } = await import('../../gallery/format.js');
      const { ServedGallery } = await import('../../serve/served-gallery.js');
      const path = resolve(o.gallery);
      gallery = new ServedGallery(path, readGallery(path), (m) => console.log(m));
    }
    const app = await buildServer({
      model,
      ...(gallery ? { gallery } : {}),
      ...(adminToken ? { adminToken } : {}),
      maxBatch: o['max-batch'],
      maxDelayMs: o['batch-delay'],
      maxQueue: o['max-queue'],
      maxBodyBytes: o['max-body'],
      maxImages: o['max-images'],
      maxPixels: o['max-pixels'],
      requestTimeoutMs: o.timeout,
      ...(o.reference ? { references: readReferencePhotos(o.reference) } : {}),
      logger: o.log,
    });
    const address = await app.listen({ port: o.port, host: o.host });
    let stopping = false;
    const stop = (sig: string): void => {
      if (stopping) return;
      stopping = true;
      console.log(`${sig}: draining in-flight requests`);
      app.close().then(
        () => {
          console.log('stopped');
          process.exit(0);
        },
        (e: unknown) => {
          console.error(e);
          process.exit(1);
        },
      );
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
    // Announced only once the signal handlers are in place (a supervisor may stop us right away).
    console.log(`${model.sidecar.model} (${model.sidecar.classes.length} classes) from ${model.onnxPath}`);
    if (gallery) {
      const g = gallery.current.gallery;
      console.log(
        `gallery ${gallery.path}: ${g.meta.entries.length} photos, ${gallery.searchKind} search, enrolment ${adminToken ? 'on (bearer token)' : 'off'}`,
      );
    }
    console.log(`listening on ${address}  (page: ${address}/, API: POST ${address}/v1/predict)`);
  },
});
