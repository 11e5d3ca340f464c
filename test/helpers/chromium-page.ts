// A self-contained HTML page opened from disk in Debian's headless Chromium (playwright-core): how many
// pixels each chart painted, whether each thumbnail decoded, the console errors, and a screenshot.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { BrowserContext, Page } from 'playwright-core';
import { repoRoot } from '../fixres-helpers.js';

const chromium = '/usr/bin/chromium';
export const artifacts = join(repoRoot, 'test-artifacts');

/** A skip reason when the browser or playwright-core is missing, else false. */
export function chromiumSkip(): string | false {
  const havePlaywright = existsSync(join(repoRoot, 'node_modules', 'playwright-core'));
  return !existsSync(chromium) || !havePlaywright ? 'needs /usr/bin/chromium and playwright-core' : false;
}

/** Runs fn with a fresh headless browser (its own profile, removed afterwards). */
export async function withChromium<T>(fn: (browser: BrowserContext) => Promise<T>): Promise<T> {
  const { chromium: pw } = await import('playwright-core');
  mkdirSync(artifacts, { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), 'goodsrec-chromium-'));
  const browser = await pw.launchPersistentContext(profile, {
    executablePath: chromium,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
    viewport: { width: 1280, height: 900 },
  });
  try {
    return await fn(browser);
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

export interface PageCheck {
  page: Page;
  /** Per `.chart` container: the non-transparent pixels of its canvas. */
  painted: number[];
  images: { ok: boolean; alt: string }[];
  /** Console errors and uncaught exceptions so far (the list keeps growing while the page is open). */
  errors: string[];
}

/** Opens an HTML file and waits for the charts' first frame; the caller closes the page. */
export async function openPage(browser: BrowserContext, file: string): Promise<PageCheck> {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
  await page.waitForTimeout(800); // echarts' first frame (animation)
  const painted = await page.evaluate(() =>
    Array.from(document.querySelectorAll('.chart')).map((el) => {
      const cv = el.querySelector('canvas');
      if (!cv || cv.width === 0 || cv.height === 0) return 0;
      const px = cv.getContext('2d')!.getImageData(0, 0, cv.width, cv.height).data;
      let n = 0;
      for (let i = 3; i < px.length; i += 4) if (px[i]! > 0) n++;
      return n;
    }),
  );
  const images = await page.evaluate(() =>
    Array.from(document.images).map((im) => ({ ok: im.complete && im.naturalWidth > 0, alt: im.alt })),
  );
  return { page, painted, images, errors };
}
