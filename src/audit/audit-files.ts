// What `goodsrec audit` writes into its output folder: audit.json (everything), suggestions.csv (one row per
// photo to look at: a likely wrong label or a duplicate), lookalikes.csv (class pairs) and audit.html. Each
// file is written atomically; the dataset is never among them.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';
import type { AuditResult } from './audit.js';

/** One CSV field: quoted when it holds a comma, quote or line break (RFC 4180). */
export function csvField(v: string | number): string {
  const s = typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(6)) : v;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

const csv = (header: string[], rows: (string | number)[][]): string =>
  [header, ...rows].map((r) => r.map(csvField).join(',')).join('\n') + '\n';

export const SUGGESTION_COLUMNS = [
  'kind',
  'path',
  'split',
  'given_class',
  'suggested_class',
  'score',
  'other_path',
  'note',
] as const;

/** suggestions.csv: flagged labels (most suspect first; score = probability of the given label), then duplicates. */
export function suggestionsCsv(a: AuditResult): string {
  const rows: (string | number)[][] = [];
  for (const p of a.labels.photos)
    if (p.flagged)
      rows.push([
        'label',
        p.path,
        p.split,
        p.given,
        p.suggested,
        p.quality,
        '',
        `p(${p.suggested}) ${p.suggestedProbability.toFixed(3)}: relabel as suggested, or remove`,
      ]);
  for (const g of a.duplicates.exact) {
    const [first, ...copies] = g.files;
    for (const f of copies) {
      const note = [
        f.split !== first!.split ? `the same file in ${first!.split} and ${f.split}: keep it in one split` : '',
        f.class !== first!.class ? `labelled ${first!.class} and ${f.class}: keep one label` : '',
      ].filter(Boolean);
      rows.push(['exact-duplicate', f.path, f.split, f.class, first!.class, 0, first!.path, note.join('; ')]);
    }
  }
  for (const d of a.duplicates.near) {
    const note = [
      d.crossSplit ? `near copy in ${d.a.split} and ${d.b.split}: keep it in one split` : '',
      d.crossClass ? `labelled ${d.a.class} and ${d.b.class}: check both` : '',
    ].filter(Boolean);
    rows.push(['near-duplicate', d.b.path, d.b.split, d.b.class, d.a.class, d.bits, d.a.path, note.join('; ')]);
  }
  return csv([...SUGGESTION_COLUMNS], rows);
}

/** lookalikes.csv: the look-alike class pairs, most confused first. */
export function lookalikesCsv(a: AuditResult): string {
  return csv(
    ['class_a', 'class_b', 'a_as_b', 'b_as_a', 'confusion_rate', 'centroid_similarity', 'a_photos', 'b_photos'],
    a.lookalikes.map((l) => [l.a, l.b, l.aAsB, l.bAsA, l.confusionRate, l.centroidSimilarity, l.aPhotos, l.bPhotos]),
  );
}

/** Writes the audit's files into `dir` (created when missing); returns their paths. */
export function writeAuditFiles(
  dir: string,
  a: AuditResult,
  html: string,
): Record<'json' | 'csv' | 'lookalikes' | 'html', string> {
  mkdirSync(dir, { recursive: true });
  const files = {
    json: join(dir, 'audit.json'),
    csv: join(dir, 'suggestions.csv'),
    lookalikes: join(dir, 'lookalikes.csv'),
    html: join(dir, 'audit.html'),
  };
  writeFileAtomic(files.json, JSON.stringify(a, null, 1));
  writeFileAtomic(files.csv, suggestionsCsv(a));
  writeFileAtomic(files.lookalikes, lookalikesCsv(a));
  writeFileAtomic(files.html, html);
  return files;
}
