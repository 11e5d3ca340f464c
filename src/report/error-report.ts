/**
 * Error analysis of an evaluation (the JSON `goodsrec eval` / `ensemble --out`
 * writes) as one self-contained HTML page: accuracy overall and per class,
 * accuracy against class frequency (does the long tail fail?), the most
 * confused class pairs with thumbnails side by side, confident mistakes
 * (label-error candidates), a reliability diagram, and a sortable per-class
 * table. ECharts and the thumbnails (small JPEG data URLs, thumbnail.ts) are
 * inlined, so it opens from disk without a server.
 */
import { existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { loadDataset, selectSplits, type Dataset } from '../data/index.js';
import type { EvalFile, FrequencyBreakdown } from '../run/eval-file.js';
import type { SamplePrediction } from '../eval/evaluate.js';
import { echartsSource, esc, pageHead, scriptJson } from './html.js';
import { thumbnail } from './thumbnail.js';

export interface ErrorReportOptions {
  /** Split whose class counts are "class frequency" (default 'train'; falls back to the evaluated support). */
  trainSplit?: string;
  /** Confused pairs shown (default 12) and examples per side (default 3). */
  pairs?: number;
  examples?: number;
  /** Confident mistakes shown (default 24). */
  mistakes?: number;
  /** Thumbnail side in pixels (default 112). */
  thumb?: number;
  /** Reliability bins (default 10). */
  bins?: number;
}

export interface ReliabilityBin {
  lo: number;
  hi: number;
  count: number;
  accuracy: number;
  confidence: number;
}

/** Reliability diagram bins over the top-1 probability, and the expected calibration error. */
export function reliability(preds: readonly SamplePrediction[], bins = 10): { bins: ReliabilityBin[]; ece: number } {
  const out: ReliabilityBin[] = Array.from({ length: bins }, (_, i) => ({
    lo: i / bins,
    hi: (i + 1) / bins,
    count: 0,
    accuracy: 0,
    confidence: 0,
  }));
  for (const p of preds) {
    const conf = p.probs[0] ?? 0;
    const b = out[Math.min(bins - 1, Math.floor(conf * bins))]!;
    b.count++;
    b.confidence += conf;
    if (p.top[0] === p.label) b.accuracy++;
  }
  let ece = 0;
  for (const b of out) {
    if (b.count) {
      b.accuracy /= b.count;
      b.confidence /= b.count;
    }
    ece += (b.count / Math.max(1, preds.length)) * Math.abs(b.accuracy - b.confidence);
  }
  return { bins: out, ece };
}

/** Off-diagonal confusion counts, largest first. */
export function confusedPairs(
  confusion: readonly (readonly number[])[],
  n: number,
): { truth: number; predicted: number; count: number }[] {
  const pairs: { truth: number; predicted: number; count: number }[] = [];
  confusion.forEach((row, t) =>
    row.forEach((c, p) => {
      if (t !== p && c > 0) pairs.push({ truth: t, predicted: p, count: c });
    }),
  );
  return pairs.sort((a, b) => b.count - a.count || a.truth - b.truth || a.predicted - b.predicted).slice(0, n);
}

const pct = (v: number): string => `${(100 * v).toFixed(1)}%`;

/** Renders the report; images are read from the evaluated dataset (left out, with a note, when it is gone). */
export async function renderErrorReport(ev: EvalFile, o: ErrorReportOptions = {}): Promise<string> {
  const m = ev.metrics;
  const classes = ev.classes;
  let ds: Dataset | null = null;
  try {
    if (existsSync(ev.data)) ds = loadDataset(ev.data);
  } catch {
    ds = null;
  }
  const abs = (p: string): string => (isAbsolute(p) || !ds ? p : join(ds.root, p));

  // Class frequency: images per class in the training split (by name), else the evaluated support.
  const byName = new Map(classes.map((c, i) => [c, i]));
  let freq = m.perClass.map((p) => p.support);
  let freqSource = `${ev.split} support`;
  const train = ds ? selectSplits(ds, o.trainSplit ?? 'train') : null;
  if (ds && train?.samples.length) {
    freq = classes.map(() => 0);
    for (const s of train.samples) {
      const k = byName.get(ds.classes[s.label]!);
      if (k !== undefined) freq[k]!++;
    }
    freqSource = `'${o.trainSplit ?? 'train'}' images`;
  }
  const withSupport = m.perClass.map((p, i) => ({ ...p, i, freq: freq[i]! })).filter((p) => p.support > 0);
  // Head / middle / tail thirds by frequency.
  const byFreq = [...withSupport].sort((a, b) => b.freq - a.freq);
  const third = Math.ceil(byFreq.length / 3);
  const groups = ['head', 'middle', 'tail']
    .map((g, k) => {
      const part = byFreq.slice(k * third, (k + 1) * third);
      return {
        name: g,
        classes: part.length,
        meanAccuracy: part.length ? part.reduce((a, p) => a + p.accuracy, 0) / part.length : 0,
        minFreq: part.length ? part[part.length - 1]!.freq : 0,
        maxFreq: part.length ? part[0]!.freq : 0,
      };
    })
    .filter((g) => g.classes > 0);

  const side = o.thumb ?? 112;
  const thumbs = new Map<string, string | null>();
  const thumb = async (path: string): Promise<string | null> => {
    if (!ds) return null;
    if (!thumbs.has(path)) thumbs.set(path, await thumbnail(abs(path), side));
    return thumbs.get(path)!;
  };
  const img = async (path: string, caption: string): Promise<string> => {
    const src = await thumb(path);
    const alt = esc(path);
    return `<figure>${src ? `<img src="${src}" alt="${alt}" title="${alt}">` : `<div class="noimg" title="${alt}">image unavailable</div>`}<figcaption>${caption}</figcaption></figure>`;
  };

  // Most confused pairs: wrong predictions of truth→predicted next to images of the predicted class.
  const nEx = o.examples ?? 3;
  const pairs = confusedPairs(m.confusion, o.pairs ?? 12);
  const pairHtml: string[] = [];
  for (const p of pairs) {
    const wrong = ev.predictions
      .filter((x) => x.label === p.truth && x.top[0] === p.predicted)
      .sort((a, b) => b.probs[0]! - a.probs[0]!)
      .slice(0, nEx);
    let refs: string[] = ev.predictions
      .filter((x) => x.label === p.predicted && x.top[0] === p.predicted)
      .slice(0, nEx)
      .map((x) => x.path);
    if (refs.length < nEx && train && ds) {
      const k = ds.classes.indexOf(classes[p.predicted]!);
      refs = [
        ...refs,
        ...train.samples
          .filter((s) => s.label === k)
          .slice(0, nEx - refs.length)
          .map((s) => s.path),
      ];
    }
    const left = await Promise.all(
      wrong.map((x) => img(x.path, `${pct(x.probs[0]!)} as ${esc(classes[p.predicted]!)}`)),
    );
    const right = await Promise.all(refs.map((r) => img(r, esc(classes[p.predicted]!))));
    pairHtml.push(`<div class="pair"><h3>${p.count}× <b>${esc(classes[p.truth]!)}</b> → <b>${esc(classes[p.predicted]!)}</b></h3>
<div class="sides"><div class="side"><div class="lbl">true ${esc(classes[p.truth]!)}, predicted ${esc(classes[p.predicted]!)}</div>${left.join('')}</div>
<div class="side"><div class="lbl">what ${esc(classes[p.predicted]!)} looks like</div>${right.join('') || '<i>no example</i>'}</div></div></div>`);
  }

  // Confident mistakes: candidates for label errors.
  const mistakes = ev.predictions
    .filter((x) => x.top[0] !== x.label)
    .sort((a, b) => b.probs[0]! - a.probs[0]!)
    .slice(0, o.mistakes ?? 24);
  const mistakeHtml = await Promise.all(
    mistakes.map((x) =>
      img(
        x.path,
        `label <b>${esc(classes[x.label]!)}</b><br>predicted <b>${esc(classes[x.top[0]!]!)}</b> ${pct(x.probs[0]!)}`,
      ),
    ),
  );

  const rel = reliability(ev.predictions, o.bins ?? 10);
  const data = {
    perClass: [...withSupport]
      .sort((a, b) => a.accuracy - b.accuracy)
      .map((p) => ({ name: p.name, accuracy: p.accuracy, support: p.support })),
    freq: withSupport.map((p) => ({ name: p.name, freq: p.freq, accuracy: p.accuracy, support: p.support })),
    reliability: rel.bins,
    freqSource,
  };
  const rows = m.perClass
    .map(
      (p, i) =>
        `<tr><td>${esc(p.name)}</td><td>${freq[i]}</td><td>${p.support}</td><td>${p.correct}</td><td>${p.accuracy.toFixed(4)}</td><td>${p.precision.toFixed(4)}</td><td>${p.recall.toFixed(4)}</td><td>${p.f1.toFixed(4)}</td></tr>`,
    )
    .join('\n');
  const bf = m.byFrequency;
  const title = `goodsrec error report: ${ev.model} on ${ev.split}`;
  return `${pageHead(title, {
    side,
    chartHeight: 380,
    css: `th{cursor:pointer;background:#f4f6f8;user-select:none}th:after{content:' ⇅';color:#aaa}
.pair{border-top:1px solid #ddd;padding:8px 0}.sides{display:flex;gap:24px;flex-wrap:wrap}.side{background:#fafafa;padding:6px;border-radius:6px}
.lbl{font-size:12px;color:#555;margin-bottom:4px}code{font-size:12px}`,
  })}
<h1>${esc(title)}</h1>
<p>checkpoint <code>${esc(ev.checkpoint ?? '-')}</code>; data <code>${esc(ev.data)}</code>${ev.preprocess ? `; ${ev.preprocess.size} px` : ''}${ev.tta?.length ? `; TTA ${esc(ev.tta.join('+'))}` : ''}${ds ? '' : '; <b>dataset not found: thumbnails left out</b>'}</p>
<div class="kpi">
<div>samples <b>${m.samples}</b></div><div>top-1 <b id="top1">${pct(m.top1)}</b></div><div>top-5 <b>${pct(m.top5)}</b></div>
<div>mean class accuracy <b>${pct(m.meanClassAccuracy)}</b></div>${m.loss !== null ? `<div>loss <b>${m.loss.toFixed(4)}</b></div>` : ''}
<div>ECE <b>${(100 * rel.ece).toFixed(2)}%</b></div>
${
  bf
    ? (['many', 'medium', 'few'] as const)
        .map((k) => {
          const g = bf[k];
          return `<div>${FREQ_LABEL[k]} (${g.classes} classes, ${g.samples} photos) <b>${g.top1 === null ? '-' : pct(g.top1)}</b></div>`;
        })
        .join('')
    : groups
        .map(
          (g) =>
            `<div>${g.name} classes (${g.classes}, ${g.minFreq}–${g.maxFreq} imgs) <b>${pct(g.meanAccuracy)}</b></div>`,
        )
        .join('')
}
</div>
${bf ? tailTable(bf) : ''}
<h2>Per-class accuracy (worst first)</h2><div id="perclass" class="chart"></div>
<div class="grid"><div><h2>Accuracy against class frequency</h2><div id="freq" class="chart"></div></div>
<div><h2>Reliability (calibration)</h2><div id="calib" class="chart"></div></div></div>
<h2>Most confused pairs (${pairs.length})</h2>
${pairHtml.join('\n') || '<p>no confusions</p>'}
<h2>Confident mistakes (${mistakes.length}): label-error candidates</h2>
<div class="gallery">${mistakeHtml.join('') || '<p>no mistakes</p>'}</div>
<h2>Per-class precision and recall</h2>
<table id="classes"><thead><tr><th>class</th><th>frequency</th><th>support</th><th>correct</th><th>accuracy</th><th>precision</th><th>recall</th><th>F1</th></tr></thead>
<tbody>${rows}</tbody></table>
<script>${echartsSource()}</script>
<script>
const D = ${scriptJson(data)};
const chart = (id, opt) => { const c = echarts.init(document.getElementById(id)); c.setOption(opt); window.addEventListener('resize', () => c.resize()); };
chart('perclass', { tooltip: { trigger: 'axis' }, grid: { bottom: 80 }, dataZoom: [{ type: 'inside' }, { type: 'slider' }],
  xAxis: { type: 'category', data: D.perClass.map((p) => p.name), axisLabel: { show: D.perClass.length <= 60, rotate: 60, fontSize: 9 } },
  yAxis: { type: 'value', name: 'accuracy', max: 1 }, series: [{ type: 'bar', data: D.perClass.map((p) => p.accuracy), large: true }] });
chart('freq', { tooltip: { formatter: (p) => p.data[2] + '<br>' + D.freqSource + ': ' + p.data[0] + '<br>accuracy: ' + (100 * p.data[1]).toFixed(1) + '%' },
  xAxis: { type: 'log', name: D.freqSource, nameLocation: 'middle', nameGap: 28 }, yAxis: { type: 'value', name: 'accuracy', max: 1 },
  series: [{ type: 'scatter', symbolSize: 8, data: D.freq.map((p) => [Math.max(1, p.freq), p.accuracy, p.name]) }] });
chart('calib', { tooltip: { trigger: 'axis' }, legend: {},
  xAxis: { type: 'category', name: 'confidence', nameLocation: 'middle', nameGap: 28, data: D.reliability.map((b) => b.lo.toFixed(1) + '–' + b.hi.toFixed(1)) },
  yAxis: [{ type: 'value', name: 'accuracy', max: 1 }, { type: 'value', name: 'samples' }],
  series: [{ name: 'accuracy', type: 'bar', data: D.reliability.map((b) => b.count ? b.accuracy : null) },
    { name: 'perfect calibration', type: 'line', data: D.reliability.map((b) => (b.lo + b.hi) / 2), symbol: 'none', lineStyle: { type: 'dashed' } },
    { name: 'samples', type: 'line', yAxisIndex: 1, data: D.reliability.map((b) => b.count) }] });
// Sortable table: click a header; numbers sort numerically, a second click reverses.
document.querySelectorAll('#classes th').forEach((th, col) => th.addEventListener('click', () => {
  const body = document.querySelector('#classes tbody');
  const dir = th.dataset.dir === 'asc' ? 'desc' : 'asc';
  document.querySelectorAll('#classes th').forEach((h) => delete h.dataset.dir);
  th.dataset.dir = dir;
  const key = (tr) => { const t = tr.children[col].textContent; const n = Number(t); return Number.isNaN(n) ? t : n; };
  const rows = [...body.rows].sort((a, b) => { const x = key(a), y = key(b); return (x < y ? -1 : x > y ? 1 : 0) * (dir === 'asc' ? 1 : -1); });
  body.append(...rows);
}));
</script>
</body></html>
`;
}

const FREQ_LABEL = { many: 'many-shot (&gt;100 train photos)', medium: 'medium (20–100)', few: 'few-shot (&lt;20)' };

/** The few-shot group's worst classes (eval's byFrequency.worstTail). */
function tailTable(bf: FrequencyBreakdown): string {
  if (!bf.worstTail.length) return '';
  const rows = bf.worstTail
    .map(
      (t) =>
        `<tr><td>${esc(t.name)}</td><td>${t.train}</td><td>${t.support}</td><td>${t.correct}</td><td>${t.accuracy.toFixed(4)}</td><td>${t.confusedWith === null ? '-' : esc(t.confusedWith)}</td></tr>`,
    )
    .join('\n');
  return `<h2>The tail's worst classes (fewer than 20 training photos; counts from ${esc(bf.source)})</h2>
<table id="tail"><thead><tr><th>class</th><th>train photos</th><th>support</th><th>correct</th><th>accuracy</th><th>most confused with</th></tr></thead>
<tbody>${rows}</tbody></table>`;
}
