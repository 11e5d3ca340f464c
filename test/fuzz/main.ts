/**
 * Fuzzer process: runs parsers over mutated inputs and prints the counts. scripts/fuzz/run.mjs (npm run fuzz)
 * starts it under the sanitizers, one process per parser, and restarts it after a crash.
 * Usage: node dist/test/fuzz/main.js [--count N] [--seed S] [--start K] [--only a,b] [--skip i,j]
 *        [--dir WORK] [--stats FILE]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { formatStats, runCampaign, type ParserStats } from './campaign.js';
import { allTargets } from './targets.js';

const { values: a } = parseArgs({
  options: {
    count: { type: 'string', default: '100000' },
    seed: { type: 'string', default: '13' },
    start: { type: 'string', default: '0' },
    only: { type: 'string' },
    skip: { type: 'string', default: '' },
    dir: { type: 'string' },
    stats: { type: 'string' },
    resume: { type: 'string' },
  },
});
const only = a.only ? new Set(a.only.split(',')) : null;
const targets = allTargets().filter((t) => !only || only.has(t.name));
if (only && targets.length !== only.size) throw new Error(`--only: unknown parser in ${a.only}`);
const dir = a.dir ?? join(tmpdir(), `goodsrec-fuzz-${process.pid}`);
mkdirSync(dir, { recursive: true });
const seed = Number(a.seed),
  start = Number(a.start),
  count = Number(a.count);
const skip = new Set(a.skip ? a.skip.split(',').map(Number) : []);

// Which addon files this process loaded: the runner checks they are the sanitizer builds.
const loaded = (): string[] =>
  (process.report.getReport() as unknown as { sharedObjects: string[] }).sharedObjects.filter((p) =>
    /goodsrec_(native|image)\.node$/.test(p),
  );

// Every input is new: libvips' operation cache would only hold memory (as in the loader's workers).
sharp.cache(false);
const rows: ParserStats[] = [];
for (const t of targets) {
  const prior = a.resume ? (JSON.parse(a.resume) as ParserStats) : undefined;
  const stats = await runCampaign(
    t,
    {
      seed,
      start,
      count,
      dir,
      skip,
      progress: (s, next) => {
        if (a.stats)
          writeFileSync(
            a.stats,
            JSON.stringify({ ...s, next, addons: loaded(), rssMB: process.memoryUsage.rss() / 2 ** 20 }),
          );
      },
    },
    prior,
  );
  rows.push(stats);
  if (a.stats)
    writeFileSync(
      a.stats,
      JSON.stringify({
        ...stats,
        next: start + count,
        addons: loaded(),
        done: true,
        rssMB: process.memoryUsage.rss() / 2 ** 20,
      }),
    );
}
console.log(formatStats(rows));
for (const r of rows)
  for (const f of r.findings) console.log(`finding ${r.parser} #${f.index}: ${f.error}: ${f.message}`);
process.exitCode = rows.some((r) => r.other > 0) ? 1 : 0;
