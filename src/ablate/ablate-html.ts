// The ablation's page: the summary table and two charts (ECharts, inlined as in the other reports): each
// cell's per-seed test top-1 around its mean, and each cell's difference to the base with its interval.
import { echartsSource, esc, pageHead, scriptJson } from '../report/html.js';
import { formatDifference, type AblateSummary } from './summary.js';

const pct = (v: number): string => (Number.isFinite(v) ? (100 * v).toFixed(2) : '-');
const pts = (v: number | null | undefined): number | null =>
  v === null || v === undefined || !Number.isFinite(v) ? null : Number((100 * v).toFixed(3));

export function renderAblationHtml(s: AblateSummary, title = 'goodsrec ablation'): string {
  const rows = s.cells
    .map((c) => {
      const m = (k: 'top1' | 'top5' | 'meanClassAccuracy'): string => {
        const st = c.stats[k];
        return st.n ? `${pct(st.mean)} ± ${st.n > 1 ? pct(st.sd) : '-'}` : '-';
      };
      const d = (k: 'top1' | 'top5'): string => (c.vsBase ? esc(formatDifference(c.vsBase[k])) : '(base)');
      return `<tr><td><code>${esc(c.id)}</code></td><td>${c.seeds.join(', ') || 'none yet'}</td><td>${m('top1')}</td><td>${d('top1')}</td><td>${m('top5')}</td><td>${d('top5')}</td><td>${m('meanClassAccuracy')}</td><td>${c.trainMinutes === null ? '-' : c.trainMinutes.toFixed(1)}</td></tr>`;
    })
    .join('\n');
  const data = {
    cells: s.cells.map((c) => c.id),
    seeds: s.cells.flatMap((c, i) => c.values.top1.map((v, j) => [i, pts(v), c.seeds[j]])),
    means: s.cells.map((c) => pts(c.stats.top1.mean)),
    diffCells: s.cells.filter((c) => c.vsBase).map((c) => c.id),
    diffs: s.cells.filter((c) => c.vsBase).map((c) => pts(c.vsBase!.top1.diff)),
    // Candlestick boxes [open, close, lowest, highest] drawn from the interval's low to its high.
    intervals: s.cells
      .filter((c) => c.vsBase)
      .map((c) => {
        const d = c.vsBase!.top1;
        return d.low === null || d.high === null
          ? [null, null, null, null]
          : [pts(d.low), pts(d.high), pts(d.low), pts(d.high)];
      }),
  };
  const height = Math.max(380, 28 * s.cells.length + 80);
  return `${pageHead(title, { side: 0, chartHeight: height, css: 'code{font-size:12px}' })}
<h1>${esc(title)}</h1>
<p>Split <code>${esc(s.split)}</code>, seeds ${s.seeds.join(', ')}. Mean ± sample sd over the seeds that finished; Δ: the cell's mean
minus the base's, in points, with the ${esc(s.interval)}.</p>
<table><tr><th>cell</th><th>seeds</th><th>top-1 (%)</th><th>Δ top-1 [95% CI]</th><th>top-5 (%)</th><th>Δ top-5 [95% CI]</th><th>mean class acc. (%)</th><th>train min/run</th></tr>
${rows}
</table>
<div class="grid"><div><h2>Test top-1 per seed (dots) and mean (bar)</h2><div id="seeds" class="chart"></div></div>
<div><h2>Δ top-1 vs base with its 95% interval</h2><div id="diffs" class="chart"></div></div></div>
<script>${echartsSource()}</script>
<script>
const D = ${scriptJson(data)};
const chart = (id, opt) => { const c = echarts.init(document.getElementById(id)); c.setOption(opt); window.addEventListener('resize', () => c.resize()); };
chart('seeds', { tooltip: {}, grid: { left: 220 },
  yAxis: { type: 'category', data: D.cells, inverse: true, axisLabel: { fontSize: 10 } },
  xAxis: { type: 'value', name: 'top-1 %', scale: true },
  series: [{ name: 'mean', type: 'bar', data: D.means, itemStyle: { color: '#9ec5e8' } },
    { name: 'seed', type: 'scatter', data: D.seeds.map((p) => [p[1], p[0], p[2]]), symbolSize: 8,
      tooltip: { formatter: (p) => 'seed ' + p.value[2] + ': ' + p.value[0] + ' %' } }] });
chart('diffs', { tooltip: {}, grid: { bottom: 120, top: 40 },
  xAxis: { type: 'category', data: D.diffCells, axisLabel: { rotate: 45, fontSize: 10 } },
  yAxis: { type: 'value', name: 'Δ points', scale: true },
  series: [{ name: '95% interval', type: 'candlestick', data: D.intervals, barMaxWidth: 14,
      itemStyle: { color: '#f2c4c4', color0: '#f2c4c4', borderColor: '#c55', borderColor0: '#c55' } },
    { name: 'Δ', type: 'scatter', data: D.diffs, symbolSize: 9, itemStyle: { color: '#333' },
      markLine: { symbol: 'none', silent: true, data: [{ yAxis: 0 }] } }] });
</script>
</body></html>
`;
}
