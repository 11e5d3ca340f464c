#!/usr/bin/env node
// Every stage of goodsrec on the synthetic RP2K-like data (scripts/make-rp2k-like.mjs) at one scale, each in its
// own process under /usr/bin/time -v (wall time, peak RSS), for docs/scale.md (issue 28, item 2). A stage whose
// result file exists is not run again; run it once per scale, then `--summary` prints the table with the growth
// exponent log(t_b / t_a) / log(n_b / n_a) between consecutive scales (n: photos of the dataset).
//
//   node scripts/make-rp2k-like.mjs --scale 0.01        # then 0.1, 1
//   node scripts/experiments/scale.mjs --data /work/exp/rp2k/data-0.01 [--out /work/exp/rp2k/scale] [--stages a,b]
//   node scripts/experiments/scale.mjs --summary [--out /work/exp/rp2k/scale]
//
// Stages: scan (folder walk + class index), analyze (decode + sha256 duplicates; checked against key.json's planted
// duplicates), loader (one eval-mode pass over the train split at 64 px, 1 worker), run (a 1-epoch ResNet-18 at
// 32 px on data.fraction 0.001, i.e. one photo per class: the run folder the later stages use), resume (`train
// --resume` of that finished run: scan + checkpoint load), eval (the whole test split), report (HTML size; Chromium
// headless load), gallery (build over the train split; then `eval --gallery` on the test split: search per photo),
// serve (start, 20 predictions, peak RSS), export (ONNX). Scale-free stages, run once: steps (ResNet-18/50 train
// steps, 2,388 classes, 64 px, batch 32, random data) and checkpoint (ResNet-50 state with the 2,388-way and the
// wide head: size and write time). The inner stages are this script with `--inner <stage>`.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(REPO, 'dist', 'src', 'cli', 'main.js');
const { values: o } = parseArgs({
  options: {
    data: { type: 'string' },
    out: { type: 'string', default: '/work/exp/rp2k/scale' },
    stages: { type: 'string' },
    inner: { type: 'string' },
    summary: { type: 'boolean', default: false },
  },
});
const STAGES = ['scan', 'analyze', 'loader', 'run', 'resume', 'eval', 'report', 'gallery', 'serve', 'export'];
const ONCE = ['steps', 'checkpoint'];
const lib = (p) => import(pathToFileURL(join(REPO, 'dist', 'src', p)).href);

// ---------------------------------------------------------------------------------------------------------
// Inner stages: one process each, their JSON result on the last stdout line.

async function inner(stage, data, work) {
  const t0 = performance.now();
  if (stage === 'scan') {
    const { loadDataset } = await lib('data/index.js');
    const ds = loadDataset(join(data, 'all'));
    return { photos: ds.samples.length, classes: ds.classes.length, ms: performance.now() - t0 };
  }
  if (stage === 'loader') {
    const { loadDataset, selectSplits, DataLoader } = await lib('data/index.js');
    const { evalPipeline } = await lib('run/pipelines.js');
    const ds = selectSplits(loadDataset(join(data, 'all')), 'train');
    const pre = { size: 64, resize: 'letterbox', cropPct: 1, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] };
    const loader = new DataLoader({
      dataset: ds,
      pipeline: evalPipeline(pre),
      batchSize: 64,
      mode: 'eval',
      workers: 1,
    });
    const t1 = performance.now();
    let n = 0;
    for await (const b of loader) n += b.labels.length;
    await loader.close();
    const s = (performance.now() - t1) / 1000;
    return { photos: n, seconds: s, imagesPerSec: n / s };
  }
  if (stage === 'steps') {
    const T = await lib('tensor/index.js');
    const { createModel } = await lib('models/index.js');
    const { createOptimizer } = await lib('optim/index.js');
    const out = {};
    for (const name of ['resnet18', 'resnet50']) {
      const model = createModel(name, { numClasses: 2388, log: null });
      const opt = createOptimizer([{ params: model.parameters(), weightDecay: 0 }], {
        name: 'sgd',
        lr: 0.01,
        momentum: 0.9,
      });
      const x = T.randn([32, 3, 64, 64]);
      const y = T.tensor(
        Int32Array.from({ length: 32 }, (_, i) => (i * 71) % 2388),
        [32],
      ).long();
      const ms = [];
      for (let i = 0; i < 4; i++) {
        const t = performance.now();
        T.tidy(() => {
          opt.zeroGrad();
          T.F.crossEntropy(model.train().forward(x), y, { labelSmoothing: 0.1 }).backward();
          opt.step();
        });
        ms.push(performance.now() - t);
      }
      x.dispose();
      y.dispose();
      model.dispose();
      const steady = ms.slice(1).sort((a, b) => a - b)[1];
      out[name] = { msPerStep: steady, imagesPerSec: (32 / steady) * 1000, allMs: ms };
    }
    return out;
  }
  if (stage === 'checkpoint') {
    const { createModel } = await lib('models/index.js');
    const { saveCheckpoint } = await lib('run/checkpoint.js');
    const out = {};
    for (const head of ['linear', 'wide']) {
      const model = createModel('resnet50', { numClasses: 2388, log: null, ...(head === 'wide' ? { head } : {}) });
      const dir = join(work, `ckpt-${head}`);
      mkdirSync(dir, { recursive: true });
      const sd = model.stateDict();
      const t = performance.now();
      await saveCheckpoint(dir, 'epoch-0001', { model: sd, optimizer: {}, state: { position: { epoch: 1, step: 0 } } });
      const ms = performance.now() - t;
      for (const v of sd.values()) v.dispose();
      let bytes = 0;
      for (const f of readdirSync(join(dir, 'epoch-0001'))) bytes += statSync(join(dir, 'epoch-0001', f)).size;
      out[head] = { ms, bytes, parameters: model.parameters().reduce((s, p) => s + p.numel, 0) };
      model.dispose();
    }
    return out;
  }
  throw new Error(`unknown inner stage ${stage}`);
}

// ---------------------------------------------------------------------------------------------------------
// The driver.

/** Runs argv under /usr/bin/time -v; wall seconds, peak RSS (MB), exit code, stdout. */
function timed(argv, opts = {}) {
  const r = spawnSync('/usr/bin/time', ['-v', ...argv], {
    encoding: 'utf8',
    maxBuffer: 1 << 28,
    env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE', ...opts.env },
  });
  const wall = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)/.exec(r.stderr);
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr);
  return {
    code: r.status,
    seconds: wall ? Number(wall[1] ?? 0) * 3600 + Number(wall[2]) * 60 + Number(wall[3]) : null,
    peakRssMB: rss ? Number(rss[1]) / 1024 : null,
    stdout: r.stdout,
    stderrTail: r.stderr.split('\n').slice(-40).join('\n'),
  };
}

const node = (...args) => [process.execPath, ...args];
const lastJson = (s) => JSON.parse(s.trim().split('\n').pop());

async function stage(name, data, dir) {
  const run = join(dir, 'run');
  const all = join(data, 'all');
  switch (name) {
    case 'scan':
    case 'loader':
    case 'steps':
    case 'checkpoint': {
      const r = timed(node(fileURLToPath(import.meta.url), '--inner', name, '--data', data, '--out', dir));
      return { ...r, result: r.code === 0 ? lastJson(r.stdout) : null };
    }
    case 'analyze': {
      const r = timed(node(CLI, 'analyze', all, '--out', join(dir, 'analysis')));
      const key = JSON.parse(readFileSync(join(data, 'key.json'), 'utf8'));
      const a = JSON.parse(readFileSync(join(dir, 'analysis', 'analysis.json'), 'utf8'));
      const found = new Set(a.duplicates.groups.flatMap((g) => g.files.map((f) => f.path)));
      const inAll = (p) => p.replace(/^all\//, '');
      const hits = key.duplicates.filter((d) => [d.test, d.train].every((p) => found.has(inAll(p)) || found.has(p)));
      return {
        ...r,
        result: { planted: key.duplicates.length, found: hits.length, crossSplit: a.duplicates.crossSplit },
      };
    }
    case 'run':
      return timed(
        node(
          CLI,
          'train',
          '--data',
          all,
          '--model',
          'resnet18',
          '--size',
          '32',
          '--batch-size',
          '64',
          '--epochs',
          '1',
          ...['data.fraction=0.001', 'threads=2', 'data.workers=1', 'validateEvery=0'].flatMap((kv) => ['--set', kv]),
          '--out',
          dir,
          '--name',
          'run',
        ),
      );
    case 'resume':
      return timed(node(CLI, 'train', '--resume', run));
    case 'eval':
      return timed(node(CLI, 'eval', run, '--split', 'test'));
    case 'report': {
      const r = timed(node(CLI, 'report', join(run, 'eval-test.json')));
      const html = join(run, 'eval-test.html');
      const chrome = timed([
        '/usr/bin/chromium',
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--virtual-time-budget=10000',
        '--dump-dom',
        pathToFileURL(html).href,
      ]);
      return { ...r, result: { bytes: statSync(html).size, chromium: { seconds: chrome.seconds, code: chrome.code } } };
    }
    case 'gallery': {
      const g = join(dir, 'shop.gallery');
      const r = timed(node(CLI, 'gallery', 'build', run, '--data', all, '--split', 'train', '--out', g));
      const s = timed(
        node(CLI, 'eval', run, '--gallery', g, '--split', 'test', '--out', join(dir, 'eval-gallery.json')),
      );
      return {
        ...r,
        result: { bytes: statSync(g).size, search: { seconds: s.seconds, peakRssMB: s.peakRssMB, code: s.code } },
      };
    }
    case 'serve':
      return serveStage(run, all);
    case 'export':
      return timed(node(CLI, 'export', run, '--format', 'onnx'));
  }
  throw new Error(`unknown stage ${name}`);
}

/** goodsrec serve: time to the first answer of /healthz, 20 sequential predictions, peak RSS (VmHWM). */
async function serveStage(run, all) {
  const port = 18000 + Math.floor(Math.random() * 1000);
  const t0 = performance.now();
  const p = spawn(process.execPath, [CLI, 'serve', run, '--port', String(port)], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' },
  });
  let err = '';
  p.stderr.on('data', (d) => (err += d));
  const url = `http://127.0.0.1:${port}`;
  let up = null;
  for (let i = 0; i < 600 && up === null; i++) {
    await new Promise((r) => setTimeout(r, 250));
    up = await fetch(`${url}/healthz`).then(
      (r) => (r.ok ? performance.now() - t0 : null),
      () => null,
    );
  }
  const cls = readdirSync(join(all, 'test'))[0];
  const photo = join(all, 'test', cls, readdirSync(join(all, 'test', cls))[0]);
  const ms = [];
  for (let i = 0; i < 20 && up !== null; i++) {
    const form = new FormData();
    form.append('image', new Blob([readFileSync(photo)], { type: 'image/jpeg' }), basename(photo));
    const t = performance.now();
    const r = await fetch(`${url}/v1/predict?top=5`, { method: 'POST', body: form });
    await r.json();
    ms.push(performance.now() - t);
  }
  const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${p.pid}/status`, 'utf8'));
  p.kill('SIGTERM');
  await new Promise((r) => p.on('exit', r));
  ms.sort((a, b) => a - b);
  return {
    code: up === null ? 1 : 0,
    seconds: up === null ? null : up / 1000,
    peakRssMB: hwm ? Number(hwm[1]) / 1024 : null,
    result: { readyMs: up, predictMedianMs: ms[Math.floor(ms.length / 2)] ?? null, predictMaxMs: ms.at(-1) ?? null },
    stderrTail: err.split('\n').slice(-20).join('\n'),
  };
}

function summary(out) {
  const scales = readdirSync(out)
    .filter((d) => existsSync(join(out, d, 'dataset.json')))
    .map((d) => ({ name: d, ...JSON.parse(readFileSync(join(out, d, 'dataset.json'), 'utf8')) }))
    .sort((a, b) => a.photos - b.photos);
  const res = (s, st) => {
    const f = join(out, s.name, `${st}.json`);
    return existsSync(f) ? JSON.parse(readFileSync(f, 'utf8')) : null;
  };
  const head = ['stage', ...scales.map((s) => `${s.name} (${s.photos} photos) s / MB`)];
  for (let i = 1; i < scales.length; i++) head.push(`exponent ${scales[i - 1].name}->${scales[i].name}`);
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const st of STAGES) {
    const rs = scales.map((s) => res(s, st));
    const cells = rs.map((r) => (r?.seconds != null ? `${r.seconds.toFixed(1)} / ${r.peakRssMB?.toFixed(0)}` : '-'));
    for (let i = 1; i < scales.length; i++) {
      const a = rs[i - 1],
        b = rs[i];
      cells.push(
        a?.seconds && b?.seconds
          ? (Math.log(b.seconds / a.seconds) / Math.log(scales[i].photos / scales[i - 1].photos)).toFixed(2)
          : '-',
      );
    }
    lines.push(`| ${st} | ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

if (o.inner) {
  console.log(JSON.stringify(await inner(o.inner, o.data, o.out)));
} else if (o.summary) {
  console.log(summary(resolve(o.out)));
} else {
  if (!o.data) throw new Error('--data: the dataset folder made by scripts/make-rp2k-like.mjs is required');
  const data = resolve(o.data);
  const key = JSON.parse(readFileSync(join(data, 'key.json'), 'utf8'));
  const dir = join(resolve(o.out), basename(data));
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'dataset.json'),
    JSON.stringify({ data, photos: key.photos.train + key.photos.test, ...key.photos, classes: key.classes }),
  );
  const want = o.stages ? o.stages.split(',') : [...STAGES, ...ONCE];
  for (const st of want) {
    // Scale-free stages live beside the scales.
    const f = ONCE.includes(st) ? join(resolve(o.out), `${st}.json`) : join(dir, `${st}.json`);
    if (existsSync(f)) {
      console.log(`${st}: done already`);
      continue;
    }
    const load = loadavg()[0];
    const r = await stage(st, data, ONCE.includes(st) ? resolve(o.out) : dir);
    const rec = { ...r, stdout: undefined, load1: load, cores: availableParallelism() };
    if (r.code !== 0) {
      console.log(`${st}: FAILED (exit ${r.code})\n${r.stderrTail}`);
      writeFileSync(`${f}.failed`, JSON.stringify(rec, null, 1));
      continue;
    }
    delete rec.stderrTail;
    writeFileSync(`${f}.partial`, JSON.stringify(rec, null, 1));
    renameSync(`${f}.partial`, f);
    console.log(
      `${st}: ${r.seconds?.toFixed(1)} s, peak ${r.peakRssMB?.toFixed(0)} MB ${JSON.stringify(r.result ?? '')}`,
    );
  }
}
