#!/usr/bin/env node
// npm run fuzz: builds the addons with ASan + UBSan into build-sanitize/ (scripts/fuzz/build-sanitized.mjs),
// then runs the fuzzer (dist/test/fuzz/main.js) in one node process per parser with the gcc sanitizer
// runtimes preloaded and the addons loaded from build-sanitize/ (GOODSREC_ADDON_DIR). A process that dies
// (crash, sanitizer report) is counted, its input kept in <work>/crashes/, and the run goes on from the
// next input. Prints per-parser counts and writes them to <work>/fuzz-report.json.
// Usage: npm run fuzz -- [--count 100000] [--seed 13] [--only jpeg,pth] [--jobs N] [--work DIR] [--no-sanitize]
import { spawn, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildSanitized, sanitizeDir, sanitizerRuntimes } from './build-sanitized.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values: a } = parseArgs({
  options: {
    count: { type: 'string', default: '100000' },
    seed: { type: 'string', default: '13' },
    only: { type: 'string' },
    work: { type: 'string', default: join(root, 'test-artifacts', 'fuzz') },
    'no-sanitize': { type: 'boolean', default: false },
    'max-crashes': { type: 'string', default: '50' },
    jobs: { type: 'string', default: '1' },
  },
});
const sanitize = !a['no-sanitize'];
const work = resolve(a.work);
rmSync(work, { recursive: true, force: true });
mkdirSync(join(work, 'crashes'), { recursive: true });

// The compiled fuzzer: rebuild the TypeScript when a fuzz source is newer.
const mainJs = join(root, 'dist', 'test', 'fuzz', 'main.js');
const newestSrc = Math.max(
  ...readdirSync(join(root, 'test', 'fuzz'))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => statSync(join(root, 'test', 'fuzz', f)).mtimeMs),
);
if (!existsSync(mainJs) || statSync(mainJs).mtimeMs < newestSrc) {
  console.log('compiling TypeScript (tsc)...');
  const r = spawnSync(
    process.execPath,
    [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'],
    { cwd: root, stdio: 'inherit' },
  );
  if (r.status !== 0) process.exit(r.status ?? 1);
}

const env = { ...process.env, GOODSREC_FUZZ: '1' };
if (sanitize) {
  console.log(`building the addons with -fsanitize=address,undefined into ${sanitizeDir} ...`);
  await buildSanitized(2);
  Object.assign(env, {
    LD_PRELOAD: sanitizerRuntimes().join(' '),
    GOODSREC_ADDON_DIR: sanitizeDir,
    // node and libtorch keep allocations to exit by design: leaks are not findings here.
    // allow_user_segv_handler=0: node installs its own SIGSEGV handler, which hid ASan's report of a wild read.
    ASAN_OPTIONS:
      'detect_leaks=0:halt_on_error=1:exitcode=86:allocator_may_return_null=1:detect_odr_violation=0:allow_user_segv_handler=0',
    UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1:exitcode=87',
  });
}

const parsers = a.only
  ? a.only.split(',')
  : [
      'jpeg',
      'png',
      'safetensors',
      'pth',
      'onnx-sidecar',
      'classes-csv',
      'split-manifest',
      'manifest-json',
      'manifest-csv',
    ];
const count = Number(a.count);
const maxCrashes = Number(a['max-crashes']);
const rows = [];
const SAN_RE = /ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer|SUMMARY: UndefinedBehaviorSanitizer/g;

function runChild(args) {
  return new Promise((ok) => {
    const p = spawn(process.execPath, [mainJs, ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    p.stdout.on('data', (d) => process.stdout.write(d));
    p.stderr.on('data', (d) => {
      err += d;
      if (err.length > 4e6) err = err.slice(-2e6);
    });
    p.on('exit', (code, signal) => ok({ code, signal, stderr: err }));
  });
}

async function fuzzParser(parser) {
  const statsFile = join(work, `${parser}.stats.json`);
  let next = 0,
    prior = null,
    crashes = 0,
    reports = 0;
  const skip = [];
  const t0 = Date.now();
  for (;;) {
    const args = [
      '--only',
      parser,
      '--seed',
      a.seed,
      '--start',
      String(next),
      '--count',
      String(count - next),
      '--dir',
      work,
      '--stats',
      statsFile,
      '--skip',
      skip.join(','),
    ];
    if (prior) args.push('--resume', JSON.stringify(prior));
    const r = await runChild(args);
    const st = existsSync(statsFile) ? JSON.parse(readFileSync(statsFile, 'utf8')) : null;
    if (st?.done && (r.code === 0 || r.code === 1) && !r.signal) {
      prior = st;
      break;
    }
    // The process died: the input it was on is a crash; restart after it from the last snapshot.
    const idx = Number(readFileSync(join(work, parser, 'current-index'), 'utf8'));
    const input = readdirSync(join(work, parser)).find((f) => !f.startsWith('current') && !f.startsWith('finding'));
    crashes++;
    const n = (r.stderr.match(SAN_RE) ?? []).length;
    reports += n;
    const tag = `${parser}-${idx}`;
    if (input) copyFileSync(join(work, parser, input), join(work, 'crashes', `${tag}.bin`));
    writeFileSync(join(work, 'crashes', `${tag}.log`), `exit ${r.code} signal ${r.signal}\n${r.stderr.slice(-20000)}`);
    console.log(
      `CRASH ${parser} input #${idx} (exit ${r.code}, signal ${r.signal}, ${n} sanitizer reports): ` +
        `${join(work, 'crashes', tag)}.{bin,log}`,
    );
    skip.push(idx);
    prior = st && !st.done ? st : prior;
    next = prior ? prior.next : 0;
    if (crashes >= maxCrashes) {
      console.log(`${parser}: stopping after ${crashes} crashes`);
      break;
    }
  }
  const row = {
    ...(prior ?? { parser, inputs: 0, accepted: 0, named: 0, other: 0, findings: [] }),
    crashes,
    sanitizerReports: reports,
  };
  row.inputs += crashes;
  row.seconds = (Date.now() - t0) / 1000;
  if (sanitize && !(row.addons ?? []).every((p) => p.startsWith(sanitizeDir))) {
    throw new Error(`${parser}: the fuzzer loaded ${row.addons} instead of the sanitizer builds in ${sanitizeDir}`);
  }
  return row;
}

// --jobs N: parsers in parallel processes (each one is single-threaded).
const results = new Array(parsers.length);
let nextParser = 0;
await Promise.all(
  Array.from({ length: Math.max(1, Number(a.jobs)) }, async () => {
    while (nextParser < parsers.length) {
      const k = nextParser++;
      results[k] = await fuzzParser(parsers[k]);
    }
  }),
);
rows.push(...results);

console.log(`\nfuzz: seed ${a.seed}, ${count} inputs per parser, ${sanitize ? 'ASan+UBSan addons' : 'no sanitizers'}`);
const { formatStats } = await import(join(root, 'dist', 'test', 'fuzz', 'stats.js'));
console.log(formatStats(rows));
writeFileSync(
  join(work, 'fuzz-report.json'),
  JSON.stringify({ seed: Number(a.seed), count, sanitize, rows }, null, 2) + '\n',
);
const bad = rows.some((r) => r.other || r.crashes || r.sanitizerReports);
console.log(bad ? `findings: see ${work}` : 'no findings');
process.exit(bad ? 1 : 0);
