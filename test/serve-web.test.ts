// The browser page in Debian's headless Chromium (playwright-core): upload a
// grocery-store photo, the page shows the server's top-1; the same photo run
// in the browser with onnxruntime-web (wasm); no console errors; screenshots.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { LoadedRecognizer } from '../src/eval/predictor.js';
import { openServedModel } from '../src/serve/model.js';
import { buildServer, readReferencePhotos, type PredictResponse } from '../src/serve/server.js';
import { SAMPLE, repoRoot, standInRecognizer } from './serve-helpers.js';

const chromium = '/usr/bin/chromium';
const havePlaywright = existsSync(join(repoRoot, 'node_modules', 'playwright-core'));
const groceryStore = join(repoRoot, '..', 'shared', 'datasets', 'grocery-store');
const artifacts = join(repoRoot, 'test-artifacts');
const work = mkdtempSync(join(tmpdir(), 'goodsrec-serve-web-'));
let recognizer: LoadedRecognizer | undefined;
let app: FastifyInstance | undefined;
let url = '';

before(async () => {
  const s = await standInRecognizer(work);
  recognizer = s.recognizer;
  const model = await openServedModel(s.exportDir, { threads: 2 });
  // grocery-store's iconic photos, when the dataset is there (the sample's classes are grocery-store classes).
  const references = existsSync(join(groceryStore, 'dataset', 'classes.csv')) ? readReferencePhotos(groceryStore) : undefined;
  app = await buildServer({ model, ...(references ? { references } : {}) });
  url = await app.listen({ port: 0, host: '127.0.0.1' });
});

after(async () => {
  await app?.close();
  recognizer?.model.dispose();
  rmSync(work, { recursive: true, force: true });
});

const skip = !existsSync(chromium) || !havePlaywright ? 'needs /usr/bin/chromium (apt-get install chromium) and playwright-core' : false;

test('the page shows the server top-1 for an uploaded photo, and the same top-1 computed in the browser (wasm)', { skip, timeout: 120_000 }, async () => {
  const { chromium: pw } = await import('playwright-core');
  // The photo whose top-1 leads its top-2 by the widest margin: the browser resamples with its own canvas,
  // so a near tie could flip there without anything being wrong.
  let photo = '';
  let expected = '';
  let margin = -1;
  for (const p of SAMPLE.photos.filter((_, i) => i % 3 === 0)) {
    const r = await (await fetch(`${url}/v1/predict`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: readFileSync(p) })).json() as PredictResponse;
    const [a, b] = r.predictions[0]!.top;
    if (a!.probability - b!.probability > margin) { margin = a!.probability - b!.probability; photo = p; expected = a!.label; }
  }

  const profile = mkdtempSync(join(tmpdir(), 'goodsrec-chromium-'));
  const browser = await pw.launchPersistentContext(profile, {
    executablePath: chromium, headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    viewport: { width: 1100, height: 800 },
  });
  const problems: string[] = [];
  try {
    const page = await browser.newPage();
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
    await page.goto(url + '/');
    await page.waitForFunction(() => document.getElementById('status')?.textContent === 'ready');

    await page.setInputFiles('#file', photo);
    await page.waitForSelector('#results[data-mode="server"] li');
    const serverTop = await page.$$eval('#results li', (lis) => lis.map((li) => (li as HTMLElement).dataset.label));
    assert.equal(serverTop.length, 5);
    assert.equal(serverTop[0], expected, 'page top-1 (server) equals the API top-1');
    if (existsSync(join(groceryStore, 'dataset', 'classes.csv'))) {
      // Reference photos of the five classes are shown and load.
      await page.waitForFunction(() => {
        const imgs = Array.from(document.querySelectorAll('#results img')) as HTMLImageElement[];
        return imgs.length === 5 && imgs.every((i) => i.complete && i.naturalWidth > 0);
      });
    }
    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: join(artifacts, 'serve-page-server.png'), fullPage: true });

    await page.check('#in-browser');
    await page.setInputFiles('#file', []);
    await page.setInputFiles('#file', photo);
    await page.waitForSelector('#results[data-mode="browser"] li', { timeout: 60_000 });
    const browserTop = await page.$$eval('#results li', (lis) => lis.map((li) => (li as HTMLElement).dataset.label));
    // The browser resizes with its own canvas resampler, not the server's; top-1 should still agree.
    assert.equal(browserTop[0], expected, 'page top-1 (onnxruntime-web in the browser) equals the server top-1');
    await page.screenshot({ path: join(artifacts, 'serve-page-browser.png'), fullPage: true });
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  }
});
