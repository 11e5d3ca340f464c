// goodsrec ablate: Welch's interval against a float64 hand computation (with negative controls), the plan
// (one factor at a time, grid, shared trainings, eval-only cells, ensemble partners), and the command end to
// end on the embedded sample: killed mid-way and restarted, no finished job runs again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot, sample } from './fixres-helpers.js';
import { moments, studentTCdf, studentTQuantile, welchDifference } from '../src/ablate/stats.js';
import { jobs, makePlan, splitValues } from '../src/ablate/plan.js';
import { ABLATE_METRICS, type AblateMetric, type AblateSummary, type CellSummary } from '../src/ablate/summary.js';
import { renderAblationHtml } from '../src/ablate/ablate-html.js';
import { artifacts, chromiumSkip, openPage, withChromium } from './helpers/chromium-page.js';

const cli = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const work = mkdtempSync(join(tmpdir(), 'goodsrec-ablate-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

test("Student's t: closed forms for 1 and 2 degrees of freedom, and table quantiles", () => {
  for (const t of [-7.5, -1, -0.2, 0, 0.3, 2, 40]) {
    assert.ok(Math.abs(studentTCdf(t, 1) - (0.5 + Math.atan(t) / Math.PI)) < 1e-12, `df 1, t ${t}`);
    assert.ok(Math.abs(studentTCdf(t, 2) - (0.5 + t / (2 * Math.sqrt(2 + t * t)))) < 1e-12, `df 2, t ${t}`);
  }
  // Two-sided 95% quantiles from the t table (R: qt(0.975, df)).
  const table: [number, number][] = [
    [1, 12.706204736174698],
    [2, 4.302652729749464],
    [4, 2.7764451051977987],
    [10, 2.2281388519649385],
    [30, 2.0422724563012373],
  ];
  for (const [df, q] of table) assert.ok(Math.abs(studentTQuantile(0.975, df) - q) < 1e-9, `df ${df}`);
  // A non-integer df lies between its neighbours.
  const q = studentTQuantile(0.975, 4.5);
  assert.ok(q < 2.7764451051977987 && q > 2.5705818366147395);
});

test('Welch interval: float64 hand computation; a pooled-variance interval and another level differ (controls)', () => {
  const a = [0.61, 0.64, 0.6];
  const b = [0.7, 0.62, 0.75, 0.69, 0.73];
  const mean = (x: number[]): number => x.reduce((s, v) => s + v, 0) / x.length;
  const varS = (x: number[]): number => x.reduce((s, v) => s + (v - mean(x)) ** 2, 0) / (x.length - 1);
  const va = varS(a) / a.length;
  const vb = varS(b) / b.length;
  const df = (va + vb) ** 2 / (va ** 2 / (a.length - 1) + vb ** 2 / (b.length - 1));
  const se = Math.sqrt(va + vb);
  const d = welchDifference(a, b);
  assert.ok(Math.abs(d.diff - (mean(b) - mean(a))) < 1e-15);
  assert.ok(Math.abs(d.df! - df) < 1e-12, `df ${d.df} against ${df}`);
  // The interval's half width over the standard error is the t quantile: its CDF is 0.975 at df.
  const q = (d.high! - d.diff) / se;
  assert.ok(Math.abs(d.diff - d.low! - q * se) < 1e-12, 'symmetric');
  assert.ok(Math.abs(studentTCdf(q, df) - 0.975) < 1e-10);
  // Equal sizes and variances: df = 2(n - 1) = 4 exactly, and the table's quantile.
  const e = welchDifference([1, 2, 3], [4, 5, 6]);
  assert.ok(Math.abs(e.df! - 4) < 1e-12);
  assert.ok(Math.abs(e.low! - (3 - 2.7764451051977987 * Math.sqrt(2 / 3))) < 1e-9);
  assert.ok(Math.abs(e.high! - (3 + 2.7764451051977987 * Math.sqrt(2 / 3))) < 1e-9);
  // Negative controls: Student's pooled interval (df n_a + n_b - 2) is not Welch's here, a 90% interval is
  // narrower, and one seed gives no interval.
  const sp = Math.sqrt(((a.length - 1) * varS(a) + (b.length - 1) * varS(b)) / (a.length + b.length - 2));
  const pooledHalf = studentTQuantile(0.975, a.length + b.length - 2) * sp * Math.sqrt(1 / a.length + 1 / b.length);
  assert.ok(Math.abs(pooledHalf - (d.high! - d.diff)) > 1e-3, 'Welch differs from the pooled interval');
  const d90 = welchDifference(a, b, 0.9);
  assert.ok(d90.high! - d90.low! < d.high! - d.low! - 1e-3);
  assert.equal(welchDifference([0.5], b).low, null);
  assert.ok(d.p! > 0 && d.p! < 0.05, `p ${d.p}`);
  assert.ok(Number.isNaN(moments([0.4]).sd));
});

test('plan: one factor at a time, grid, shared trainings, eval-only cells and ensemble partners', () => {
  const base = ['data.root=/nowhere', 'input.size=32'];
  assert.deepEqual(splitValues('a,[1,2],{x: 1, y: 2},b'), ['a', '[1,2]', '{x: 1, y: 2}', 'b']);
  const p = makePlan({
    set: base,
    vary: ['input.resize=squash,letterbox', 'eval.tta=flip', 'eval.ensemble=model.name=resnet34'],
    seeds: 2,
  });
  assert.deepEqual(
    p.cells.map((c) => c.id),
    ['base', 'input.resize=squash', 'input.resize=letterbox', 'eval.tta=flip', 'eval.ensemble=model.name=resnet34'],
  );
  // letterbox is the default: that cell shares the base's training; eval-only cells too.
  assert.deepEqual(
    p.cells.map((c) => c.training),
    ['base', 'input.resize=squash', 'base', 'base', 'base'],
  );
  assert.deepEqual(
    p.trainings.map((t) => [t.id, t.partnerOnly]),
    [
      ['base', false],
      ['input.resize=squash', false],
      ['model.name=resnet34', true],
    ],
  );
  assert.deepEqual(p.cells[3]!.eval, { tta: ['flip'] });
  assert.deepEqual(p.cells[4]!.eval, { ensembleWith: 'model.name=resnet34' });
  const js = jobs(p);
  assert.equal(js.length, 2 * (3 + 5));
  // Seed by seed; each evaluation after the trainings it needs.
  assert.deepEqual(
    js.slice(0, 4).map((j) => `${j.kind}:${j.name}`),
    ['train:base-s0', 'train:input.resize=squash-s0', 'train:model.name=resnet34-s0', 'eval:base-s0'],
  );
  const ens = js.find((j) => j.name === 'eval.ensemble=model.name=resnet34-s1');
  assert.ok(ens && ens.kind === 'eval');
  assert.deepEqual(ens.needs, ['base-s1', 'model.name=resnet34-s1']);

  // seed+K: the ensemble of a training's run and its run K seeds on (wrapping round), no extra training.
  const sk = makePlan({ set: base, vary: ['eval.ensemble=seed+1'], seeds: 3 });
  assert.deepEqual(
    sk.trainings.map((t) => t.id),
    ['base'],
  );
  const skJobs = jobs(sk).filter((j) => j.kind === 'eval' && j.cell.id !== 'base');
  assert.deepEqual(
    skJobs.map((j) => (j.kind === 'eval' ? j.needs : [])),
    [
      ['base-s0', 'base-s1'],
      ['base-s1', 'base-s2'],
      ['base-s2', 'base-s0'],
    ],
  );
  assert.throws(() => makePlan({ set: base, vary: ['eval.ensemble=seed+3'], seeds: 3 }), /the run itself/);

  const g = makePlan({ set: base, vary: ['input.resize=squash,center', 'augment.cutout=0,4'], grid: true, seeds: 1 });
  assert.equal(g.cells.length, 1 + 4);
  assert.ok(g.cells.some((c) => c.id === 'input.resize=center+augment.cutout=4'));
  const extra = makePlan({ set: base, vary: [], cells: ['model.name=resnet34;data.fraction=0.5'], seeds: 1 });
  assert.deepEqual(extra.cells[1]!.settings, [
    ['model.name', 'resnet34'],
    ['data.fraction', '0.5'],
  ]);
  // Bad keys and values fail before anything runs.
  assert.throws(() => makePlan({ set: base, vary: ['input.sise=64'], seeds: 1 }), /input\.sise/);
  assert.throws(() => makePlan({ set: base, vary: ['input.size=8'], seeds: 1 }), /input\.size/);
  assert.throws(() => makePlan({ set: base, vary: ['eval.size=big'], seeds: 1 }), /eval\.size/);
  assert.throws(() => makePlan({ set: base, vary: ['input.size'], seeds: 1 }), /key=value/);
});

/** Lines '$ goodsrec ...' in a job's log: how many times the job was started. */
const starts = (out: string, log: string): number =>
  readFileSync(join(out, 'logs', log), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('$ goodsrec ')).length;

test('goodsrec ablate: killed mid-way and restarted, finished jobs are not run again; summary, page', async () => {
  const out = join(work, 'abl');
  const args = [
    cli,
    'ablate',
    ...['--set', `data.root=${sample}`, '--set', 'model.name=resnet18', '--set', 'input.size=32'],
    ...['--set', 'batchSize=8', '--set', 'schedule.epochs=1', '--set', 'data.fraction=0.5'],
    ...['--set', 'data.workers=1', '--set', 'checkpointEverySteps=2'],
    ...['--vary', 'eval.tta=flip', '--vary', 'eval.size=40', '--seeds', '2', '--parallel', '2', '--threads', '1'],
    '--out',
    out,
  ];
  // First run: killed (with its children) as soon as the first training has its result.
  const first = spawn(process.execPath, args, { detached: true, stdio: 'ignore', env: { ...process.env, CI: '1' } });
  const exited = new Promise<void>((r) => first.on('exit', () => r()));
  const firstResult = join(out, 'results', 'base-s0.train.json');
  const otherResult = join(out, 'results', 'base-s1.train.json');
  while (!existsSync(firstResult) && !existsSync(otherResult) && first.exitCode === null)
    await new Promise((r) => setTimeout(r, 100));
  process.kill(-first.pid!, 'SIGKILL');
  await exited;
  const doneBefore = readdirSync(join(out, 'results')).filter((f) => f.endsWith('.json'));
  assert.ok(doneBefore.length >= 1 && doneBefore.length < 6, `done before the kill: ${doneBefore.join(', ')}`);

  // The killed runner's lock is left behind with a dead pid (taken over below); a live holder is refused.
  assert.ok(existsSync(join(out, 'ablate.lock')));
  writeFileSync(join(out, 'ablate.lock'), `${process.pid}\n`);
  const refused = spawnSync(process.execPath, args, { encoding: 'utf8', env: { ...process.env, CI: '1' } });
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, new RegExp(`another goodsrec ablate \\(pid ${process.pid}\\) is running`));
  writeFileSync(join(out, 'ablate.lock'), `${first.pid}\n`);

  const second = spawnSync(process.execPath, args, { encoding: 'utf8', env: { ...process.env, CI: '1' } });
  assert.equal(second.status, 0, second.stderr);
  assert.match(second.stderr, new RegExp(`${doneBefore.length} of 8 jobs done already`));
  // Every job finished exactly once; the ones done before the kill were not started again.
  for (const f of doneBefore) {
    const name = f.replace(/\.(train|eval)\.json$/, '');
    const kind = f.endsWith('.train.json') ? 'train' : 'eval';
    assert.equal(starts(out, `${name}.${kind}.log`), 1, `${f} was run again`);
  }
  const s = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as AblateSummary;
  assert.deepEqual(
    s.cells.map((c) => [c.id, c.seeds]),
    [
      ['base', [0, 1]],
      ['eval.tta=flip', [0, 1]],
      ['eval.size=40', [0, 1]],
    ],
  );
  for (const c of s.cells) for (const v of c.values.top1) assert.ok(v >= 0 && v <= 1);
  const flip = s.cells[1]!.vsBase!.top1;
  assert.ok(Math.abs(flip.diff - (s.cells[1]!.stats.top1.mean - s.cells[0]!.stats.top1.mean)) < 1e-12);
  // Two trainings for three cells: the eval-only cells used the base's run folders.
  assert.deepEqual(readdirSync(join(out, 'runs')).sort(), ['base-s0', 'base-s1']);
  const md = readFileSync(join(out, 'summary.md'), 'utf8');
  assert.match(md, /\| eval\.tta=flip \| 0,1 \|/);
  assert.match(md, /Welch/);
  const html = readFileSync(join(out, 'summary.html'), 'utf8');
  assert.match(html, /echarts/);
  assert.match(html, /eval\.size=40/);

  // A third run has nothing to do.
  const third = spawnSync(process.execPath, args, { encoding: 'utf8', env: { ...process.env, CI: '1' } });
  assert.equal(third.status, 0, third.stderr);
  assert.match(third.stderr, /8 of 8 jobs done already/);
  assert.ok(!existsSync(join(out, 'ablate.lock')), 'the lock is released');
});

test('the ablation page renders in headless Chromium: both charts drawn, no console errors', {
  skip: chromiumSkip(),
}, async () => {
  const cell = (id: string, top1: number[], base?: number[]): CellSummary => {
    const values = Object.fromEntries(ABLATE_METRICS.map((k) => [k, top1])) as Record<AblateMetric, number[]>;
    return {
      id,
      settings: [],
      training: id,
      seeds: top1.map((_, i) => i),
      values,
      stats: Object.fromEntries(ABLATE_METRICS.map((k) => [k, moments(top1)])) as CellSummary['stats'],
      ...(base
        ? {
            vsBase: Object.fromEntries(
              ABLATE_METRICS.map((k) => [k, welchDifference(base, top1)]),
            ) as CellSummary['vsBase'],
          }
        : {}),
      trainMinutes: 1.5,
    };
  };
  const base = [0.3, 0.32, 0.29];
  const s: AblateSummary = {
    format: 'goodsrec-ablate-1',
    split: 'test',
    seeds: [0, 1, 2],
    interval: '95% Welch t interval',
    metrics: ABLATE_METRICS,
    cells: [
      cell('base', base),
      cell('input.resize=squash', [0.27, 0.26, 0.3], base),
      cell('eval.tta=flip', [0.31, 0.33, 0.3], base),
    ],
  };
  const file = join(work, 'page.html');
  writeFileSync(file, renderAblationHtml(s));
  await withChromium(async (browser) => {
    const { page, painted, errors } = await openPage(browser, file);
    assert.equal(painted.length, 2, 'chart containers');
    for (const [i, n] of painted.entries()) assert.ok(n > 500, `chart ${i} has ${n} painted pixels`);
    assert.deepEqual(errors, [], 'console errors');
    await page.screenshot({ path: join(artifacts, 'ablation-page.png'), fullPage: true });
    await page.close();
  });
});
