/**
 * Self-contained HTML page for a dataset analysis: ECharts is inlined (opens from disk, no server),
 * the analysis JSON is embedded, tables list duplicates and bad files.
 */
import type { DatasetAnalysis } from '../data/analyze.js';
import { echartsSource, esc, scriptJson } from './html.js';

const binLabel = (b: { lo: number; hi: number }) => (b.hi === Infinity ? `≥${b.lo}` : `${b.lo}–${b.hi}`);

/** Renders the report page. */
export function renderAnalysisHtml(a: DatasetAnalysis, title = 'goodsrec dataset analysis'): string {
  const splits = Object.keys(a.splits);
  const data = {
    classNames: a.classes.map((c) => c.name),
    perSplit: splits.map((sp) => ({ name: sp, values: a.classes.map((c) => c.perSplit[sp] ?? 0) })),
    aspectLabels: a.aspect.histogram.map(binLabel),
    aspectPerSplit: splits.map((sp) => ({ name: sp, values: (a.aspect.perSplit[sp] ?? []).map((b) => b.count) })),
    widthLabels: a.sizes.widths.map(binLabel),
    widths: a.sizes.widths.map((b) => b.count),
    heightLabels: a.sizes.heights.map(binLabel),
    heights: a.sizes.heights.map((b) => b.count),
  };
  const dupRows = a.duplicates.groups
    .slice(0, 500)
    .map(
      (g) =>
        `<tr><td>${g.kind}${g.conflictingLabels ? ' <b>(labels differ)</b>' : ''}</td><td><code>${g.sha256.slice(0, 12)}</code></td><td>${g.files.map((f) => `${esc(f.split)} / ${esc(f.class)}: <code>${esc(f.path)}</code>`).join('<br>')}</td></tr>`,
    )
    .join('\n');
  const badRows = a.badFiles
    .slice(0, 2000)
    .map((b) => `<tr><td>${esc(b.reason)}</td><td><code>${esc(b.path)}</code></td><td>${esc(b.message)}</td></tr>`)
    .join('\n');
  const lt = a.longTail;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px}
.chart{width:100%;height:380px}.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px}
table{border-collapse:collapse;font-size:13px;width:100%}td,th{border:1px solid #ddd;padding:4px 6px;vertical-align:top;text-align:left}
.kpi{display:flex;gap:24px;flex-wrap:wrap}.kpi div{background:#f4f6f8;padding:8px 12px;border-radius:6px}
code{font-size:12px}
</style></head><body>
<h1>${esc(title)}</h1>
<p><code>${esc(a.root)}</code> — ${a.decoded ? 'every image decoded' : 'headers only (truncated files not detected)'}</p>
<div class="kpi">
<div><b>${a.images}</b> images</div><div><b>${a.classes.length}</b> classes</div>
${splits.map((s) => `<div>${esc(s)}: <b>${a.splits[s]}</b></div>`).join('')}
<div>per class: max <b>${lt.maxPerClass}</b>, median <b>${lt.medianPerClass}</b>, min <b>${lt.minPerClass}</b> (ratio ${Number.isFinite(lt.imbalanceRatio) ? lt.imbalanceRatio.toFixed(1) : '∞'})</div>
<div>aspect (h/w) median <b>${a.aspect.median.toFixed(2)}</b>; ≥1.5: <b>${(a.aspect.fractionTallerThan1_5 * 100).toFixed(1)}%</b></div>
<div>duplicates: <b>${a.duplicates.withinSplit}</b> within, <b>${a.duplicates.crossSplit}</b> across splits</div>
<div>bad files: <b>${a.badFiles.length}</b></div>
</div>
<h2>Images per class (long tail)</h2><div id="longtail" class="chart"></div>
<div class="grid"><div><h2>Aspect ratio (height / width)</h2><div id="aspect" class="chart"></div></div>
<div><h2>Image sizes</h2><div id="sizes" class="chart"></div></div></div>
<h2>Exact duplicates (${a.duplicates.groups.length} groups, ${a.duplicates.redundantFiles} redundant files)</h2>
<table><tr><th>kind</th><th>sha256</th><th>files</th></tr>${dupRows || '<tr><td colspan="3">none</td></tr>'}</table>
<h2>Bad files (${a.badFiles.length})</h2>
<table><tr><th>reason</th><th>path</th><th>message</th></tr>${badRows || '<tr><td colspan="3">none</td></tr>'}</table>
<script>${echartsSource()}</script>
<script id="analysis" type="application/json">${scriptJson(a)}</script>
<script>
const D = ${scriptJson(data)};
const bar = (id, opt) => { const c = echarts.init(document.getElementById(id)); c.setOption(opt); window.addEventListener('resize', () => c.resize()); };
bar('longtail', { tooltip: { trigger: 'axis' }, legend: {}, grid: { bottom: 60 },
  xAxis: { type: 'category', data: D.classNames, axisLabel: { show: D.classNames.length <= 60, rotate: 60, fontSize: 9 } },
  yAxis: { type: 'value', name: 'images' }, dataZoom: [{ type: 'inside' }, { type: 'slider' }],
  series: D.perSplit.map((s) => ({ name: s.name, type: 'bar', stack: 'all', data: s.values, large: true })) });
bar('aspect', { tooltip: { trigger: 'axis' }, legend: {}, xAxis: { type: 'category', data: D.aspectLabels, axisLabel: { rotate: 45 } },
  yAxis: { type: 'value', name: 'images' }, series: D.aspectPerSplit.map((s) => ({ name: s.name, type: 'bar', stack: 'all', data: s.values })) });
bar('sizes', { tooltip: { trigger: 'axis' }, legend: {}, xAxis: { type: 'category', data: D.widthLabels.length >= D.heightLabels.length ? D.widthLabels : D.heightLabels, name: 'pixels', axisLabel: { rotate: 45 } },
  yAxis: { type: 'value', name: 'images' }, series: [{ name: 'width', type: 'bar', data: D.widths }, { name: 'height', type: 'bar', data: D.heights }] });
</script>
</body></html>
`;
}
