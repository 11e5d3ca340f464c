// The run folder as src/run owns it: RunFolder's layout (the file names users see), run folders in the
// layout older goodsrec wrote, the checkpoint policy (what is saved when, what best/latest name, what
// pruning keeps, failed writes), a held folder followed when moved and never re-created when deleted, the
// optimizer factory, and `eval RUN/checkpoints/avg` while `average` was killed between its two renames.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../src/tensor/index.js';
import { AdamW, SGD, createOptimizer } from '../src/optim/index.js';
import { DEFAULT_CONFIG } from '../src/run/config.js';
import { loadCheckpoint, resolveCheckpoint, saveCheckpoint, type CheckpointContent } from '../src/run/checkpoint.js';
import { CheckpointPolicy } from '../src/run/checkpoint-policy.js';
import { RunFolder, RunFolderGoneError } from '../src/run/run-folder.js';
import { recordedDataRoot } from '../src/eval/align.js';
import { loadRecognizer, disposeRecognizer } from '../src/eval/predictor.js';
import { readRunStart } from '../src/train/run-start.js';
import { WriteError } from '../src/util/atomic.js';
import { makeRun, repoRoot, sample } from './fixres-helpers.js';

const cli = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const work = mkdtempSync(join(tmpdir(), 'goodsrec-run-folder-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

/** A one-tensor checkpoint (the policy and the folder do not care what the model is). */
function content(v: number): CheckpointContent {
  return { model: new Map([['w', T.tensor(new Float32Array([v]), [1])]]), optimizer: {}, state: { v } };
}

const json = (path: string): Record<string, unknown> =>
  JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
const folders = (dir: string): string[] =>
  readdirSync(dir)
    .filter((n) => !n.startsWith('.'))
    .sort();

test('RunFolder paths: the file names of the layout users and older tools know', () => {
  const f = new RunFolder(join(work, 'names'));
  const names = (
    [
      'config',
      'classes',
      'preprocess',
      'versions',
      'dataset',
      'metrics',
      'badFiles',
      'skippedInputs',
      'fixres',
      'latest',
      'best',
    ] as const
  ).map((r) => f.path(r).slice(f.root.length + 1));
  assert.deepEqual(names, [
    'config.json',
    'classes.json',
    'preprocess.json',
    'versions.json',
    'dataset.json',
    'metrics.jsonl',
    'bad-files.json',
    'skipped-inputs.json',
    'fixres.json',
    'latest.json',
    'best.json',
  ]);
  assert.equal(f.checkpoint('epoch-0001'), join(f.root, 'checkpoints', 'epoch-0001'));
  assert.equal(f.evalFile('test'), join(f.root, 'eval-test.json'));
  assert.equal(f.evalFile('test', 'gallery'), join(f.root, 'eval-test-gallery.json'));
});

test('run folders in the older layout load: no dataset.json/versions.json, pointers without extras, config only', async () => {
  // makeRun writes the files by name with plain atomic writes, as goodsrec did before src/run owned the layout.
  const dir = join(work, 'old');
  await makeRun(dir, { checkpoints: 2 });
  const f = new RunFolder(dir);
  assert.ok(f.isRun() && f.isDescribed());
  assert.equal(f.readInfo().classes.length, 6);
  assert.equal(f.readDataset()?.root, sample);
  assert.equal(recordedDataRoot(dir), sample);
  assert.equal(f.pointer('best'), join(dir, 'checkpoints', 'epoch-0002'));
  assert.equal(resolveCheckpoint(dir).checkpointDir, join(dir, 'checkpoints', 'epoch-0002'));
  const r = loadRecognizer(dir);
  assert.equal(r.classes.length, 6);
  disposeRecognizer(r);
  // Older still: no dataset.json (eval then needs --data).
  rmSync(join(dir, 'dataset.json'));
  assert.equal(f.readDataset(), undefined);
  assert.equal(recordedDataRoot(dir), undefined);
  // A run killed right after config.json: resumable from step 0.
  const bare = join(work, 'bare');
  mkdirSync(bare);
  writeFileSync(join(bare, 'config.json'), JSON.stringify(DEFAULT_CONFIG));
  const s = readRunStart(new RunFolder(bare), bare);
  assert.equal(s.stored, null);
  assert.equal(s.config.optim.name, DEFAULT_CONFIG.optim.name);
  assert.throws(() => readRunStart(new RunFolder(join(work, 'none')), 'none'), /not a run folder \(no config\.json\)/);
});

test('checkpoint policy: saves on improvement, every n epochs and the last; best.json, latest.json; pruning keeps averages', async () => {
  const f = new RunFolder(join(work, 'policy')).create();
  const policy = new CheckpointPolicy({ everyEpochs: 2, everySteps: 0, keep: 1, failuresTolerated: 1 });
  const top1 = [0.2, 0.5, 0.4, 0.5, 0.6, 0.3];
  const saved: number[] = [];
  for (let e = 1; e <= top1.length; e++) {
    const d = policy.atEpochEnd(e, { isLast: e === top1.length, stop: false, top1: top1[e - 1], hasVal: true });
    if (!d.save) continue;
    saved.push(e);
    policy.settleEpoch(f, d, await policy.save(f, d.name, content(e), { position: { epoch: e, step: 0 } }));
    // `goodsrec average` run beside the training: not a periodic checkpoint, never pruned.
    if (e === 2) await saveCheckpoint(f.checkpointsDir, 'avg-last2', content(0));
  }
  // 1, 2, 5 improved (0.5 after 0.5 is no improvement); 2, 4, 6 are due; 6 is the last.
  assert.deepEqual(saved, [1, 2, 4, 5, 6]);
  assert.deepEqual(policy.best, { top1: 0.6, epoch: 5, checkpoint: 'epoch-0005' });
  assert.deepEqual(json(f.path('best')), { checkpoint: 'epoch-0005', top1: 0.6, epoch: 5 });
  assert.deepEqual(json(f.path('latest')), { checkpoint: 'epoch-0006', position: { epoch: 6, step: 0 } });
  // Kept: best (5), latest (6), the newest other periodic one (4), and the average.
  assert.deepEqual(folders(f.checkpointsDir), ['avg-last2', 'epoch-0004', 'epoch-0005', 'epoch-0006']);
  assert.equal(loadCheckpoint(f.checkpoint('epoch-0004')).state.v, 4);
  f.release();

  // Without validation the last epoch's checkpoint is the best; nothing else is due.
  const g = new RunFolder(join(work, 'no-val')).create();
  const p2 = new CheckpointPolicy({ everyEpochs: 5, everySteps: 2, keep: 3, failuresTolerated: 1 });
  for (let e = 1; e <= 3; e++) {
    const d = p2.atEpochEnd(e, { isLast: e === 3, stop: false, hasVal: false });
    assert.equal(d.save, e === 3);
    if (d.save) p2.settleEpoch(g, d, await p2.save(g, d.name, content(e)));
  }
  assert.deepEqual(json(g.path('best')), { checkpoint: 'epoch-0003', epoch: 3 });
  assert.equal(p2.best, null);
  // Inside an epoch of 5 steps: every 2 steps, not at the epoch's end (the epoch end saves).
  assert.deepEqual(
    [1, 2, 3, 4, 5].map((s) => p2.dueAtStep(s, 5)),
    [false, true, false, true, false],
  );
  // A stop request saves at an epoch end that is not due.
  assert.equal(p2.atEpochEnd(1, { isLast: false, stop: true, hasVal: false }).save, true);
  g.release();
});

test('checkpoint policy: a failed write keeps the previous checkpoint, two in a row stop; tensors are freed either way', async () => {
  class FlakyFolder extends RunFolder {
    failures = 0;
    override async saveCheckpoint(name: string, c: CheckpointContent): Promise<string> {
      if (this.failures-- > 0)
        throw new WriteError(this.checkpoint(name), Object.assign(new Error('no space'), { code: 'ENOSPC' }));
      return super.saveCheckpoint(name, c);
    }
  }
  const f = new FlakyFolder(join(work, 'flaky')).create();
  const policy = CheckpointPolicy.forTraining({ checkpointEvery: 1, checkpointEverySteps: 0, keepCheckpoints: 5 });
  const lines: string[] = [];
  const log = (l: string): void => void lines.push(l);
  assert.equal(await policy.save(f, 'epoch-0001', content(1), {}, log), 'epoch-0001');
  f.failures = 1;
  const c2 = content(2);
  assert.equal(await policy.save(f, 'epoch-0002', c2, {}, log), null);
  assert.ok(c2.model.get('w')!.isDisposed, 'tensors freed after a failed save');
  assert.ok(policy.lastSaveFailed);
  assert.match(
    lines.join('\n'),
    /checkpoint epoch-0002 could not be saved: .*disk full; the previous checkpoint is intact/,
  );
  assert.equal(json(f.path('latest')).checkpoint, 'epoch-0001');
  assert.equal(await policy.save(f, 'epoch-0003', content(3), {}, log), 'epoch-0003');
  assert.ok(!policy.lastSaveFailed, 'a success resets the count');
  f.failures = 2;
  assert.equal(await policy.save(f, 'epoch-0004', content(4), {}, log), null);
  await assert.rejects(
    policy.save(f, 'epoch-0005', content(5), {}, log),
    /two checkpoints in a row could not be saved/,
  );
  assert.equal(json(f.path('latest')).checkpoint, 'epoch-0003');
  // A one-off writer (FixRes) tolerates none.
  f.failures = 1;
  await assert.rejects(CheckpointPolicy.single().save(f, 'fixres-64', content(6)), WriteError);
  f.release();
});

test('a held run folder is followed when moved and never re-created at its old path; a deleted one is refused', async () => {
  const dir = join(work, 'moving');
  const to = join(work, 'moved');
  const moves: string[][] = [];
  const f = new RunFolder(dir, (a, b) => moves.push([a, b])).create();
  f.writeStart(DEFAULT_CONFIG);
  renameSync(dir, to);
  f.appendMetric({ type: 'epoch', epoch: 1 });
  await f.saveCheckpoint('epoch-0001', content(1));
  f.writePointer('latest', 'epoch-0001');
  assert.ok(!existsSync(dir), 'nothing written at the old path');
  assert.equal(f.root, to);
  assert.deepEqual(moves, [[dir, to]]);
  assert.deepEqual(folders(to), ['checkpoints', 'config.json', 'latest.json', 'metrics.jsonl']);
  assert.equal(loadCheckpoint(join(to, 'checkpoints', 'epoch-0001')).state.v, 1);
  // Negative control: a folder nobody holds is written where its path points, re-creating it.
  new RunFolder(dir).writeJson('best', { checkpoint: 'x' });
  assert.ok(existsSync(join(dir, 'best.json')));
  rmSync(dir, { recursive: true });
  // Deleted while held: refused, and neither path comes back.
  rmSync(to, { recursive: true });
  assert.throws(() => f.writePointer('latest', 'epoch-0002'), RunFolderGoneError);
  await assert.rejects(f.saveCheckpoint('epoch-0002', content(2)), /was deleted while in use/);
  assert.ok(!existsSync(to) && !existsSync(dir));
  f.release();
});

test('createOptimizer builds the configured optimizer with its settings (no casts at the call sites)', () => {
  const p = T.zeros([2]).keep();
  const sgd = createOptimizer([{ params: [p] }], {
    name: 'sgd',
    lr: 0.1,
    weightDecay: 1e-4,
    momentum: 0.9,
    nesterov: true,
  });
  assert.ok(sgd instanceof SGD);
  assert.deepEqual(sgd.stateDict().param_groups[0], {
    lr: 0.1,
    momentum: 0.9,
    dampening: 0,
    weight_decay: 1e-4,
    nesterov: true,
    maximize: false,
    params: [0],
  });
  const adamw = createOptimizer([{ params: [p], weightDecay: 0 }], { name: 'adamw', lr: 1e-3, weightDecay: 0.05 });
  assert.ok(adamw instanceof AdamW);
  assert.equal(adamw.paramGroups[0]!.lr, 1e-3);
  assert.equal(adamw.paramGroups[0]!.weightDecay, 0, 'the group overrides');
  assert.throws(
    () => createOptimizer([{ params: [p] }], { name: 'lamb' as 'sgd', lr: 1, weightDecay: 0 }),
    /unknown optimizer 'lamb'/,
  );
  p.dispose();
});

test('eval RUN/checkpoints/avg while `average` was killed between moving the old folder aside and renaming the new one in', async () => {
  const dir = join(work, 'avg-run');
  await makeRun(dir, { checkpoints: 3 });
  const run = (args: string[], env: Record<string, string> = {}) =>
    spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, CI: '1', ...env } });
  let r = run(['average', dir, '--last', '2', '--name', 'avg']);
  assert.equal(r.status, 0, r.stderr);
  r = run(['average', dir, '--last', '3', '--name', 'avg'], { GOODSREC_FAULT: 'dir:1:swapped' });
  assert.equal(r.signal, 'SIGKILL', 'killed inside the folder swap');
  const avg = join(dir, 'checkpoints', 'avg');
  assert.ok(!existsSync(avg), 'the swapped state: the old folder is aside, the new one not yet in place');
  // Before: "MODEL: '.../checkpoints/avg' not found" (exit 2), though loading it puts it back.
  r = run(['eval', avg, '--split', 'test', '--out', join(work, 'avg-eval.json')]);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(loadCheckpoint(avg).state.averagedFrom, ['epoch-0002', 'epoch-0003'], 'the old complete version');
  assert.equal(json(join(work, 'avg-eval.json')).checkpoint, avg);
});
