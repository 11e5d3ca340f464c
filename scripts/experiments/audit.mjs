#!/usr/bin/env node
// The label audit measured on planted noise (issue 29 item 3; docs/audit.md): flip a seeded 5 % of the
// Grocery Store training labels (in goodsrec manifests written under --out: the dataset is only read), train
// on the flipped set, audit it, and score the audit against the known flips: precision and recall of the
// flagged photos and of the k = #flips lowest-quality photos. Then train again without what the audit
// flagged (and, stage topk, without the k most suspect photos), and compare test top-1 (and a run on the
// clean labels as the ceiling, stage clean).
//
//   node scripts/experiments/audit.mjs [--data grocery-store] [--out /tmp/exp/audit] [--fraction 0.05]
//       [--flip-seed 29] [--seed 0] [--epochs 8] [--size 64] [--scores knn,model] [--drop knn]
//       [--stages prepare,flipped,audit,cleaned,topk,clean,summary]
//
// Every stage skips what it finished before (a run with its last epoch, an audit folder with its JSON), so
// the script resumes after an interruption. Trainings run one at a time, nice'd, with one compute thread and
// one loader worker (the budget of scripts/experiments/common.sh: resnet18, 64 px, batch 64).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(REPO, 'dist', 'src', 'cli', 'main.js');
const { values: o } = parseArgs({
  options: {
    data: { type: 'string', default: join(REPO, '..', 'shared', 'datasets', 'grocery-store') },
    out: { type: 'string', default: '/tmp/exp/audit' },
    fraction: { type: 'string', default: '0.05' },
    'flip-seed': { type: 'string', default: '29' },
    seed: { type: 'string', default: '0' },
    epochs: { type: 'string', default: '8' },
    size: { type: 'string', default: '64' },
    scores: { type: 'string', default: 'knn,model' },
    drop: { type: 'string', default: 'knn' },
    stages: { type: 'string', default: 'prepare,flipped,audit,cleaned,topk,clean,summary' },
    nice: { type: 'string', default: '10' },
  },
});
const out = resolve(o.out);
const list = (s) => s.split(',').filter(Boolean);
const stages = new Set(list(o.stages));
const scores = list(o.scores);
mkdirSync(out, { recursive: true });
const { loadDataset } = await import(join(REPO, 'dist', 'src', 'data', 'index.js'));
const { flipLabels, toManifest } = await import(join(REPO, 'dist', 'src', 'audit', 'flip-labels.js'));

const readJson = (p) => JSON.parse(readFileSync(p, 'utf8'));
const writeJson = (p, v) => writeFileSync(p, JSON.stringify(v, null, 1));
const manifest = (name) => join(out, `${name}.json`);

/** Runs the goodsrec CLI nice'd with one compute thread; its output goes to LOG (stdout returned). */
function goodsrec(args, log) {
  const t0 = Date.now();
  const r = spawnSync('nice', ['-n', o.nice, process.execPath, CLI, ...args], {
    cwd: REPO,
    env: { ...process.env, GOODSREC_THREADS: '1' },
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  writeFileSync(log, `$ goodsrec ${args.join(' ')}\n${r.stdout}\n${r.stderr}`);
  if (r.status !== 0 && r.status !== 3) throw new Error(`goodsrec ${args[0]} exited ${r.status}; see ${log}`);
  console.log(`  goodsrec ${args[0]}: ${((Date.now() - t0) / 60000).toFixed(1)} min`);
  return r.stdout;
}

// 1. The manifests: the clean labels, the flipped copy and the list of flips.
if (stages.has('prepare') && !existsSync(join(out, 'flips.json'))) {
  const ds = loadDataset(o.data);
  const { dataset, flips } = flipLabels(ds, { fraction: Number(o.fraction), seed: Number(o['flip-seed']) });
  writeJson(manifest('clean'), toManifest(ds));
  writeJson(manifest('flipped'), toManifest(dataset));
  writeJson(join(out, 'flips.json'), { fraction: Number(o.fraction), seed: Number(o['flip-seed']), flips });
  console.log(
    `prepare: ${flips.length} of ${ds.samples.filter((s) => s.split === 'train').length} train labels flipped`,
  );
}

/** Trains run NAME on manifest DATA (resumes an interrupted run); returns the run folder. */
function train(name, data) {
  const runDir = join(out, 'runs', name);
  if (existsSync(join(runDir, 'latest.json'))) {
    const latest = readJson(join(runDir, 'latest.json'));
    const config = readJson(join(runDir, 'config.json'));
    if (latest.position.epoch >= config.schedule.epochs) return runDir;
    console.log(`train ${name}: resuming`);
    goodsrec(['train', '--resume', runDir, '--json'], join(out, `train-${name}.log`));
    return runDir;
  }
  console.log(`train ${name}`);
  mkdirSync(join(out, 'runs'), { recursive: true });
  goodsrec(
    [
      'train',
      '--data',
      data,
      '--model',
      'resnet18',
      '--size',
      o.size,
      '--batch-size',
      '64',
      '--epochs',
      o.epochs,
      '--seed',
      o.seed,
      '--device',
      'cpu',
      '--out',
      join(out, 'runs'),
      '--name',
      name,
      ...['data.valSplit=val', 'data.workers=1', 'data.cacheMB=1500', 'threads=1'].flatMap((kv) => ['--set', kv]),
      '--json',
    ],
    join(out, `train-${name}.log`),
  );
  return runDir;
}

/** Test top-1 of a run on the clean manifest's test split (written once). */
function testTop1(runDir) {
  const file = join(runDir, 'eval-test-clean.json');
  if (!existsSync(file))
    goodsrec(['eval', runDir, '--data', manifest('clean'), '--split', 'test', '--out', file], `${file}.log`);
  return readJson(file).metrics.top1;
}

if (stages.has('flipped')) train('flipped', manifest('flipped'));

// 3. The audit of the flipped training split, once per out-of-sample score.
const auditDir = (s) => join(out, `audit-${s}`);
if (stages.has('audit'))
  for (const s of scores) {
    if (existsSync(join(auditDir(s), 'audit.json'))) continue;
    console.log(`audit (${s})`);
    goodsrec(
      [
        'audit',
        join(out, 'runs', 'flipped'),
        '--data',
        manifest('flipped'),
        '--split',
        'train',
        '--scores',
        s,
        '--out',
        auditDir(s),
      ],
      join(out, `audit-${s}.log`),
    );
  }

/** Precision and recall of the flagged photos and of the k lowest-quality photos against the flips. */
function score(s) {
  const a = readJson(join(auditDir(s), 'audit.json'));
  const flips = new Map(readJson(join(out, 'flips.json')).flips.map((f) => [f.path, f]));
  const flipped = new Set(flips.keys());
  const k = flipped.size;
  const flagged = a.labels.photos.filter((p) => p.flagged);
  const hits = flagged.filter((p) => flipped.has(p.path)).length;
  const ranked = [...a.labels.photos].sort((x, y) => x.quality - y.quality).slice(0, k);
  const hitsK = ranked.filter((p) => flipped.has(p.path)).length;
  const rightSuggestion = flagged.filter((p) => flips.get(p.path)?.trueClass === p.suggested).length;
  return {
    scores: s,
    photos: a.labels.photos.length,
    flips: k,
    flagged: flagged.length,
    precision: flagged.length ? hits / flagged.length : Number.NaN,
    recall: hits / k,
    precisionAtK: hitsK / k,
    suggestedTrueClass: hits ? rightSuggestion / hits : Number.NaN,
  };
}

/** A copy of the flipped manifest without the photos `pick` selects from the audit's ranked list. */
function dropped(name, pick) {
  const file = manifest(name);
  if (!existsSync(file)) {
    const a = readJson(join(auditDir(o.drop), 'audit.json'));
    const drop = new Set(pick(a.labels.photos.filter((p) => p.split === 'train')).map((p) => p.path));
    const m = readJson(manifest('flipped'));
    writeJson(file, { ...m, samples: m.samples.filter((x) => !drop.has(x.path)) });
    console.log(`${name}: ${drop.size} training photos dropped`);
  }
  return file;
}

// 4. Train again without the photos the chosen audit flagged (their files stay where they are), and
// (stage 'topk') without the k = #flips most suspect ones: what a user who reviews the top of the list gets.
if (stages.has('cleaned'))
  train(
    `cleaned-${o.drop}`,
    dropped(`cleaned-${o.drop}`, (photos) => photos.filter((p) => p.flagged)),
  );
if (stages.has('topk')) {
  const k = readJson(join(out, 'flips.json')).flips.length;
  train(
    `top${k}-${o.drop}`,
    dropped(`top${k}-${o.drop}`, (photos) => photos.slice(0, k)),
  );
}
if (stages.has('clean')) train('clean', manifest('clean'));

if (stages.has('summary')) {
  const rows = scores.filter((s) => existsSync(join(auditDir(s), 'audit.json'))).map(score);
  const k = readJson(join(out, 'flips.json')).flips.length;
  const runs = ['clean', 'flipped', `cleaned-${o.drop}`, `top${k}-${o.drop}`]
    .filter((n) => existsSync(join(out, 'runs', n, 'latest.json')))
    .map((n) => ({ run: n, top1: testTop1(join(out, 'runs', n)) }));
  const summary = { settings: o, audit: rows, runs };
  writeJson(join(out, 'summary.json'), summary);
  const pct = (x) => (Number.isNaN(x) ? 'n/a' : `${(100 * x).toFixed(1)} %`);
  console.log(
    '\n| scores | photos | flips (k) | flagged | precision | recall | precision = recall at k | flagged flips given their true class |',
  );
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of rows)
    console.log(
      `| ${r.scores} | ${r.photos} | ${r.flips} | ${r.flagged} | ${pct(r.precision)} | ${pct(r.recall)} | ${pct(r.precisionAtK)} | ${pct(r.suggestedTrueClass)} |`,
    );
  console.log('\n| trained on | test top-1 |\n|---|---|');
  for (const r of runs) console.log(`| ${r.run} | ${pct(r.top1)} |`);
}
