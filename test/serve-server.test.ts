// The inference server: answers through inject() (bad inputs, schema failures, metadata, metrics,
// parity with `goodsrec predict`'s predictFiles, micro-batching), then a graceful shutdown on a real
// socket. The loopback load test (throughput, latency, RSS under c=1/8/32) is `npm run bench -- serve-load`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import sharp from 'sharp';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { predictFiles, type LoadedRecognizer } from '../src/eval/predictor.js';
import type { PreprocessConfig } from '../src/run/pipelines.js';
import { SAMPLE, repoRoot, standInRecognizer } from './serve-helpers.js';
import { openServedModel } from '../src/serve/model.js';
import { DEFAULT_LIMITS, buildServer, type PredictResponse, type ServerOptions } from '../src/serve/server.js';
import { SERVE_ERRORS, type ErrorBody } from '../src/serve/errors.js';

const work = mkdtempSync(join(tmpdir(), 'goodsrec-serve-'));
const { classes, photos, preprocess } = SAMPLE;
let recognizer: LoadedRecognizer;
let exportDir: string;

before(async () => {
  ({ recognizer, exportDir } = await standInRecognizer(work));
});

after(() => {
  recognizer?.model.dispose();
  rmSync(work, { recursive: true, force: true });
});

async function server(o: Partial<ServerOptions> = {}): Promise<FastifyInstance> {
  const model = await openServedModel(exportDir, { threads: 2 });
  return buildServer({ model, maxDelayMs: 2, ...o });
}

function multipart(files: { name: string; bytes: Buffer; type?: string }[]): {
  payload: Buffer;
  headers: Record<string, string>;
} {
  const boundary = '----goodsrec' + Math.random().toString(16).slice(2);
  const parts: Buffer[] = [];
  for (const f of files) {
    parts.push(
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="${f.name}"\r\nContent-Type: ${f.type ?? 'image/jpeg'}\r\n\r\n`,
      ),
    );
    parts.push(f.bytes, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return { payload: Buffer.concat(parts), headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

const jpeg = readFileSync(photos[0]!);

test('served top-1 equals predictFiles (goodsrec predict) on every sample test photo; probabilities agree', async () => {
  const app = await server();
  try {
    const expected = await predictFiles(recognizer, photos, { topK: 3 });
    const served: PredictResponse['predictions'] = [];
    for (let i = 0; i < photos.length; i += 16) {
      const chunk = photos.slice(i, i + 16);
      const m = multipart(chunk.map((p) => ({ name: p, bytes: readFileSync(p) })));
      const r = await app.inject({ method: 'POST', url: '/v1/predict?top=3', ...m });
      assert.equal(r.statusCode, 200, r.body);
      served.push(...(r.json() as PredictResponse).predictions);
    }
    assert.equal(served.length, photos.length);
    for (let i = 0; i < photos.length; i++) {
      const e = expected[i]!;
      const s = served[i]!;
      assert.equal(s.name, basename(photos[i]!));
      assert.equal(s.top[0]!.label, e.top[0]!.class, `${photos[i]}: top-1`);
      assert.ok(
        Math.abs(s.top[0]!.probability - e.top[0]!.probability) < 1e-4,
        `${photos[i]}: ${s.top[0]!.probability} vs ${e.top[0]!.probability}`,
      );
    }
    // The two paths must not agree by being constant: several classes appear across the photos.
    const distinct = new Set(served.map((s) => s.top[0]!.label)).size;
    assert.ok(distinct >= 2, `top-1 labels are all the same (${distinct})`);
  } finally {
    await app.close();
  }
});

test('bad inputs get the catalogued status and message; the server still answers afterwards', async () => {
  const app = await server({ maxBodyBytes: 200_000, maxPixels: 1_000_000, maxImages: 3, maxQueue: 4 });
  try {
    const big = await sharp({
      create: { width: 1200, height: 1000, channels: 3, background: { r: 200, g: 10, b: 10 } },
    })
      .png()
      .toBuffer();
    const cases: { what: string; req: InjectOptions; status: number; code: string; message: RegExp }[] = [
      {
        what: 'not an image',
        req: {
          method: 'POST',
          url: '/v1/predict',
          headers: { 'content-type': 'image/jpeg' },
          payload: Buffer.from('hello, this is text'),
        },
        status: 422,
        code: 'NOT_AN_IMAGE',
        message: /^image: .*unsupported image format/i,
      },
      {
        what: 'truncated',
        req: {
          method: 'POST',
          url: '/v1/predict',
          headers: { 'content-type': 'image/jpeg' },
          payload: jpeg.subarray(0, Math.floor(jpeg.length / 3)),
        },
        status: 422,
        code: 'TRUNCATED_IMAGE',
        message: /premature end|truncated/i,
      },
      {
        what: 'too large (bytes)',
        req: {
          method: 'POST',
          url: '/v1/predict',
          headers: { 'content-type': 'image/jpeg' },
          payload: Buffer.alloc(300_000, 1),
        },
        status: 413,
        code: 'BODY_TOO_LARGE',
        message: /200000 bytes/,
      },
      {
        what: 'too many pixels',
        req: { method: 'POST', url: '/v1/predict', headers: { 'content-type': 'image/png' }, payload: big },
        status: 413,
        code: 'TOO_MANY_PIXELS',
        message: /pixel limit.*1000000 pixels/i,
      },
      {
        what: 'wrong content type',
        req: { method: 'POST', url: '/v1/predict', headers: { 'content-type': 'text/plain' }, payload: 'hello' },
        status: 415,
        code: 'UNSUPPORTED_MEDIA_TYPE',
        message: /'text\/plain' is not accepted/,
      },
      {
        what: 'json',
        req: {
          method: 'POST',
          url: '/v1/predict',
          headers: { 'content-type': 'application/json' },
          payload: '{"a":1}',
        },
        status: 415,
        code: 'UNSUPPORTED_MEDIA_TYPE',
        message: /application\/json/,
      },
      {
        what: 'empty',
        req: {
          method: 'POST',
          url: '/v1/predict',
          headers: { 'content-type': 'image/jpeg' },
          payload: Buffer.alloc(0),
        },
        status: 400,
        code: 'EMPTY_BODY',
        message: /empty/,
      },
      {
        what: 'no body',
        req: { method: 'POST', url: '/v1/predict' },
        status: 400,
        code: 'EMPTY_BODY',
        message: /send an image/,
      },
      {
        what: 'multipart without files',
        req: { method: 'POST', url: '/v1/predict', ...multipart([]) },
        status: 400,
        code: 'EMPTY_BODY',
        message: /no image file/,
      },
      {
        what: 'too many images',
        req: {
          method: 'POST',
          url: '/v1/predict',
          ...multipart([1, 2, 3, 4].map((i) => ({ name: `${i}.jpg`, bytes: jpeg }))),
        },
        status: 413,
        code: 'TOO_MANY_IMAGES',
        message: /at most 3 images/,
      },
      {
        what: 'bad top',
        req: { method: 'POST', url: '/v1/predict?top=0', headers: { 'content-type': 'image/jpeg' }, payload: jpeg },
        status: 400,
        code: 'BAD_REQUEST',
        message: new RegExp(
          `^query parameter 'top' = 0: must be >= 1; expected an integer from 1 to ${classes.length}, the labels per image`,
        ),
      },
      {
        what: 'top not a number',
        req: { method: 'POST', url: '/v1/predict?top=many', headers: { 'content-type': 'image/jpeg' }, payload: jpeg },
        status: 400,
        code: 'BAD_REQUEST',
        message: /^query parameter 'top' = "many": must be integer; expected an integer from 1 to/,
      },
      {
        what: 'top over the classes',
        req: {
          method: 'POST',
          url: `/v1/predict?top=${classes.length + 1}`,
          headers: { 'content-type': 'image/jpeg' },
          payload: jpeg,
        },
        status: 400,
        code: 'BAD_REQUEST',
        message: new RegExp(`^query parameter 'top' = ${classes.length + 1}: must be <= ${classes.length};`),
      },
      {
        what: 'no such class index',
        req: { method: 'GET', url: `/v1/classes/${classes.length}/image` },
        status: 404,
        code: 'NOT_FOUND',
        message: new RegExp(`^no reference photo for class ${classes.length}$`),
      },
      {
        what: 'class index not a number',
        req: { method: 'GET', url: '/v1/classes/first/image' },
        status: 404,
        code: 'NOT_FOUND',
        message: /^no reference photo for class first$/,
      },
      {
        what: 'a page file of another kind',
        req: { method: 'GET', url: '/web/index.html' },
        status: 404,
        code: 'NOT_FOUND',
        message: /^no file index\.html$/,
      },
      {
        what: 'a URL the router cannot decode',
        req: { method: 'GET', url: '/web/%zz.js' },
        status: 400,
        code: 'BAD_REQUEST',
        message: /not a valid url component/,
      },
      {
        what: 'a path parameter over the router limit',
        req: { method: 'GET', url: `/v1/classes/${'9'.repeat(2401)}/image` },
        status: 400,
        code: 'BAD_REQUEST',
        message: /exceeding the max param length/,
      },
      {
        what: 'a compiled module the page does not use',
        req: { method: 'GET', url: '/lib/serve/server.js' },
        status: 404,
        code: 'NOT_FOUND',
        message: /^no file serve\/server\.js$/,
      },
      {
        what: 'unknown route',
        req: { method: 'GET', url: '/v2/nothing' },
        status: 404,
        code: 'NOT_FOUND',
        message: /GET \/v2\/nothing/,
      },
      {
        what: 'one bad file among good ones',
        req: {
          method: 'POST',
          url: '/v1/predict',
          ...multipart([
            { name: 'ok.jpg', bytes: jpeg },
            { name: 'bad.jpg', bytes: Buffer.from('nope') },
          ]),
        },
        status: 422,
        code: 'NOT_AN_IMAGE',
        message: /^bad\.jpg:/,
      },
    ];
    for (const c of cases) {
      const r = await app.inject(c.req);
      assert.equal(r.statusCode, c.status, `${c.what}: ${r.body}`);
      const body = r.json() as ErrorBody;
      assert.equal(body.error.code, c.code, c.what);
      assert.equal(SERVE_ERRORS[body.error.code].status, c.status, `${c.what}: catalogue status`);
      assert.match(body.error.message, c.message, c.what);
      // Still serving correctly after each bad request.
      const ok = await app.inject({
        method: 'POST',
        url: '/v1/predict',
        headers: { 'content-type': 'image/jpeg' },
        payload: jpeg,
      });
      assert.equal(ok.statusCode, 200, `after ${c.what}: ${ok.body}`);
      assert.equal((ok.json() as PredictResponse).predictions[0]!.top.length, 5);
    }
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    assert.match(metrics, /goodsrec_errors_total\{code="NOT_AN_IMAGE"\} 2/);
    assert.match(metrics, new RegExp(`goodsrec_images_predicted_total ${cases.length}\\b`));
  } finally {
    await app.close();
  }
});

test('a full queue answers 503 QUEUE_FULL; a slow prediction answers 503 INFERENCE_TIMEOUT', async () => {
  const small = await server({ maxQueue: 2, maxImages: 8 });
  try {
    const r = await small.inject({
      method: 'POST',
      url: '/v1/predict',
      ...multipart([1, 2, 3].map((i) => ({ name: `${i}.jpg`, bytes: jpeg }))),
    });
    assert.equal(r.statusCode, 503);
    assert.equal((r.json() as ErrorBody).error.code, 'QUEUE_FULL');
    const ok = await small.inject({
      method: 'POST',
      url: '/v1/predict',
      ...multipart([1, 2].map((i) => ({ name: `${i}.jpg`, bytes: jpeg }))),
    });
    assert.equal(ok.statusCode, 200);
  } finally {
    await small.close();
  }
  const model = await openServedModel(exportDir, { threads: 1 });
  const slowRun = model.run.bind(model);
  model.run = async (x, n) => {
    await new Promise((res) => setTimeout(res, 300));
    return slowRun(x, n);
  };
  const slow = await buildServer({ model, requestTimeoutMs: 150 });
  try {
    const r = await slow.inject({
      method: 'POST',
      url: '/v1/predict',
      headers: { 'content-type': 'image/jpeg' },
      payload: jpeg,
    });
    assert.equal(r.statusCode, 503, r.body);
    assert.equal((r.json() as ErrorBody).error.code, 'INFERENCE_TIMEOUT');
  } finally {
    await slow.close();
  }
});

test('GET /v1/model, /healthz, /metrics, the page and onnxruntime-web files', async () => {
  const app = await server();
  try {
    const m = (await app.inject({ method: 'GET', url: '/v1/model' })).json() as {
      model: string;
      classes: string[];
      preprocess: PreprocessConfig;
      input: { dims: number[] };
      pipeline: { ops: { op: string }[]; maxPixels: number };
      limits: Record<string, number>;
      gallery: null;
    };
    assert.equal(m.model, 'resnet18');
    assert.equal((m as { precision?: string }).precision, 'fp32');
    assert.deepEqual(m.classes, classes);
    assert.deepEqual(m.preprocess, preprocess);
    assert.deepEqual(m.input.dims, [3, 64, 64]);
    // Nested values pass the answer's schema whole.
    assert.deepEqual(
      m.pipeline.ops.map((o) => o.op),
      ['letterbox', 'centerCrop', 'normalize'],
    );
    assert.equal(m.pipeline.maxPixels, 40_000_000);
    assert.deepEqual(m.limits, { ...DEFAULT_LIMITS, maxBatch: 16 });
    assert.equal(m.gallery, null);
    assert.deepEqual((await app.inject({ method: 'GET', url: '/healthz' })).json(), {
      status: 'ok',
      inflight: 1,
      queue: 0,
    });
    const page = await app.inject({ method: 'GET', url: '/' });
    assert.equal(page.statusCode, 200);
    assert.match(page.headers['content-type'] as string, /text\/html/);
    assert.doesNotMatch(page.body, /https?:\/\/(?!127\.0\.0\.1)/, 'no external URLs (no CDN)');
    const wasm = await app.inject({ method: 'GET', url: '/ort/ort-wasm-simd-threaded.wasm' });
    assert.equal(wasm.statusCode, 200);
    assert.equal(wasm.headers['content-type'], 'application/wasm');
    assert.equal((await app.inject({ method: 'GET', url: '/ort/..%2Fpackage.json' })).statusCode, 404);
    const onnx = await app.inject({ method: 'GET', url: '/v1/model.onnx' });
    assert.equal(onnx.statusCode, 200);
    assert.deepEqual(onnx.rawPayload, readFileSync(join(exportDir, 'model.onnx')));
    await app.inject({ method: 'POST', url: '/v1/predict', headers: { 'content-type': 'image/jpeg' }, payload: jpeg });
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    assert.match(metrics, /# TYPE goodsrec_request_duration_seconds histogram/);
    assert.match(metrics, /goodsrec_http_requests_total\{route="\/v1\/predict",status="200"\} 1/);
    assert.match(metrics, /goodsrec_inference_batch_size_count 1/);
    // Undeclared query parameters are ignored, not refused (a cache-busting ?v=, say).
    assert.equal((await app.inject({ method: 'GET', url: '/v1/model?v=2' })).statusCode, 200);
    const top2 = await app.inject({
      method: 'POST',
      url: '/v1/predict?top=2&v=2',
      headers: { 'content-type': 'image/jpeg' },
      payload: jpeg,
    });
    assert.equal((top2.json() as PredictResponse).predictions[0]!.top.length, 2);
  } finally {
    await app.close();
  }
});

/** Polls until `cond` holds (a failure bound only: the waits are for events, not for time). */
async function until(what: string, cond: () => Promise<boolean> | boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`${what}: not reached in ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('images that arrive while onnxruntime runs form the next batch, up to --max-batch', async () => {
  // A run held until the test releases it: the 7 requests sent meanwhile must wait in the queue and then
  // share runs. maxBatch 16: one run of 7; maxBatch 4 (the control): runs of 4 and 3.
  for (const [maxBatch, expected] of [
    [16, [1, 7]],
    [4, [1, 4, 3]],
  ] as const) {
    const model = await openServedModel(exportDir, { threads: 1 });
    const run = model.run.bind(model);
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    const sizes: number[] = [];
    model.run = async (x, n) => {
      sizes.push(n);
      await held;
      return run(x, n);
    };
    const app = await buildServer({ model, maxBatch, maxDelayMs: 0 });
    try {
      const post = () =>
        app.inject({ method: 'POST', url: '/v1/predict', headers: { 'content-type': 'image/jpeg' }, payload: jpeg });
      const first = post();
      await until('the first run started', () => sizes.length === 1);
      const rest = Array.from({ length: 7 }, post);
      const queue = async () => ((await app.inject({ url: '/healthz' })).json() as { queue: number }).queue;
      await until('7 images queued behind the running batch', async () => (await queue()) === 7);
      release();
      const answers = await Promise.all([first, ...rest]);
      assert.deepEqual(
        answers.map((a) => a.statusCode),
        Array(8).fill(200),
      );
      assert.deepEqual(sizes, expected, `maxBatch ${maxBatch}`);
      const metrics = (await app.inject({ url: '/metrics' })).body;
      assert.match(metrics, new RegExp(`goodsrec_inference_batch_size_count ${expected.length}\\n`));
      assert.match(metrics, /goodsrec_images_predicted_total 8\n/);
    } finally {
      release();
      await app.close();
    }
  }
});

test('graceful shutdown: requests in flight when close() starts are answered, later ones are refused', async () => {
  // The model's runs are held until close() has begun, so the six requests are in flight whatever the load.
  const model = await openServedModel(exportDir, { threads: 1 });
  const run = model.run.bind(model);
  let proceed!: () => void;
  const held = new Promise<void>((r) => {
    proceed = r;
  });
  model.run = async (x, n) => {
    await held;
    return run(x, n);
  };
  let released = false;
  const release = model.release.bind(model);
  model.release = async () => {
    released = true;
    await release();
  };
  const app = await buildServer({ model, maxBatch: 2 });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  const photo = readFileSync(photos[5]!);
  const inflight = Array.from({ length: 6 }, () =>
    fetch(`${url}/v1/predict`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: photo }),
  );
  // The six and this check.
  const seen = async () => ((await (await fetch(`${url}/healthz`)).json()) as { inflight: number }).inflight;
  await until('all six predictions in flight', async () => (await seen()) === 7);
  const closed = app.close();
  await until('close() stopped listening', () => !app.server.listening);
  const t0 = Date.now();
  proceed();
  const answers = await Promise.all(inflight);
  assert.deepEqual(
    answers.map((a) => a.status),
    [200, 200, 200, 200, 200, 200],
  );
  // Answers sent while closing end their keep-alive connection, so close() need not wait them out.
  assert.deepEqual(
    answers.map((a) => a.headers.get('connection')),
    Array(6).fill('close'),
  );
  await closed;
  // A connection left open would hold close() for the keep-alive timeout (72 s); bound at half of it.
  assert.ok(Date.now() - t0 < 36_000, `close() took ${Date.now() - t0} ms (keep-alive connections left open?)`);
  assert.ok(released, 'the onnxruntime session was released on close');
  await assert.rejects(fetch(`${url}/healthz`));
});

test('the error catalogue and its documentation (src/serve/README.md) list the same codes and statuses', () => {
  const doc = readFileSync(join(repoRoot, 'src', 'serve', 'README.md'), 'utf8');
  const rows = new Map([...doc.matchAll(/^\| `([A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1]!, Number(m[2])]));
  const catalogue = new Map(Object.entries(SERVE_ERRORS).map(([k, v]) => [k, v.status]));
  assert.deepEqual(rows, catalogue);
});
