#!/usr/bin/env node
// Accuracy at equal budget over several seeds (issue 14, items 3 and 5): ResNet-50 at 128 px from scratch
// with the recipe on Grocery Store's train split, tested on its test split, for `goodsrec train` and its
// torchvision twin (bench/train_torchvision.py), fp32 and/or bf16 autocast. Two jobs at a time, each with one
// compute thread and one loader worker, so each holds one of the two cores. A job whose result file exists is
// not run again: the experiment resumes after an interruption.
//
//   node scripts/experiments/seeds.mjs [--seeds 0,1,2] [--epochs 4] [--size 128] [--sides goodsrec,torchvision]
//       [--amp off,bf16] [--out /tmp/exp/seeds] [--jobs 2]
//
// Prints and writes (OUT/summary.md, OUT/summary.json) the mean, sample standard deviation and range of test
// top-1/top-5 per side and precision.
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
    seeds: { type: 'string', default: '0,1,2' },
    epochs: { type: 'string', default: '4' },
    size: { type: 'string', default: '128' },
    sides: { type: 'string', default: 'goodsrec,torchvision' },
    amp: { type: 'string', default: 'off' },
    out: { type: 'string', default: '/tmp/exp/seeds' },
    data: { type: 'string', default: join(REPO, '..', 'shared', 'datasets', 'grocery-store') },
    jobs: { type: 'string', default: '2' },
  },
});
const list = (s) => s.split(',').filter(Boolean);
const seeds = list(o.seeds).map(Number);
const epochs = Number(o.epochs);
const size = Number(o.size);
const out = resolve(o.out);
for (const s of list(o.sides)) if (!['goodsrec', 'torchvision'].includes(s)) throw new Error(`--sides: unknown '${s}'`);
for (const a of list(o.amp)) if (!['off', 'bf16'].includes(a)) throw new Error(`--amp: unknown '${a}'`);
if (!Number.isInteger(size) || size < 32) throw new Error(`--size ${o.size}: expected an integer >= 32`);
if (!Number.isInteger(epochs) || epochs < 1) throw new Error(`--epochs ${o.epochs}: expected an integer >= 1`);
if (seeds.some((s) => !Number.isInteger(s) || s < 0)) throw new Error(`--seeds ${o.seeds}: expected integers >= 0`);
mkdirSync(out, { recursive: true });

const jobs = [];
for (const seed of seeds)
  for (const amp of list(o.amp))
    for (const side of list(o.sides)) jobs.push({ side, amp, seed, name: `${side}-${amp}-s${seed}` });

/** The recipe both sides run (bench/train_torchvision.py's docstring), one core and one loader worker each. */
const RECIPE = { batch: 32, warmupEpochs: 0.5, cutout: 8, threads: 1, workers: 1 };

/** The command of one job; both sides get RECIPE. */
function command(j) {
  const result = join(out, `${j.name}.json`);
  if (j.side !== 'goodsrec') return torchvisionCommand(j, result);
  const cli = join(REPO, 'dist', 'src', 'cli', 'main.js');
  const runDir = join(out, j.name);
  // A goodsrec run that was interrupted continues from its last checkpoint (the torchvision twin starts over).
  const args = existsSync(join(runDir, 'config.json'))
    ? [cli, 'train', '--resume', runDir, '--json']
    : [
        cli,
        'train',
        '--data',
        o.data,
        '--model',
        'resnet50',
        '--size',
        String(size),
        '--batch-size',
        String(RECIPE.batch),
        '--epochs',
        String(epochs),
        ...[
          `schedule.warmupEpochs=${RECIPE.warmupEpochs}`,
          'schedule.perIteration=true',
          `augment.cutout=${RECIPE.cutout}`,
          `threads=${RECIPE.threads}`,
          `data.workers=${RECIPE.workers}`,
          `validateEvery=${epochs}`,
          `checkpointEvery=${epochs}`,
          `seed=${j.seed}`,
          `amp=${j.amp}`,
        ].flatMap((kv) => ['--set', kv]),
        '--out',
        out,
        '--name',
        j.name,
        '--json',
      ];
  return { cmd: process.execPath, args, env: {}, result, stdoutIsResult: true };
}

async function recipeNorm() {
  const { DEFAULT_CONFIG } = await import(join(REPO, 'dist', 'src', 'run', 'config.js'));
  return JSON.stringify({ mean: DEFAULT_CONFIG.input.mean, std: DEFAULT_CONFIG.input.std });
}
const NORM = await recipeNorm();

function torchvisionCommand(j, result) {
  return {
    cmd: '/usr/bin/python3',
    args: [
      join(REPO, 'bench', 'train_torchvision.py'),
      '--data',
      o.data,
      '--size',
      String(size),
      '--batch-size',
      String(RECIPE.batch),
      '--epochs',
      String(epochs),
      '--warmup-epochs',
      String(RECIPE.warmupEpochs),
      '--cutout',
      String(RECIPE.cutout),
      '--threads',
      String(RECIPE.threads),
      '--workers',
      String(RECIPE.workers),
      '--seed',
      String(j.seed),
      '--amp',
      j.amp,
      '--out',
      `${result}.partial`,
    ],
    env: { OMP_NUM_THREADS: String(RECIPE.threads), GOODSREC_NORM: NORM },
    result,
    stdoutIsResult: false,
  };
}

function runJob(j) {
  const c = command(j);
  if (existsSync(c.result)) {
    console.log(`${j.name}: done already`);
    return Promise.resolve();
  }
  const t0 = Date.now();
  console.log(`${j.name}: started`);
  return new Promise((res, rej) => {
    const p = spawn(c.cmd, c.args, { cwd: REPO, env: { ...process.env, ...c.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    // The log grows while the job runs (progress lines of both sides), the result is only renamed in at the end.
    const log = createWriteStream(join(out, `${j.name}.log`));
    let stdout = '';
    p.stdout.on('data', (d) => {
      stdout += d;
      if (!c.stdoutIsResult) log.write(d);
    });
    p.stderr.on('data', (d) => log.write(d));
    p.on('exit', (code) => {
      log.end();
      if (code !== 0) return rej(new Error(`${j.name} exited ${code}; see ${join(out, `${j.name}.log`)}`));
      if (c.stdoutIsResult) writeFileSync(`${c.result}.partial`, stdout);
      renameSync(`${c.result}.partial`, c.result);
      console.log(`${j.name}: finished in ${((Date.now() - t0) / 60000).toFixed(1)} min`);
      res();
    });
  });
}

/** top-1, top-5 and wall time of a finished job, whichever side wrote it. */
function figures(j) {
  const r = JSON.parse(readFileSync(join(out, `${j.name}.json`), 'utf8'));
  if (j.side === 'goodsrec') return { top1: r.lastVal.top1, top5: r.lastVal.top5, minutes: r.seconds / 60 };
  return { top1: r.top1, top5: r.top5, minutes: r.wallSeconds / 60 };
}

const queue = [...jobs];
const failures = [];
await Promise.all(
  Array.from({ length: Number(o.jobs) }, async () => {
    for (let j = queue.shift(); j; j = queue.shift()) await runJob(j).catch((e) => failures.push(e.message));
  }),
);

const stats = (xs) => {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : Number.NaN;
  return { mean, sd, min: Math.min(...xs), max: Math.max(...xs) };
};
// Every finished run in the folder, not only this invocation's: seeds can be added one call at a time.
const done = readdirSync(out)
  .map((f) => /^(goodsrec|torchvision)-(off|bf16)-s(\d+)\.json$/.exec(f))
  .filter((m) => m !== null)
  .map((m) => ({ side: m[1], amp: m[2], seed: Number(m[3]), name: `${m[1]}-${m[2]}-s${m[3]}` }))
  .sort((a, b) => a.side.localeCompare(b.side) || a.amp.localeCompare(b.amp) || a.seed - b.seed);
const groups = new Map();
for (const j of done) {
  const key = `${j.side} ${j.amp === 'off' ? 'fp32' : j.amp}`;
  if (!groups.has(key)) groups.set(key, []);
  groups.get(key).push({ seed: j.seed, ...figures(j) });
}
const pct = (x) => (100 * x).toFixed(2);
const lines = [
  `ResNet-50, ${size} px, batch ${RECIPE.batch}, ${epochs} epochs, Grocery Store train -> test (2485 photos), ${RECIPE.threads} thread per run`,
  '',
  '| side | seeds | top-1 per seed (%) | top-1 mean ± sd (%) | range | top-5 mean (%) | wall min/run |',
  '|---|---|---|---|---|---|---|',
];
const summary = {};
for (const [key, rs] of groups) {
  const t1 = stats(rs.map((r) => r.top1));
  const t5 = stats(rs.map((r) => r.top5));
  const wall = stats(rs.map((r) => r.minutes));
  summary[key] = { runs: rs, top1: t1, top5: t5, minutes: wall };
  lines.push(
    `| ${key} | ${rs.map((r) => r.seed).join(',')} | ${rs.map((r) => pct(r.top1)).join(', ')} | ` +
      `${pct(t1.mean)} ± ${rs.length > 1 ? pct(t1.sd) : '-'} | ${pct(t1.min)}-${pct(t1.max)} | ${pct(t5.mean)} | ${wall.mean.toFixed(1)} |`,
  );
}
writeFileSync(join(out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
writeFileSync(join(out, 'summary.md'), `${lines.join('\n')}\n`);
console.log(lines.join('\n'));
if (failures.length) {
  console.error(`${failures.length} job(s) failed:\n${failures.join('\n')}`);
  process.exit(1);
}
