// One eval-file schema (schemas/eval-file.schema.json) for `eval`, `eval --gallery` and `ensemble --out`:
// files the CLI writes validate against it (Ajv, JSON Schema 2020-12), files in the older layouts are
// read and brought to it, and a gallery evaluation lists the folder entries it skipped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { makeRun, repoRoot, sample } from './fixres-helpers.js';
import {
  EVAL_FILE_FORMAT,
  readAnyEvalFile,
  readEvalFile,
  migrateEvalFile,
  serializeEvalFile,
  type ClassifierEvalFile,
  type GalleryEvalFile,
} from '../src/run/eval-file.js';

const cli = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const work = mkdtempSync(join(tmpdir(), 'goodsrec-eval-file-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

const schema = JSON.parse(readFileSync(join(repoRoot, 'schemas', 'eval-file.schema.json'), 'utf8')) as object;
const validate = new Ajv2020({ allErrors: true, strict: true }).compile(schema);

function check(v: unknown, what: string): void {
  assert.ok(validate(v), `${what}: ${JSON.stringify(validate.errors, null, 1)}`);
}

function run(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, CI: '1' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const readJson = (p: string): Record<string, unknown> => JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;

test('eval, eval --gallery and ensemble --out write files of the one schema; old layouts and negative controls', async () => {
  const runA = join(work, 'a');
  const runB = join(work, 'b');
  await makeRun(runA, { seed: 1 });
  await makeRun(runB, { seed: 2 });
  // The test split with a dangling symlink: a folder entry every evaluation must list as skipped.
  const data = join(work, 'data');
  cpSync(sample, data, { recursive: true });
  const dangling = join(data, 'test', readdirSync(join(data, 'test')).sort()[0]!, 'gone.jpg');
  symlinkSync(join(work, 'missing.jpg'), dangling);

  // Plain evaluation: into the run folder by default.
  let r = run(['eval', runA, '--data', data, '--split', 'test']);
  assert.equal(r.code, 3, r.stderr);
  const plain = readJson(join(runA, 'eval-test.json'));
  check(plain, 'eval');
  // Accuracy by training frequency: this fake run records no counts, so the sample's train split is counted.
  const pm = plain.metrics as { samples: number; byFrequency?: Record<string, { samples: number } | string> };
  const bf = pm.byFrequency;
  assert.ok(bf, 'metrics.byFrequency');
  assert.match(bf.source as string, /the 'train' split of /);
  const groups = ['many', 'medium', 'few'].map((g) => (bf[g] as { samples: number }).samples);
  assert.equal(
    groups.reduce((a, b) => a + b, 0),
    pm.samples,
  );
  assert.equal(plain.format, EVAL_FILE_FORMAT);
  assert.equal(plain.kind, 'classifier');
  assert.deepEqual(
    (plain.skipped as { path: string }[]).map((s) => s.path),
    [dangling],
  );

  // Gallery evaluation: the same top level, its numbers under metrics, the skipped entry listed.
  const gallery = join(work, 'shop.gallery');
  r = run(['gallery', 'build', runA, '--data', sample, '--split', 'train', '--out', gallery]);
  assert.equal(r.code, 0, r.stderr);
  r = run(['eval', runA, '--gallery', gallery, '--data', data, '--split', 'test']);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, new RegExp(`${dangling}: dangling-symlink`), 'skipped entries listed on stderr');
  const gal = readJson(join(runA, 'eval-test-gallery.json'));
  check(gal, 'eval --gallery');
  assert.equal(gal.kind, 'gallery');
  const gm = gal.metrics as Record<string, number | null>;
  assert.equal(gm.samples, 60);
  assert.equal(gm.known, 60);
  assert.equal(gm.unknownRejected, null, 'a rate of nothing (no unknown photos) is null');
  assert.deepEqual(
    (gal.skipped as { path: string; reason: string }[]).map((s) => [s.path, s.reason]),
    [[dangling, 'dangling-symlink']],
  );
  assert.ok(!('samples' in gal) && !('top1' in gal), 'no numbers at the top level');

  // Ensemble evaluation: a classifier file with its members.
  r = run(['ensemble', runA, runB, '--data', sample, '--split', 'test', '--out', join(work, 'ens.json')]);
  assert.equal(r.code, 0, r.stderr);
  const ens = readJson(join(work, 'ens.json'));
  check(ens, 'ensemble --out');
  assert.equal((ens.members as unknown[]).length, 2);

  // Negative controls: the schema tells the kinds apart and refuses the old gallery layout.
  const oldGallery: Record<string, unknown> = { ...gal, ...(gal.metrics as object) };
  delete oldGallery.metrics;
  delete oldGallery.format;
  delete oldGallery.kind;
  assert.ok(!validate(oldGallery), 'the old gallery layout is not the schema');
  assert.ok(!validate({ ...gal, kind: 'classifier' }), 'gallery metrics under kind classifier');
  assert.ok(!validate({ ...plain, gallery: gallery }), 'a gallery field in a classifier evaluation');
  assert.ok(!validate({ ...plain, metrics: { ...(plain.metrics as object), top1: 1.5 } }), 'a rate above 1');
  assert.ok(!validate({ ...plain, format: 'goodsrec-eval-3' }), 'another format');

  // Files in the older layouts (no format; gallery numbers at the top level) are read and brought to the schema.
  const oldPlain: Record<string, unknown> = { ...plain };
  delete oldPlain.format;
  delete oldPlain.kind;
  delete oldPlain.skipped;
  delete oldPlain.badFiles;
  writeFileSync(join(work, 'old-plain.json'), JSON.stringify(oldPlain));
  writeFileSync(join(work, 'old-gallery.json'), JSON.stringify(oldGallery));
  const p = readEvalFile(join(work, 'old-plain.json'));
  check(p, 'old eval file as read');
  assert.deepEqual(p.metrics, plain.metrics);
  assert.deepEqual(p.skipped, []);
  const g = readAnyEvalFile(join(work, 'old-gallery.json'));
  check(g, 'old gallery eval file as read');
  assert.deepEqual(g.metrics, gal.metrics);
  assert.deepEqual(readAnyEvalFile(join(runA, 'eval-test-gallery.json')), gal);
  // The report's reader wants a classifier evaluation and says why not.
  assert.throws(() => readEvalFile(join(work, 'old-gallery.json')), /a gallery evaluation \(eval --gallery\)/);
  assert.throws(() => migrateEvalFile({ ...plain, format: 'goodsrec-eval-3' }, 'x.json'), /format 3 is newer/);
  assert.throws(
    () => migrateEvalFile({ metrics: {} }, 'x.json'),
    /x\.json: not an evaluation written by goodsrec eval/,
  );
  // `goodsrec report` takes an old file as before.
  r = run(['report', join(work, 'old-plain.json')]);
  assert.equal(r.code, 0, r.stderr);
});

test('eval files: one line per confusion row and per prediction, the same JSON value (2,388 classes)', () => {
  const k = 2388;
  const classes = Array.from({ length: k }, (_, i) => (i === 7 ? '"confusion": "\u0001confusion"' : `类${i}`));
  const confusion = Array.from({ length: k }, (_, i) => Array.from({ length: k }, (_, j) => (i === j ? 1 : 0)));
  const ev: ClassifierEvalFile = {
    format: EVAL_FILE_FORMAT,
    kind: 'classifier',
    model: 'm',
    checkpoint: null,
    data: '/d',
    split: 'test',
    tta: [],
    classes,
    metrics: { samples: k, top1: 1, top5: 1, meanClassAccuracy: 1, loss: null, perClass: [], confusion },
    predictions: classes.map((_, i) => ({ index: i, path: `p/${i}.jpg`, label: i, top: [i], probs: [1] })),
    badFiles: [],
    skipped: [],
  };
  const text = serializeEvalFile(ev);
  assert.deepEqual(JSON.parse(text), ev);
  const lines = text.split('\n').length;
  assert.ok(lines < 4 * k, `${lines} lines (classes, confusion rows, predictions: one line each)`);
  // Negative control: plain indentation puts every number on its own line.
  assert.ok(JSON.stringify(ev, null, 2).split('\n').length > k * k);
  assert.ok(text.length * 4 < JSON.stringify(ev, null, 2).length, 'at least 4x smaller');
  const { classes: _c, ...common } = ev;
  const gallery: GalleryEvalFile = { ...common, kind: 'gallery', gallery: 'g', metrics: {} as never, predictions: [] };
  assert.deepEqual(JSON.parse(serializeEvalFile(gallery)), gallery);
});
