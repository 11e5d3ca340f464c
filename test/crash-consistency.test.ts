// Crash consistency, short version of scripts/crash-consistency.mjs (the 50-kill run is
// `npm run crash-test`): 6 SIGKILLs of a tiny training run (4 inside atomic writes through
// GOODSREC_FAULT, one at an epoch end, one at a random moment), each followed by --resume, end
// with weights bit-identical to an uninterrupted run; `average`, `export` and `gallery build/add`
// killed inside their writes leave the old or the new complete version. Negative controls: the
// checks refuse a cut checkpoint, a cut gallery and a graph paired with another sidecar.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadCheckpoint } from '../src/run/checkpoint.js';
import { readGallery, writeGallery, GALLERY_FORMAT } from '../src/gallery/format.js';
import { writeDirAtomic, recoverDirAtomic } from '../src/util/atomic.js';
import { exportLoaded } from '../src/serve/onnx/export.js';
import { openServedModel } from '../src/serve/model.js';
import { standInRecognizer } from './serve-helpers.js';

const root = resolve(import.meta.dirname, '..', '..');
const work = mkdtempSync(join(tmpdir(), 'goodsrec-crash-test-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

interface Summary {
  train: {
    kills: number;
    runs: number;
    identical: number;
    byKind: Record<string, number>;
    afterKill: Record<string, number>;
    faultsNotReached: number;
  };
  writers: Record<string, { kills: number; old: number; new: number; torn: number; broken: number }>;
  failures: string[];
}

// The timeouts are hang guards, not speed limits: the run took 290-300 s at a load of 17-20 (2 cores),
// which the old 290 s guard cut short.
test('6 kills (4 inside writes, 1 at an epoch end) then --resume: bit-identical weights; writers killed mid-write keep a whole version', {
  timeout: 900_000,
}, () => {
  // Writes of a fresh run: 1-5 config/classes/preprocess/versions/dataset, 6-8 the first checkpoint's
  // files, 9 latest.json. dir:1:after-rename leaves a checkpoint folder latest.json does not name; the
  // next launch saves it again, replacing it, and dir:1:swapped kills between moving it aside and
  // renaming the new one in.
  const plan = [
    'file:7:partial',
    'dir:1:after-rename',
    'dir:1:swapped',
    'file:2:before-rename',
    'epoch:1',
    'random:0.3',
  ];
  const r = spawnSync(
    process.execPath,
    [
      join(root, 'scripts', 'crash-consistency.mjs'),
      '--plan',
      plan.join(','),
      '--writer-kills',
      '1',
      '--writer-faults-in-order',
      '--epochs',
      '2',
      '--json',
    ],
    { encoding: 'utf8', timeout: 880_000 },
  );
  const line = r.stdout.trim().split('\n').pop() ?? '';
  assert.ok(line.startsWith('{'), `no summary (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
  const s = JSON.parse(line) as Summary;
  assert.deepEqual(s.failures, []);
  assert.equal(s.train.kills, 6, JSON.stringify(s.train));
  assert.equal(s.train.faultsNotReached, 0);
  assert.equal(s.train.runs, 1);
  assert.equal(s.train.identical, 1);
  assert.equal(s.train.byKind['epoch-end'], 1);
  assert.equal(
    Object.entries(s.train.byKind)
      .filter(([k]) => k.startsWith('fault'))
      .reduce((a, [, n]) => a + n, 0),
    4,
  );
  assert.equal(s.train.afterKill.broken ?? 0, 0);
  for (const [name, w] of Object.entries(s.writers)) {
    assert.equal(w.kills, 1, `${name} killed`);
    assert.equal(w.old + w.new, 1, `${name}: ${JSON.stringify(w)}`);
    assert.equal(w.broken + w.torn, 0, name);
  }
  assert.equal(r.status, 0, r.stderr);
});

test('negative controls: a cut checkpoint, a cut gallery and a mismatched export pair are refused', async () => {
  // A folder write killed between moving the old folder aside and renaming the new one in: put back.
  const dir = join(work, 'ck');
  await writeDirAtomic(dir, (t) => writeFileSync(join(t, 'v'), 'old'));
  const aside = join(work, '.ck.old-999999-1');
  cpSync(dir, aside, { recursive: true });
  rmSync(dir, { recursive: true });
  recoverDirAtomic(dir);
  assert.equal(readFileSync(join(dir, 'v'), 'utf8'), 'old');

  const { recognizer, exportDir } = await standInRecognizer(work);
  const g = join(work, 'g.gallery');
  writeGallery(g, {
    meta: {
      format: GALLERY_FORMAT,
      dim: 2,
      k: 1,
      threshold: null,
      entries: [{ class: 'a', path: '/a.jpg' }],
      model: {
        hash: 'ab'.repeat(32),
        checkpoint: '/x',
        name: 'resnet18',
        embedding: 'pooled',
        preprocess: recognizer.preprocess,
      },
    },
    embeddings: new Float32Array([1, 0]),
  });
  assert.equal(readGallery(g).meta.entries.length, 1);
  truncateSync(g, 40);
  assert.throws(() => readGallery(g), /not a gallery file/);

  // A checkpoint whose weights file was cut (what a non-atomic write killed halfway would leave).
  const ckDir = join(work, 'cut-ck');
  const { saveCheckpoint } = await import('../src/run/checkpoint.js');
  await saveCheckpoint(join(work), 'cut-ck', { model: recognizer.model.stateDict(), optimizer: {}, state: {} });
  truncateSync(join(ckDir, 'model.safetensors'), 1000);
  assert.throws(() => loadCheckpoint(ckDir), /truncated|offset|size/i);

  // A graph from another export next to this sidecar is refused ...
  const other = join(work, 'other');
  exportLoaded(recognizer, { outDir: other, tta: ['flip'] });
  copyFileSync(join(exportDir, 'model.onnx'), join(work, 'own.onnx'));
  copyFileSync(join(other, 'model.onnx'), join(exportDir, 'model.onnx'));
  await assert.rejects(openServedModel(exportDir, { threads: 1 }), /describes another graph/);
  // ... unless the sidecar's own graph waits in model.onnx.next (an export killed after its sidecar).
  copyFileSync(join(work, 'own.onnx'), join(exportDir, 'model.onnx.next'));
  const m = await openServedModel(exportDir, { threads: 1 });
  await m.release();
  assert.deepEqual(readFileSync(join(exportDir, 'model.onnx')), readFileSync(join(work, 'own.onnx')));
});
