#!/usr/bin/env node
// The logit-adjusted loss on a synthetic long tail (issue 28, item 3): for each seed, the same training with
// loss.logitAdjust = 0 (plain cross-entropy) and = tau, then `goodsrec eval` on the balanced test split;
// accuracy over all test photos and by training frequency (many > 100, medium 20-100, few < 20 train photos).
// Jobs run two at a time, each with one compute thread and one loader worker. A job whose result file exists is
// not run again; an interrupted training resumes from its last checkpoint.
//
//   node scripts/make-rp2k-like.mjs --scale 0.01 --classes 100 --test-per-class 10      # the data (~4k photos)
//   node scripts/experiments/long-tail.mjs [--data /work/exp/rp2k/data-0.01-c100-t10] [--seeds 0,1,2]
//       [--taus 0,1] [--model resnet18] [--size 40] [--epochs 6] [--out /work/exp/rp2k/lt] [--jobs 2]
//       [--cli dist/src/cli/main.js]
//
// Writes OUT/summary.md and OUT/summary.json: per tau, mean, sample standard deviation and range over the seeds.
import { spawn } from 'node:child_process';
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values: o } = parseArgs({
  options: {
    data: { type: 'string', default: '/work/exp/rp2k/data-0.01-c100-t10' },
    seeds: { type: 'string', default: '0,1,2' },
    taus: { type: 'string', default: '0,1' },
    model: { type: 'string', default: 'resnet18' },
    size: { type: 'string', default: '40' },
    epochs: { type: 'string', default: '6' },
    batch: { type: 'string', default: '64' },
    out: { type: 'string', default: '/work/exp/rp2k/lt' },
    jobs: { type: 'string', default: '2' },
    cli: { type: 'string', default: join(REPO, 'dist', 'src', 'cli', 'main.js') },
  },
});
const list = (s) => s.split(',').filter(Boolean).map(Number);
const out = resolve(o.out);
const data = resolve(o.data);
const key = JSON.parse(readFileSync(join(data, 'key.json'), 'utf8'));
mkdirSync(out, { recursive: true });

const jobs = [];
for (const seed of list(o.seeds)) for (const tau of list(o.taus)) jobs.push({ seed, tau, name: `tau${tau}-s${seed}` });

function spawnLogged(args, log) {
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, [o.cli, ...args], {
      env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    p.stdout.on('data', (d) => {
      stdout += d;
      log.write(d);
    });
    p.stderr.on('data', (d) => log.write(d));
    p.on('exit', (code) => (code === 0 ? res(stdout) : rej(new Error(`goodsrec ${args[0]} exited ${code}`))));
  });
}

async function runJob(j) {
  const result = join(out, `${j.name}.json`);
  if (existsSync(result)) return console.log(`${j.name}: done already`);
  const runDir = join(out, j.name);
  const log = createWriteStream(join(out, `${j.name}.log`), { flags: 'a' });
  const t0 = Date.now();
  console.log(`${j.name}: started`);
  if (!existsSync(join(runDir, 'eval-test.json'))) {
    const train = existsSync(join(runDir, 'config.json'))
      ? ['train', '--resume', runDir]
      : [
          'train',
          '--data',
          join(data, 'all'),
          '--model',
          o.model,
          '--size',
          o.size,
          '--batch-size',
          o.batch,
          '--epochs',
          o.epochs,
          ...[
            `loss.logitAdjust=${j.tau}`,
            `seed=${j.seed}`,
            'threads=1',
            'data.workers=1',
            'augment.cutout=0',
            `validateEvery=${o.epochs}`,
            `checkpointEvery=${o.epochs}`,
          ].flatMap((kv) => ['--set', kv]),
          '--out',
          out,
          '--name',
          j.name,
        ];
    await spawnLogged(train, log);
    await spawnLogged(['eval', runDir, '--split', 'test'], log);
  }
  const fig = figures(JSON.parse(readFileSync(join(runDir, 'eval-test.json'), 'utf8')));
  log.end();
  if (!fig) throw new Error(`${join(runDir, 'eval-test.json')}: no metrics.byFrequency (written by an older goodsrec)`);
  writeFileSync(`${result}.partial`, JSON.stringify({ ...j, minutes: (Date.now() - t0) / 60000, ...fig }));
  renameSync(`${result}.partial`, result);
  console.log(`${j.name}: finished in ${((Date.now() - t0) / 60000).toFixed(1)} min`);
}

/**
 * Accuracy over all test photos and per training-frequency bucket (top-1 over photos, and the mean of the
 * classes' accuracies), as `goodsrec eval` writes them (metrics.byFrequency: src/eval/frequency.ts).
 */
function figures(ev) {
  const f = ev.metrics.byFrequency;
  if (!f) return null; // an eval file from before byFrequency existed
  const out = { all: ev.metrics.top1, allClassMean: ev.metrics.meanClassAccuracy };
  for (const b of ['many', 'medium', 'few']) {
    out[b] = f[b].top1;
    out[`${b}ClassMean`] = f[b].meanClassAccuracy;
  }
  return out;
}

const queue = [...jobs];
const failures = [];
await Promise.all(
  Array.from({ length: Number(o.jobs) }, async () => {
    for (let j = queue.shift(); j; j = queue.shift())
      await runJob(j).catch((e) => failures.push(`${j.name}: ${e.message}`));
  }),
);

const stats = (xs) => {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : Number.NaN;
  return { mean, sd, min: Math.min(...xs), max: Math.max(...xs) };
};
// Figures are re-read from each run's eval file where it is at hand (older result files lack the class means).
const done = readdirSync(out)
  .filter((f) => /^tau[\d.]+-s\d+\.json$/.test(f))
  .map((f) => {
    const r = JSON.parse(readFileSync(join(out, f), 'utf8'));
    const ev = join(out, r.name, 'eval-test.json');
    return { ...r, ...(existsSync(ev) ? figures(JSON.parse(readFileSync(ev, 'utf8'))) : null) };
  });
const counts = Object.values(key.trainCounts);
const nClasses = (lo, hi) => counts.filter((n) => n >= lo && n <= hi).length;
const pct = (x) => (100 * x).toFixed(1);
/** 'balanced, n per class' or the range of test photos per class, from the test split's folders. */
function testShape() {
  const dir = join(data, 'all', 'test');
  const n = readdirSync(dir).map((c) => readdirSync(join(dir, c)).length);
  const lo = Math.min(...n);
  const hi = Math.max(...n);
  return lo === hi ? `balanced, ${lo} per class` : `${lo}-${hi} per class`;
}
const lines = [
  `${o.model}, ${o.size} px, batch ${o.batch}, ${o.epochs} epochs, 1 thread per run; ${data}: ${counts.length} classes ` +
    `(${nClasses(101, Infinity)} many, ${nClasses(20, 100)} medium, ${nClasses(0, 19)} few), ` +
    `${key.photos.train} train photos, test ${key.photos.test} (${testShape()})`,
  '',
  '| loss | seeds | overall top-1 (%) | many (%) | medium (%) | few (%) |',
  '|---|---|---|---|---|---|',
];
const BUCKETS = ['all', 'many', 'medium', 'few'];
const summary = {};
const tables = { photos: [], classMean: [] };
for (const tau of [...new Set(done.map((r) => r.tau))].sort((a, b) => a - b)) {
  const rs = done.filter((r) => r.tau === tau).sort((a, b) => a.seed - b.seed);
  const side = { runs: rs };
  for (const [table, suffix] of [
    ['photos', ''],
    ['classMean', 'ClassMean'],
  ]) {
    // a bucket without classes (none with > 100 photos at 10 % scale) or a figure an old result file lacks: '-'
    const cell = (b) => {
      const xs = rs.map((r) => r[b + suffix]);
      if (xs.some((x) => typeof x !== 'number')) return '-';
      const st = stats(xs);
      side[b + suffix] = st;
      return `${pct(st.mean)} ± ${rs.length > 1 ? pct(st.sd) : '-'} (${xs.map(pct).join(', ')})`;
    };
    tables[table].push(
      `| ${tau === 0 ? 'cross-entropy' : `logit-adjusted, tau ${tau}`} | ${rs.map((r) => r.seed).join(',')} | ` +
        `${BUCKETS.map(cell).join(' | ')} |`,
    );
  }
  summary[`tau=${tau}`] = side;
}
lines.push(...tables.photos, '', "Mean of the classes' accuracies (each class counts once):", '');
lines.push('| loss | seeds | overall (%) | many (%) | medium (%) | few (%) |', lines[3], ...tables.classMean);
writeFileSync(join(out, 'summary.json'), JSON.stringify(summary, null, 2));
writeFileSync(join(out, 'summary.md'), lines.join('\n') + '\n');
console.log(lines.join('\n'));
if (failures.length) {
  console.error(`failed:\n  ${failures.join('\n  ')}`);
  process.exit(1);
}
