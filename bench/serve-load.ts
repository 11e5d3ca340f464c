/**
 * `npm run bench -- serve-load`: the server under loopback load (autocannon, 2 s at each of 1, 8 and 32
 * connections) on the stand-in resnet18 of the serve tests (64 px, the sample's classes): requests/s,
 * p50/p99 latency, images per onnxruntime run (micro-batching) and RSS over the run. Fails when a
 * request errs or times out, or when RSS grows (last third's mean over 110% + 32 MiB of the first's).
 * Was a unit test; its numbers depend on the machine's load, so it lives here.
 *
 * Env: GOODSREC_BENCH_SECONDS (per concurrency, default 2).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { openServedModel } from '../src/serve/model.js';
import { buildServer } from '../src/serve/server.js';
import { SAMPLE, standInRecognizer } from '../test/serve-helpers.js';

const mean = (a: number[]): number => a.reduce((s, x) => s + x, 0) / a.length;
const MiB = 2 ** 20;

export async function run(): Promise<void> {
  const seconds = Number(process.env.GOODSREC_BENCH_SECONDS ?? 2);
  const work = mkdtempSync(join(tmpdir(), 'goodsrec-bench-serve-load-'));
  try {
    const { recognizer, exportDir } = await standInRecognizer(work);
    recognizer.model.dispose();
    const model = await openServedModel(exportDir, { threads: 2 });
    const app = await buildServer({ model, maxBatch: 16, maxDelayMs: 4 });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    const photo = readFileSync(SAMPLE.photos[5]!);
    console.log(`load average before: ${loadavg()[0]!.toFixed(2)}; ${seconds} s per concurrency`);
    const rss: number[] = [];
    const sampler = setInterval(() => rss.push(process.memoryUsage.rss()), 50);
    const problems: string[] = [];
    try {
      for (const connections of [1, 8, 32]) {
        const r = await autocannon({
          url: `${url}/v1/predict`,
          method: 'POST',
          headers: { 'content-type': 'image/jpeg' },
          body: photo,
          connections,
          duration: seconds,
          timeout: 20,
        });
        console.log(
          `c=${connections}: ${r.requests.average.toFixed(1)} req/s, p50 ${r.latency.p50} ms, p99 ${r.latency.p99} ms, ` +
            `${r.requests.total} requests, ${r.errors} errors, ${r.non2xx} non-2xx, ${r.timeouts} timeouts`,
        );
        if (r.errors + r.non2xx + r.timeouts > 0 || r['2xx'] === 0) problems.push(`c=${connections}: failed requests`);
      }
    } finally {
      clearInterval(sampler);
    }
    const metrics = await (await fetch(`${url}/metrics`)).text();
    const batches = Number(/goodsrec_inference_batch_size_count (\d+)/.exec(metrics)![1]);
    const images = Number(/goodsrec_images_predicted_total (\d+)/.exec(metrics)![1]);
    console.log(`${images} images in ${batches} onnxruntime runs (${(images / batches).toFixed(2)} per run)`);
    const third = Math.floor(rss.length / 3);
    const first = mean(rss.slice(0, third));
    const last = mean(rss.slice(-third));
    console.log(`RSS: first third ${(first / MiB).toFixed(0)} MiB, last third ${(last / MiB).toFixed(0)} MiB`);
    if (last > first * 1.1 + 32 * MiB) problems.push('RSS grew');
    console.log(`load average after: ${loadavg()[0]!.toFixed(2)}`);
    await app.close();
    if (problems.length) throw new Error(problems.join('; '));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
