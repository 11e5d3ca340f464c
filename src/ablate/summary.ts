// The summary of an ablation: per cell and metric the mean and sample sd over the seeds that finished, and
// the difference to the base cell with Welch's 95% t interval. Written as summary.json and summary.md.
import { existsSync, readFileSync } from 'node:fs';
import { RunFolder } from '../run/run-folder.js';
import { readEvalFile } from '../run/eval-file.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';
import { join } from 'node:path';
import { ablateLayout } from './runner.js';
import { runName, type Plan } from './plan.js';
import { moments, welchDifference, type Difference, type Moments } from './stats.js';

/** Metrics an eval file gives per run (fractions in [0, 1]). */
export const ABLATE_METRICS = ['top1', 'top5', 'meanClassAccuracy'] as const;
export type AblateMetric = (typeof ABLATE_METRICS)[number];

export interface CellSummary {
  id: string;
  settings: [string, string][];
  training: string;
  /** Seeds whose evaluation is there, and each one's metrics. */
  seeds: number[];
  values: Record<AblateMetric, number[]>;
  stats: Record<AblateMetric, Moments>;
  /** This cell minus the base cell (Welch); absent for the base itself. */
  vsBase?: Record<AblateMetric, Difference>;
  /** Minutes per training run of the cell's training (sum of its epochs' times), mean over seeds; null when unknown. */
  trainMinutes: number | null;
}

export interface AblateSummary {
  format: 'goodsrec-ablate-1';
  split: string;
  seeds: number[];
  interval: string;
  metrics: readonly AblateMetric[];
  cells: CellSummary[];
}

/**
 * Minutes of training per run, mean over the seeds: the sum of the epochs' times in the run's metrics (a run
 * that was stopped and resumed counts every epoch, which train's own result does not). null when unknown.
 */
function trainMinutes(out: string, training: string, seeds: readonly number[]): number | null {
  const L = ablateLayout(out);
  const ms: number[] = [];
  for (const s of seeds) {
    const run = new RunFolder(L.runDir(runName(training, s)));
    if (!run.has('metrics')) continue;
    let seconds = 0;
    for (const line of readFileSync(run.path('metrics'), 'utf8').split('\n')) {
      if (!line.trim()) continue;
      try {
        const r = JSON.parse(line) as { type?: unknown; seconds?: unknown };
        if (r.type === 'epoch' && typeof r.seconds === 'number') seconds += r.seconds;
      } catch {
        // A torn last line of a killed run: its epoch is not counted.
      }
    }
    if (seconds > 0) ms.push(seconds / 60);
  }
  return ms.length ? moments(ms).mean : null;
}

/** Reads every finished evaluation of the plan's cells. */
export function summarize(plan: Plan, out: string, split: string): AblateSummary {
  const L = ablateLayout(out);
  const cells: CellSummary[] = plan.cells.map((c) => {
    const seeds: number[] = [];
    const values = { top1: [], top5: [], meanClassAccuracy: [] } as Record<AblateMetric, number[]>;
    for (const s of plan.seeds) {
      const f = L.evalResult(`${c.id}-s${s}`);
      if (!existsSync(f)) continue;
      const m = readEvalFile(f).metrics;
      seeds.push(s);
      for (const k of ABLATE_METRICS) values[k].push(m[k]);
    }
    const stats = Object.fromEntries(ABLATE_METRICS.map((k) => [k, moments(values[k])])) as Record<
      AblateMetric,
      Moments
    >;
    return {
      id: c.id,
      settings: c.settings.map(([k, v]) => [k, v] as [string, string]),
      training: c.training,
      seeds,
      values,
      stats,
      trainMinutes: trainMinutes(out, c.training, seeds),
    };
  });
  const base = cells.find((c) => c.id === 'base');
  if (base)
    for (const c of cells)
      if (c !== base)
        c.vsBase = Object.fromEntries(
          ABLATE_METRICS.map((k) => [k, welchDifference(base.values[k], c.values[k])]),
        ) as Record<AblateMetric, Difference>;
  return {
    format: 'goodsrec-ablate-1',
    split,
    seeds: plan.seeds,
    interval: '95% Welch t interval of the difference of means (unequal variances, Welch-Satterthwaite df)',
    metrics: ABLATE_METRICS,
    cells,
  };
}

const METRIC_LABEL: Record<AblateMetric, string> = {
  top1: 'top-1',
  top5: 'top-5',
  meanClassAccuracy: 'mean class acc.',
};
const pct = (v: number): string => (Number.isFinite(v) ? (100 * v).toFixed(2) : '-');
const signed = (v: number): string => (Number.isFinite(v) ? `${v >= 0 ? '+' : ''}${(100 * v).toFixed(2)}` : '-');

/** "+1.23 [-0.40, +2.86]" in points, or the bare difference when no interval exists. */
export function formatDifference(d: Difference | undefined): string {
  if (!d) return '';
  return d.low === null || d.high === null ? signed(d.diff) : `${signed(d.diff)} [${signed(d.low)}, ${signed(d.high)}]`;
}

/** The summary as a Markdown table (percent; differences in points with their interval). */
export function summaryMarkdown(s: AblateSummary, metrics: readonly AblateMetric[] = ['top1', 'top5']): string {
  const head = ['cell', 'seeds'];
  for (const m of metrics)
    head.push(`${METRIC_LABEL[m]} mean ± sd (%)`, `Δ ${METRIC_LABEL[m]} vs base [95% CI] (points)`);
  head.push('train min/run');
  const rows = s.cells.map((c) => {
    const r = [c.id, c.seeds.length ? c.seeds.join(',') : 'none yet'];
    for (const m of metrics) {
      const st = c.stats[m];
      r.push(
        st.n ? `${pct(st.mean)} ± ${st.n > 1 ? pct(st.sd) : '-'}` : '-',
        c.vsBase ? formatDifference(c.vsBase[m]) : '(base)',
      );
    }
    r.push(c.trainMinutes === null ? '-' : c.trainMinutes.toFixed(1));
    return r;
  });
  return [
    `Evaluated on split '${s.split}'. Differences: ${s.interval}; a cell's interval excludes 0 when its sign is clear at this number of seeds.`,
    '',
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
    '',
  ].join('\n');
}

/** Writes summary.json and summary.md into `out`; returns the Markdown. */
export function writeSummary(s: AblateSummary, out: string): string {
  const md = summaryMarkdown(s);
  writeJsonAtomic(join(out, 'summary.json'), s);
  writeFileAtomic(join(out, 'summary.md'), md);
  return md;
}
