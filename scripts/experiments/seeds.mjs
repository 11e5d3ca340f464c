#!/usr/bin/env node
// Accuracy at equal budget over several seeds (issue 14, items 3 and 5): ResNet-50 at 128 px from scratch
// with the recipe on Grocery Store's train split, tested on its test split, for `goodsrec train` and its
// torchvision twin (bench/train_torchvision.py), fp32 and/or bf16 autocast. Two jobs at a time, each with one
// compute thread and one loader worker, so each holds one of the two cores. The goodsrec side is a use of
// `goodsrec ablate` (OUT/goodsrec: the base is the first --amp, the others vary it; resumable, its own
// summary.md/html with Welch intervals); the torchvision side cannot be expressed as goodsrec runs and keeps
// its own job loop here (a job whose result file exists is not run again).
//
//   node scripts/experiments/seeds.mjs [--seeds 0,1,2] [--epochs 4] [--size 128] [--sides goodsrec,torchvision]
//       [--amp off,bf16] [--out /tmp/exp/seeds] [--jobs 2]
//
// Prints and writes (OUT/summary.md, OUT/summary.json) the mean, sample standard deviation and range of test
// top-1/top-5 per side and precision.
import { spawn, spawnSync } from 'node:child_process';
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

// The torchvision side's jobs (the goodsrec side is one `goodsrec ablate`).
const jobs = [];
for (const seed of seeds)
  for (const amp of list(o.amp))
    if (list(o.sides).includes('torchvision')) jobs.push({ amp, seed, name: `torchvision-${amp}-s${seed}` });

/** The recipe both sides run (bench/train_torchvision.py's docstring), one core and one loader worker each. */
const RECIPE = { batch: 32, warmupEpochs: 0.5, cutout: 8, threads: 1, workers: 1 };

/** The goodsrec side: one `goodsrec ablate` over the seeds and precisions (RECIPE, one thread per job). */
function runGoodsrecSide(amps) {
  if (seeds.some((s, i) => s !== i))
    throw new Error(`--seeds ${o.seeds}: the goodsrec side (goodsrec ablate) runs seeds 0..N-1`);
  const sets = [
    `data.root=${o.data}`,
    'model.name=resnet50',
    `input.size=${size}`,
    `batchSize=${RECIPE.batch}`,
    `schedule.epochs=${epochs}`,
    `schedule.warmupEpochs=${RECIPE.warmupEpochs}`,
    'schedule.perIteration=true',
    `augment.cutout=${RECIPE.cutout}`,
    `data.workers=${RECIPE.workers}`,
    `validateEvery=${epochs}`,
    `checkpointEvery=${epochs}`,
    `amp=${amps[0]}`,
  ];
  const args = [
    join(REPO, 'dist', 'src', 'cli', 'main.js'),
    'ablate',
    ...sets.flatMap((kv) => ['--set', kv]),
    ...(amps.length > 1 ? ['--vary', `amp=${amps.slice(1).join(',')}`] : []),
    '--seeds',
    String(seeds.length),
    '--parallel',
    o.jobs,
    '--threads',
    String(RECIPE.threads),
    '--out',
    join(out, 'goodsrec'),
  ];
  console.log('goodsrec side: goodsrec ablate (its progress below)');
  const r = spawnSync(process.execPath, args, { cwd: REPO, stdio: 'inherit' });
  if (r.status !== 0) failures.push(`goodsrec ablate exited ${r.status}; see ${join(out, 'goodsrec', 'logs')}`);
}

async function recipeNorm() {
  const { DEFAULT_CONFIG } = await import(join(REPO, 'dist', 'src', 'run', 'config.js'));
  return JSON.stringify({ mean: DEFAULT_CONFIG.input.mean, std: DEFAULT_CONFIG.input.std });
}
const NORM = await recipeNorm();

function torchvisionCommand(j) {
  const result = join(out, `${j.name}.json`);
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
  };
}

function runJob(j) {
  const c = torchvisionCommand(j);
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
    p.stdout.on('data', (d) => {
      log.write(d);
    });
    p.stderr.on('data', (d) => log.write(d));
    p.on('exit', (code) => {
      log.end();
      if (code !== 0) return rej(new Error(`${j.name} exited ${code}; see ${join(out, `${j.name}.log`)}`));
      renameSync(`${c.result}.partial`, c.result);
      console.log(`${j.name}: finished in ${((Date.now() - t0) / 60000).toFixed(1)} min`);
      res();
    });
  });
}

const failures = [];
if (list(o.sides).includes('goodsrec')) runGoodsrecSide(list(o.amp));
const queue = [...jobs];
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
// Every finished run, not only this invocation's: seeds can be added one call at a time.
const groups = new Map();
const ablateSummary = join(out, 'goodsrec', 'summary.json');
if (existsSync(ablateSummary)) {
  // goodsrec ablate's cells: 'base' is its first --amp, 'amp=X' the others.
  const first = JSON.parse(readFileSync(join(out, 'goodsrec', 'plan.json'), 'utf8')).spec.set.find((kv) =>
    kv.startsWith('amp='),
  );
  for (const c of JSON.parse(readFileSync(ablateSummary, 'utf8')).cells) {
    const amp = c.id === 'base' ? first.slice(4) : c.id.replace(/^amp=/, '');
    const minutes = c.trainMinutes ?? Number.NaN;
    const rs = c.seeds.map((seed, i) => ({ seed, top1: c.values.top1[i], top5: c.values.top5[i], minutes }));
    if (rs.length) groups.set(`goodsrec ${amp === 'off' ? 'fp32' : amp}`, rs);
  }
}
const done = readdirSync(out)
  .map((f) => /^torchvision-(off|bf16)-s(\d+)\.json$/.exec(f))
  .filter((m) => m !== null)
  .map((m) => ({ amp: m[1], seed: Number(m[2]), file: join(out, m[0]) }))
  .sort((a, b) => a.amp.localeCompare(b.amp) || a.seed - b.seed);
for (const j of done) {
  const key = `torchvision ${j.amp === 'off' ? 'fp32' : j.amp}`;
  if (!groups.has(key)) groups.set(key, []);
  const r = JSON.parse(readFileSync(j.file, 'utf8'));
  groups.get(key).push({ seed: j.seed, top1: r.top1, top5: r.top5, minutes: r.wallSeconds / 60 });
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
