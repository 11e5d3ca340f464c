#!/usr/bin/env node
// Crash consistency (issue 13, item 5): SIGKILLs `goodsrec train` at seeded random moments, at epoch
// ends and inside atomic writes (GOODSREC_FAULT, see src/util/fault.ts), resuming with --resume after
// every kill; asserts the run folder loads after each kill and the final weights are bit-identical
// (sha256 of the tensors) to an uninterrupted run. Then kills `average`, `export` and `gallery
// build/add` mid-write and asserts the target is the old or the new complete version.
//
//   npm run crash-test -- [--kills 50] [--writer-kills 12] [--seed 13] [--epochs 3] [--json]
//   ... --plan file:7:partial,epoch:1,random:0.5 [--writer-faults-in-order]: one kill per entry, in order
//
// Needs a build (dist/). Exit 0 when every check held; the summary is printed (--json: one JSON line).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'dist', 'src', 'cli', 'main.js');
const sample = join(root, 'examples', 'grocery-sample');
const { loadCheckpoint, readPointer, resolveCheckpoint } = await import(join(root, 'dist/src/run/checkpoint.js'));
const { readSafetensorsSync } = await import(join(root, 'dist/src/io/index.js'));
const { readGallery } = await import(join(root, 'dist/src/gallery/format.js'));
const { finishExport } = await import(join(root, 'dist/src/serve/onnx/export.js'));

// resnet18 at 32 px on a quarter of the sample: 4 steps of 8 a epoch, a checkpoint every 2 steps, 3 epochs.
export const TINY = [
  '--data',
  sample,
  '--model',
  'resnet18',
  '--size',
  '32',
  '--batch-size',
  '8',
  '--epochs',
  '3',
  '--set',
  'data.fraction=0.25',
  '--set',
  'augment.cutout=4',
  '--set',
  'threads=1',
  '--set',
  'data.workers=1',
  '--set',
  'checkpointEverySteps=2',
  '--set',
  'seed=5',
];
const FILE_PHASES = ['partial', 'before-rename', 'after-rename'];
const DIR_PHASES = ['before-rename', 'swapped', 'after-rename'];

/** mulberry32: the kill schedule is a function of --seed. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** sha256 over the tensors of a safetensors file (names, dtypes, shapes and bytes; metadata ignored). */
export function tensorsSha256(file) {
  const h = createHash('sha256');
  const m = readSafetensorsSync(file);
  for (const k of [...m.keys()].sort()) {
    const t = m.get(k);
    h.update(`${k}|${t.dtype}|${t.shape.join('x')}|`);
    h.update(t.data);
  }
  return h.digest('hex');
}

/**
 * Runs the CLI; kill: { afterMs } (SIGKILL after a delay), { onEpochLine: n } (SIGKILL as the n-th
 * "epoch k:" line is printed, i.e. at an epoch end) or none; env: extra variables (GOODSREC_FAULT).
 */
function runCli(args, { kill, env } = {}) {
  return new Promise((res) => {
    const t0 = Date.now();
    const p = spawn(process.execPath, [cli, ...args], {
      env: { ...process.env, CI: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let epochs = 0;
    let timer;
    if (kill?.afterMs !== undefined) timer = setTimeout(() => p.kill('SIGKILL'), kill.afterMs);
    // Progress and the per-epoch lines go to stderr.
    const onData = (d) => {
      out += d;
      if (kill?.onEpochLine) {
        epochs += (String(d).match(/^epoch \d+: /gm) ?? []).length;
        if (epochs >= kill.onEpochLine) p.kill('SIGKILL');
      }
    };
    p.stdout.on('data', onData);
    p.stderr.on('data', onData);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      res({ code, signal, out, ms: Date.now() - t0 });
    });
  });
}

/** After a kill: the run folder must be one --resume accepts, and its latest checkpoint must load. */
function checkRunFolder(dir) {
  if (!existsSync(join(dir, 'config.json'))) return 'not-started';
  JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  const latest = readPointer(dir, 'latest');
  if (!latest) return 'no-checkpoint';
  const ck = loadCheckpoint(latest);
  if (!ck.model.size) throw new Error(`${latest}: no tensors`);
  ck.optimizer();
  return 'checkpoint';
}

function pick(r, xs) {
  return xs[Math.floor(r() * xs.length)];
}

/** One kill plan for a launch: random moment, epoch end, or inside the n-th atomic file/folder write. */
function planKill(r, refMs) {
  const u = r();
  if (u < 0.4) return { what: 'random', kill: { afterMs: Math.round((0.15 + 0.85 * r()) * refMs) } };
  if (u < 0.55) return { what: 'epoch-end', kill: { onEpochLine: 1 + Math.floor(r() * 2) } };
  if (u < 0.8) {
    const f = `file:${1 + Math.floor(r() * 14)}:${pick(r, FILE_PHASES)}`;
    return { what: `fault ${f}`, env: { GOODSREC_FAULT: f } };
  }
  const f = `dir:${1 + Math.floor(r() * 3)}:${pick(r, DIR_PHASES)}`;
  return { what: `fault ${f}`, env: { GOODSREC_FAULT: f } };
}

/** A kill plan from text: random:<fraction of the reference run>, epoch:<n>, file|dir:<n>:<phase>. */
function parsePlan(text, refMs) {
  const [kind, a] = text.split(':');
  if (kind === 'random') return { what: 'random', kill: { afterMs: Math.round(Number(a) * refMs) } };
  if (kind === 'epoch') return { what: 'epoch-end', kill: { onEpochLine: Number(a) } };
  if (kind === 'file' || kind === 'dir') return { what: `fault ${text}`, env: { GOODSREC_FAULT: text } };
  throw new Error(`--plan: cannot read '${text}'`);
}

/**
 * Kills training `kills` times over as many fresh runs as needed (or once per entry of `plan`, in
 * order); every run is resumed to its end and compared to the uninterrupted one.
 */
async function trainCampaigns(work, kills, r, log, plan = null) {
  const ref = await runCli(['train', ...TINY, '--out', work, '--name', 'reference']);
  if (ref.code !== 0) throw new Error(`uninterrupted run failed:\n${ref.out}`);
  const refDir = join(work, 'reference');
  const refSha = tensorsSha256(join(readPointer(refDir, 'latest'), 'model.safetensors'));
  log(`reference run: ${(ref.ms / 1000).toFixed(1)} s, final weights sha256 ${refSha.slice(0, 16)}`);
  const s = {
    kills: 0,
    byKind: {},
    afterKill: {},
    launches: 0,
    runs: 0,
    identical: 0,
    faultsNotReached: 0,
    failures: [],
    resumeMs: [],
  };
  let ci = 0;
  while (plan ? s.launches < plan.length : s.kills < kills) {
    const dir = join(work, `c${ci}`);
    let inRun = 0;
    for (;;) {
      const started = existsSync(join(dir, 'config.json'));
      const args = started ? ['train', '--resume', dir] : ['train', ...TINY, '--out', work, '--name', `c${ci}`];
      // At most 10 kills a run and none past the total, so every run ends and is compared.
      const fixed = plan?.[s.launches];
      const plan1 = fixed
        ? parsePlan(fixed, ref.ms)
        : !plan && inRun < 10 && s.kills < kills
          ? planKill(r, ref.ms)
          : { what: 'none' };
      const res = await runCli(args, plan1);
      s.launches++;
      if (res.signal === 'SIGKILL') {
        s.kills++;
        inRun++;
        const kind = plan1.what.startsWith('fault') ? plan1.what.replace(/:\d+:/, ':n:') : plan1.what;
        s.byKind[kind] = (s.byKind[kind] ?? 0) + 1;
        let state;
        try {
          state = checkRunFolder(dir);
        } catch (e) {
          state = 'broken';
          s.failures.push(`${dir} after ${plan1.what}: ${e.message}`);
        }
        s.afterKill[state] = (s.afterKill[state] ?? 0) + 1;
        continue;
      }
      if (res.code !== 0) {
        s.failures.push(`${dir}: ${args.join(' ')} exited ${res.code} (${plan1.what}):\n${res.out.slice(-2000)}`);
        break;
      }
      if (plan1.env) s.faultsNotReached++;
      s.runs++;
      const sha = tensorsSha256(join(readPointer(dir, 'latest'), 'model.safetensors'));
      if (sha === refSha) s.identical++;
      else
        s.failures.push(
          `${dir}: final weights sha256 ${sha.slice(0, 16)} differ from the uninterrupted run's ${refSha.slice(0, 16)}`,
        );
      if (plan && s.launches < plan.length) {
        s.failures.push(`${dir}: finished before plan entry ${s.launches + 1} (${plan[s.launches]})`);
      }
      log(
        `run c${ci}: ${inRun} kills, final weights ${sha === refSha ? 'bit-identical' : 'DIFFERENT'} (${s.kills}/${plan?.length ?? kills} kills)`,
      );
      break;
    }
    rmSync(dir, { recursive: true, force: true });
    ci++;
  }
  return { refDir, refSha, ...s };
}

/**
 * Kills a writer command mid-write `n` times; after each kill `version()` must name the old or the
 * new complete version. Each attempt writes the version that is not there now.
 */
async function writerKills(name, n, r, { commands, version, faults }, log, fixed = false) {
  const s = { kills: 0, completed: 0, old: 0, new: 0, bad: 0, torn: 0, failures: [] };
  const ms = [];
  const ids = [];
  // Each kill targets the version that is not there (gallery add needs the gallery build wrote).
  for (const v of [0, 1]) {
    const t = await runCli(commands[v]);
    if (t.code !== 0 && t.code !== 3) throw new Error(`${name}: ${commands[v].join(' ')} failed:\n${t.out}`);
    ms[v] = t.ms;
    ids[v] = version();
  }
  if (ids[0] === ids[1])
    throw new Error(`${name}: the two versions are the same (${ids[0]}); the check could not tell them apart`);
  for (let i = 0; i < n; i++) {
    const before = version();
    const target = before === ids[0] ? 1 : 0;
    const plan = fixed
      ? { what: 'fault', env: { GOODSREC_FAULT: faults[i % faults.length] } }
      : r() < 0.5
        ? { what: 'random', kill: { afterMs: Math.round(r() * 1.1 * ms[target]) } }
        : { what: 'fault', env: { GOODSREC_FAULT: pick(r, faults) } };
    const res = await runCli(commands[target], plan);
    if (res.signal !== 'SIGKILL') {
      s.completed++;
      continue;
    }
    s.kills++;
    let now;
    try {
      now = version();
    } catch (e) {
      now = `unreadable: ${e.message}`;
    }
    if (now === before) s.old++;
    else if (now === ids[target]) s.new++;
    else if (now === 'torn') s.torn++;
    else {
      s.bad++;
      s.failures.push(`${name} after ${plan.what} ${plan.env?.GOODSREC_FAULT ?? ''}: ${now}`);
    }
  }
  log(
    `${name}: ${s.kills} kills -> ${s.old} old, ${s.new} new, ${s.torn} torn pair(s), ${s.bad} broken; ${s.completed} finished before the kill`,
  );
  return s;
}

export async function main(argv = process.argv.slice(2)) {
  const { values } = parseArgs({
    args: argv,
    options: {
      kills: { type: 'string', default: '50' },
      'writer-kills': { type: 'string', default: '12' },
      seed: { type: 'string', default: '13' },
      json: { type: 'boolean', default: false },
      epochs: { type: 'string', default: '3' },
      plan: { type: 'string' },
      'writer-faults-in-order': { type: 'boolean', default: false },
      writers: { type: 'string', default: 'average,export,gallery' },
    },
  });
  const kills = Number(values.kills);
  const wk = Number(values['writer-kills']);
  if (!Number.isInteger(kills) || kills < 0 || !Number.isInteger(wk) || wk < 0)
    throw new Error('--kills, --writer-kills: expected integers >= 0');
  const log = values.json ? () => {} : (m) => console.log(m);
  const r = rng(Number(values.seed));
  TINY[TINY.indexOf('--epochs') + 1] = values.epochs;
  const work = mkdtempSync(join(tmpdir(), 'goodsrec-crash-'));
  const t0 = Date.now();
  try {
    const train = await trainCampaigns(work, kills, r, log, values.plan ? values.plan.split(',') : null);
    const fixed = values['writer-faults-in-order'];
    const run = train.refDir;
    const writers = {};
    const only = new Set(values.writers.split(','));
    if (wk > 0 && only.has('average')) {
      const avg = join(run, 'checkpoints', 'avg');
      writers.average = await writerKills(
        'average',
        wk,
        r,
        {
          commands: [
            ['average', run, '--last', '2', '--name', 'avg'],
            ['average', run, '--last', '3', '--name', 'avg'],
          ],
          version: () =>
            tensorsSha256(join(loadCheckpoint(resolveCheckpoint(avg).checkpointDir).dir, 'model.safetensors')).slice(
              0,
              16,
            ),
          faults: [
            'dir:1:swapped',
            'file:1:partial',
            'file:2:before-rename',
            'file:3:after-rename',
            'dir:1:before-rename',
            'dir:1:after-rename',
          ],
        },
        log,
        fixed,
      );
    }
    if (wk > 0 && only.has('export')) {
      const ex = join(work, 'export');
      writers.export = await writerKills(
        'export',
        wk,
        r,
        {
          commands: [
            ['export', run, '--out', ex],
            ['export', run, '--out', ex, '--tta', 'flip'],
          ],
          version: () => {
            // What openServedModel does first: an export killed after its sidecar is finished.
            finishExport(join(ex, 'model.onnx'), JSON.parse(readFileSync(join(ex, 'model.json'), 'utf8')).sha256);
            const graph = createHash('sha256')
              .update(readFileSync(join(ex, 'model.onnx')))
              .digest('hex');
            const side = JSON.parse(readFileSync(join(ex, 'model.json'), 'utf8'));
            return side.sha256 === graph ? graph.slice(0, 16) : 'torn';
          },
          faults: [
            'file:1:partial',
            'file:1:before-rename',
            'file:1:after-rename',
            'file:2:partial',
            'file:2:before-rename',
            'file:2:after-rename',
          ],
        },
        log,
        fixed,
      );
    }
    if (wk > 0 && only.has('gallery')) {
      const g = join(work, 'shop.gallery');
      const photos = join(sample, 'test', 'Oatly-Oat-Milk');
      writers.gallery = await writerKills(
        'gallery build/add',
        wk,
        r,
        {
          commands: [
            ['gallery', 'build', run, '--data', sample, '--split', 'test', '--out', g],
            ['gallery', 'add', g, '--class', 'New-Product', photos],
          ],
          version: () => {
            const x = readGallery(g);
            return `${x.meta.entries.length} photos`;
          },
          faults: ['file:1:partial', 'file:1:before-rename', 'file:1:after-rename'],
        },
        log,
        fixed,
      );
    }
    const failures = [...train.failures, ...Object.values(writers).flatMap((w) => w.failures)];
    const { refDir: _r, failures: _f, resumeMs: _m, ...trainSummary } = train;
    const summary = {
      seconds: Math.round((Date.now() - t0) / 1000),
      train: trainSummary,
      writers: Object.fromEntries(
        Object.entries(writers).map(([k, w]) => [
          k,
          { kills: w.kills, old: w.old, new: w.new, torn: w.torn, broken: w.bad, completed: w.completed },
        ]),
      ),
      failures,
    };
    if (values.json) console.log(JSON.stringify(summary));
    else {
      console.log(
        `\ntrain: ${train.kills} kills over ${train.runs} runs (${train.launches} launches); kinds ${JSON.stringify(train.byKind)}`,
      );
      console.log(
        `after each kill the run folder held: ${JSON.stringify(train.afterKill)}; ${train.identical}/${train.runs} runs bit-identical`,
      );
      console.log(`${failures.length} failure(s) in ${summary.seconds} s`);
      for (const f of failures) console.log(`FAIL ${f}`);
    }
    return failures.length ? 1 : 0;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = await main();
