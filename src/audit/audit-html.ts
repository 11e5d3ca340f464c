// The audit as one self-contained HTML page in the reports' style (src/report: ECharts inlined, thumbnails
// as data URLs): each suspect photo beside typical photos of its given and its suggested class, the
// duplicates and the look-alike pairs with their photos. Each thumbnail is stored once and placed by a
// small script, so a class's reference photos cost their bytes once however many suspects show them.
import { echartsSource, esc, pageHead, scriptJson } from '../report/html.js';
import { thumbnail } from '../report/thumbnail.js';
import type { AuditPhoto, AuditResult } from './audit.js';

export interface AuditHtmlOptions {
  /** Suspects shown (most suspect first; default 200). */
  suspects?: number;
  /** Reference photos per class (default 3). */
  references?: number;
  /** Thumbnail side in pixels (default 96). */
  thumb?: number;
}

const pct = (v: number): string => `${(100 * v).toFixed(1)}%`;

/** Renders the page; photos that cannot be read are shown as a grey box with their path. */
export async function renderAuditHtml(a: AuditResult, o: AuditHtmlOptions = {}): Promise<string> {
  const side = o.thumb ?? 96;
  const nRef = o.references ?? 3;
  const images: string[] = [];
  const ids = new Map<string, number>();
  const img = async (path: string, caption: string): Promise<string> => {
    let id = ids.get(path);
    if (id === undefined) {
      const src = await thumbnail(path, side);
      id = src ? images.push(src) - 1 : -1;
      ids.set(path, id);
    }
    const alt = esc(path);
    const pic =
      id >= 0
        ? `<img data-t="${id}" alt="${alt}" title="${alt}">`
        : `<div class="noimg" title="${alt}">unreadable</div>`;
    return `<figure>${pic}<figcaption>${caption}</figcaption></figure>`;
  };

  // A class's reference photos: its most confidently labelled photos that are not flagged.
  const refs = new Map<string, AuditPhoto[]>();
  for (const p of [...a.labels.photos].sort((x, y) => y.quality - x.quality)) {
    const list = refs.get(p.given) ?? [];
    if (list.length < nRef && !p.flagged) list.push(p);
    refs.set(p.given, list);
  }
  const refHtml = async (cls: string): Promise<string> =>
    (
      await Promise.all((refs.get(cls) ?? []).map((p) => img(p.path, `${esc(p.split)}, p ${p.quality.toFixed(2)}`)))
    ).join('') || '<i>no confidently labelled photo</i>';

  const flagged = a.labels.photos.filter((p) => p.flagged);
  const shown = flagged.slice(0, o.suspects ?? 200);
  const suspectHtml: string[] = [];
  for (const p of shown) {
    suspectHtml.push(`<div class="row"><div class="side suspect">${await img(
      p.path,
      `<b>${esc(p.split)}</b>: given <b>${esc(p.given)}</b> (p ${p.quality.toFixed(2)})<br>suggested <b>${esc(p.suggested)}</b> (p ${p.suggestedProbability.toFixed(2)})`,
    )}</div>
<div class="side"><div class="lbl">given: ${esc(p.given)}</div>${await refHtml(p.given)}</div>
<div class="side"><div class="lbl">suggested: ${esc(p.suggested)}</div>${await refHtml(p.suggested)}</div></div>`);
  }

  const exactHtml: string[] = [];
  for (const g of a.duplicates.exact.slice(0, 200)) {
    const files = await Promise.all(g.files.map((f) => img(f.path, `${esc(f.split)} / ${esc(f.class)}`)));
    const what = [g.kind === 'cross-split' ? 'across splits' : '', g.conflictingLabels ? 'labels differ' : '']
      .filter(Boolean)
      .join(', ');
    exactHtml.push(
      `<div class="row"><div class="lbl">${g.files.length} copies (${what}), sha256 <code>${g.sha256.slice(0, 12)}</code></div>${files.join('')}</div>`,
    );
  }
  const nearHtml: string[] = [];
  for (const d of a.duplicates.near.slice(0, 200)) {
    const what = [d.crossClass ? 'classes differ' : '', d.crossSplit ? 'across splits' : ''].filter(Boolean).join(', ');
    nearHtml.push(
      `<div class="row"><div class="lbl">${d.bits} of 64 bits differ (${what})</div>${await img(
        d.a.path,
        `${esc(d.a.split)} / ${esc(d.a.class)}`,
      )}${await img(d.b.path, `${esc(d.b.split)} / ${esc(d.b.class)}`)}</div>`,
    );
  }
  const pairHtml: string[] = [];
  for (const l of a.lookalikes) {
    pairHtml.push(`<div class="row"><h3>${esc(l.a)} ↔ ${esc(l.b)}: ${l.aAsB} + ${l.bAsA} confused (${pct(l.confusionRate)}), centroid cosine ${l.centroidSimilarity.toFixed(3)}</h3>
<div class="side"><div class="lbl">${esc(l.a)} (${l.aPhotos})</div>${await refHtml(l.a)}</div>
<div class="side"><div class="lbl">${esc(l.b)} (${l.bPhotos})</div>${await refHtml(l.b)}</div></div>`);
  }
  const badRows = a.badFiles
    .slice(0, 2000)
    .map((b) => `<tr><td><code>${esc(b.path)}</code></td><td>${esc(b.message)}</td></tr>`)
    .join('');

  // Charts: flagged photos per given class, and the quality of flagged and kept photos.
  const perClass = new Map<string, number>();
  for (const p of flagged) perClass.set(p.given, (perClass.get(p.given) ?? 0) + 1);
  const bins = 20;
  const hist = (ps: AuditPhoto[]): number[] => {
    const h = new Array<number>(bins).fill(0);
    for (const p of ps) h[Math.min(bins - 1, Math.floor(p.quality * bins))]!++;
    return h;
  };
  const data = {
    perClass: [...perClass].sort((x, y) => y[1] - x[1]).slice(0, 60),
    binLabels: Array.from({ length: bins }, (_, i) => `${(i / bins).toFixed(2)}`),
    flagged: hist(flagged),
    kept: hist(a.labels.photos.filter((p) => !p.flagged)),
  };
  const s = a.scores;
  const method =
    s.method === 'knn'
      ? `leave-one-out k-NN in the run's embedding (k ${s.neighbours}, temperature ${s.temperature})`
      : "the classifier's probabilities (out-of-sample only on photos the run did not train on)";
  const n = a.labels.photos.length;
  const title = `goodsrec label audit: ${a.model.name} on ${a.data}`;
  return `${pageHead(title, {
    side,
    chartHeight: 340,
    css: `.row{border-top:1px solid #ddd;padding:8px 0;display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start}
.row h3{width:100%}.side{background:#fafafa;padding:6px;border-radius:6px}.suspect{background:#fff4e5}
.lbl{font-size:12px;color:#555;margin-bottom:4px;width:100%}code{font-size:12px}`,
  })}
<h1>${esc(title)}</h1>
<p>checkpoint <code>${esc(a.model.checkpoint)}</code>; data <code>${esc(a.data)}</code> (splits ${a.splits.map(esc).join(', ')}; only read, never changed).
Wrong labels: confident learning (Northcutt et al. 2021, prune by noise rate) on ${esc(method)}. Suggestions are in <code>suggestions.csv</code>.</p>
<div class="kpi">
<div>photos <b>${n}</b></div><div>flagged labels <b>${flagged.length}</b> (${pct(n ? flagged.length / n : 0)})</div>
<div>estimated wrong labels <b>${a.labels.estimatedErrors.toFixed(0)}</b></div>
<div>exact copies across splits or labels <b>${a.duplicates.exact.length}</b></div>
<div>near duplicates (≤ ${a.duplicates.bits} bits) across classes or splits <b>${a.duplicates.nearTotal}</b></div>
<div>bad files <b>${a.badFiles.length}</b></div>
</div>
<div class="grid"><div><h2>Flagged photos per given class</h2><div id="perclass" class="chart"></div></div>
<div><h2>Probability of the given label</h2><div id="quality" class="chart"></div></div></div>
<h2>Likely wrong labels (${shown.length} of ${flagged.length} shown, most suspect first)</h2>
${suspectHtml.join('\n') || '<p>none flagged</p>'}
<h2>Look-alike class pairs (${a.lookalikes.length})</h2>
${pairHtml.join('\n') || '<p>none</p>'}
<h2>Exact copies across splits or with different labels (${a.duplicates.exact.length})</h2>
${exactHtml.join('\n') || '<p>none</p>'}
<h2>Near duplicates across classes or splits (${a.duplicates.near.length} of ${a.duplicates.nearTotal} shown)</h2>
${nearHtml.join('\n') || '<p>none</p>'}
<h2>Bad files (${a.badFiles.length})</h2>
<table><tr><th>path</th><th>message</th></tr>${badRows || '<tr><td colspan="2">none</td></tr>'}</table>
<script>${echartsSource()}</script>
<script>
const T = ${scriptJson(images)};
document.querySelectorAll('img[data-t]').forEach((i) => { i.src = T[Number(i.dataset.t)]; });
const D = ${scriptJson(data)};
const chart = (id, opt) => { const c = echarts.init(document.getElementById(id)); c.setOption(opt); window.addEventListener('resize', () => c.resize()); };
chart('perclass', { tooltip: { trigger: 'axis' }, grid: { bottom: 90 },
  xAxis: { type: 'category', data: D.perClass.map((p) => p[0]), axisLabel: { rotate: 60, fontSize: 9 } },
  yAxis: { type: 'value', name: 'flagged' }, series: [{ type: 'bar', data: D.perClass.map((p) => p[1]) }] });
chart('quality', { tooltip: { trigger: 'axis' }, legend: {},
  xAxis: { type: 'category', name: 'p(given)', nameLocation: 'middle', nameGap: 28, data: D.binLabels },
  yAxis: { type: 'value', name: 'photos' },
  series: [{ name: 'flagged', type: 'bar', stack: 'all', data: D.flagged },
    { name: 'kept', type: 'bar', stack: 'all', data: D.kept }] });
</script>
</body></html>
`;
}
