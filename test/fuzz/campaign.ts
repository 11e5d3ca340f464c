/**
 * Runs one parser over inputs [start, start + count) and counts the outcomes. Input i is derived from
 * (seed, parser, i) alone, so a run can restart after a crash at i + 1 and a finding is replayed by index.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FuzzRng } from './mutate.js';
import { targetDir, type FuzzTarget } from './targets.js';

export { formatStats, type ParserStats } from './stats.js';
import type { ParserStats } from './stats.js';

export interface CampaignOptions {
  seed: number;
  start: number;
  count: number;
  /** Work folder: <dir>/<parser>/ holds the current input; findings are copied to <dir>/findings/. */
  dir: string;
  /** Indices to skip (inputs that crashed an earlier process). */
  skip?: ReadonlySet<number>;
  /** Called every `every` inputs with the stats so far (the runner's restart point after a crash). */
  progress?: (s: ParserStats, next: number) => void;
  every?: number;
}

export function nameHash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** The bytes of input `index` for a parser (what a regression test replays). */
export function fuzzInput(t: FuzzTarget, seed: number, index: number): { bytes: Uint8Array; rng: FuzzRng } {
  const rng = new FuzzRng(seed, nameHash(t.name), index);
  return { bytes: t.makeInput(rng), rng };
}

export function emptyStats(parser: string): ParserStats {
  return {
    parser,
    inputs: 0,
    accepted: 0,
    named: 0,
    other: 0,
    crashes: 0,
    sanitizerReports: 0,
    seconds: 0,
    findings: [],
  };
}

export async function runCampaign(t: FuzzTarget, o: CampaignOptions, into = emptyStats(t.name)): Promise<ParserStats> {
  const dir = targetDir(o.dir, t);
  const path = join(dir, t.fileName);
  const current = join(dir, 'current-index');
  const t0 = performance.now();
  const every = o.every ?? 1000;
  const s = into;
  const seconds0 = s.seconds;
  for (let i = o.start; i < o.start + o.count; i++) {
    if (o.skip?.has(i)) continue;
    const { bytes, rng } = fuzzInput(t, o.seed, i);
    writeFileSync(current, String(i));
    writeFileSync(path, bytes);
    s.inputs++;
    try {
      await t.run(path, bytes, rng);
      s.accepted++;
    } catch (e) {
      if (t.isNamed(e, path)) s.named++;
      else {
        s.other++;
        const err = e instanceof Error ? e : new Error(String(e));
        if (s.findings.length < 20) {
          s.findings.push({ index: i, error: err.name, message: err.message.slice(0, 300) });
          writeFileSync(join(dir, `finding-${i}.bin`), bytes);
        }
      }
    }
    if (o.progress && (i + 1 - o.start) % every === 0) {
      s.seconds = seconds0 + (performance.now() - t0) / 1000;
      o.progress(s, i + 1);
    }
  }
  s.seconds = seconds0 + (performance.now() - t0) / 1000;
  return s;
}
