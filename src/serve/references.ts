// The classes' reference photos shown on the page (`goodsrec serve --reference <dataset>`).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseCsv } from '../data/dataset.js';

/**
 * Reference photos by class name from a grocery-store style dataset (dataset/classes.csv, 'Iconic Image Path'
 * column), read with the data layer's CSV parser; names NFC-normalised like every dataset's class names.
 */
export function readReferencePhotos(datasetDir: string): Map<string, string> {
  const base = existsSync(join(datasetDir, 'dataset', 'classes.csv')) ? join(datasetDir, 'dataset') : datasetDir;
  const csv = join(base, 'classes.csv');
  if (!existsSync(csv)) throw new Error(`${datasetDir}: no classes.csv with reference photos (expected ${csv})`);
  const rows = parseCsv(readFileSync(csv, 'utf8'));
  const header = (rows[0] ?? []).map((h) => h.trim().toLowerCase());
  const nameCol = header.findIndex((c) => c.startsWith('class name'));
  const iconCol = header.findIndex((c) => c.startsWith('iconic image path'));
  if (nameCol < 0 || iconCol < 0) throw new Error(`${csv}: expected 'Class Name' and 'Iconic Image Path' columns`);
  const out = new Map<string, string>();
  for (const r of rows.slice(1)) {
    const name = r[nameCol]?.trim().normalize('NFC');
    const icon = r[iconCol]?.trim();
    if (name && icon) out.set(name, join(base, icon.replace(/^\/+/, '')));
  }
  return out;
}
