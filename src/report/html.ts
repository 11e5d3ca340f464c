// Pieces every self-contained HTML report uses: escaping, JSON safe inside
// <script>, and ECharts inlined so the page opens from disk without a server.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** Text escaped for HTML content and attribute values. */
export const esc = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** JSON safe inside a <script> element. */
export const scriptJson = (v: unknown): string =>
  JSON.stringify(v)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');

/** The minified ECharts bundle, for inlining in a <script> element. */
export function echartsSource(): string {
  return readFileSync(require.resolve('echarts/dist/echarts.min.js'), 'utf8');
}

/**
 * A report page's opening up to and including <body>: the title, and the reports' common style (charts
 * `chartHeight` px high, thumbnails of `side` px) followed by the page's own `css`.
 */
export function pageHead(title: string, o: { side: number; chartHeight: number; css: string }): string {
  const side = o.side;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1280px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px}h3{font-size:14px;margin:6px 0}
.chart{width:100%;height:${o.chartHeight}px}.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px}
.kpi{display:flex;gap:16px;flex-wrap:wrap}.kpi div{background:#f4f6f8;padding:8px 12px;border-radius:6px}
table{border-collapse:collapse;font-size:13px;width:100%}td,th{border:1px solid #ddd;padding:4px 6px;text-align:left}
figure{display:inline-block;margin:4px;width:${side + 8}px;vertical-align:top;font-size:11px}
figure img{max-width:${side}px;max-height:${side}px;display:block;border:1px solid #ccc}
.noimg{width:${side}px;height:${side / 2}px;background:#eee;color:#888;font-size:11px;display:flex;align-items:center;justify-content:center}
${o.css}
</style></head><body>`;
}
