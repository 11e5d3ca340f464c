// Folders with bad entries - dangling symlinks, a symlink loop, a folder symlink cycle, a FIFO, a socket,
// a mode-000 file, a folder named *.jpg - through train, predict, eval and analyze of the compiled CLI:
// each entry is reported with its path and reason and skipped, the good photos are processed, and the
// exit code is 3 (some inputs failed). A FIFO must never block (the spawn has a timeout).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..', '..');
const cli = join(root, 'dist', 'src', 'cli', 'main.js');
const sample = join(root, 'examples', 'grocery-sample');
const work = mkdtempSync(join(tmpdir(), 'goodsrec-bad-entries-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

function run(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], {
    encoding: 'utf8',
    env: { ...process.env, CI: '1' },
    timeout: 120_000,
  });
  if (r.error) throw r.error; // a timeout: something blocked (a FIFO opened for reading?)
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

// Two classes x 4 photos per split, plus one of every kind of bad entry in train/<first class>.
const ds = join(work, 'ds');
const classes = readdirSync(join(sample, 'train')).sort().slice(0, 2);
for (const split of ['train', 'test']) {
  for (const c of classes) {
    mkdirSync(join(ds, split, c), { recursive: true });
    for (const f of readdirSync(join(sample, split, c))
      .sort()
      .slice(0, 4))
      copyFileSync(join(sample, split, c, f), join(ds, split, c, f));
  }
}
const bad = join(ds, 'train', classes[0]!);
symlinkSync(join(work, 'nowhere.jpg'), join(bad, 'dangling.jpg'));
symlinkSync('loop.jpg', join(bad, 'loop.jpg'));
symlinkSync('..', join(bad, 'cycle'));
mkdirSync(join(bad, 'folder.jpg'));
copyFileSync(
  join(bad, readdirSync(bad).find((f) => f.endsWith('.jpg') && !f.startsWith('dangling') && !f.startsWith('loop'))!),
  join(bad, 'noread.jpg'),
);
chmodSync(join(bad, 'noread.jpg'), 0o000);
const fifo = spawnSync('mkfifo', [join(bad, 'pipe.jpg')]);
const sock = spawnSync('python3', [
  '-c',
  `import socket; s=socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(join(bad, 'sock.jpg'))})`,
]);
const expected: [string, RegExp][] = [
  ['dangling.jpg', /dangling-symlink/],
  ['loop.jpg', /symlink-loop/],
  ['cycle', /symlink-loop/],
  ['folder.jpg', /folder-named-like-a-file/],
  ['noread.jpg', /unreadable \(no read permission/],
  ...(fifo.status === 0 ? [['pipe.jpg', /fifo/] as [string, RegExp]] : []),
  ...(sock.status === 0 ? [['sock.jpg', /socket/] as [string, RegExp]] : []),
];

function assertReported(text: string): void {
  for (const [name, reason] of expected) {
    const line = text.split('\n').find((l) => l.includes(join(bad, name)));
    assert.ok(line, `${name} is reported in:\n${text}`);
    assert.match(line, reason, `${name}: reason`);
  }
}

test('fixture has every kind of bad entry (mkfifo and AF_UNIX available)', () => {
  assert.equal(fifo.status, 0, 'mkfifo failed: the FIFO case is not checked');
  assert.equal(sock.status, 0, 'python3 socket bind failed: the socket case is not checked');
});

const runDir = join(work, 'runs', 'r');

test('train: a summary of skipped entries before the first step, trains on the rest, exit 3', () => {
  const r = run([
    'train',
    '--data',
    ds,
    '--model',
    'resnet18',
    '--size',
    '32',
    '--batch-size',
    '4',
    '--epochs',
    '1',
    '--out',
    join(work, 'runs'),
    '--name',
    'r',
    '--set',
    'threads=2',
    '--set',
    'data.workers=1',
    '--set',
    'augment.cutout=4',
  ]);
  assert.equal(r.code, 3, r.stderr);
  const out = r.stdout + r.stderr;
  assertReported(out);
  const summary = out.indexOf('will be skipped');
  const firstEpoch = out.indexOf('epoch 1:');
  assert.ok(summary >= 0 && firstEpoch > summary, 'the summary comes before the first epoch ends');
  const listed = JSON.parse(readFileSync(join(runDir, 'skipped-inputs.json'), 'utf8')) as { path: string }[];
  assert.equal(listed.length, expected.length);
  assert.ok(existsSync(join(runDir, 'best.json')), 'a checkpoint was written');
});

test('predict on the folder: bad entries reported with their reason, good photos predicted, exit 3', () => {
  const r = run(['predict', runDir, bad, join(work, 'missing.jpg'), '--json']);
  assert.equal(r.code, 3, r.stderr);
  const preds = JSON.parse(r.stdout) as { path: string; top: unknown[]; error?: string }[];
  const good = preds.filter((p) => !p.error);
  assert.equal(good.length, 4, 'the 4 photos are predicted');
  assert.ok(good.every((p) => p.top.length === 2));
  assertReported(
    preds
      .filter((p) => p.error)
      .map((p) => `${p.path}: ${p.error}`)
      .join('\n'),
  );
  assert.ok(preds.some((p) => p.path.endsWith('missing.jpg') && /missing/.test(p.error ?? '')));
  assert.match(r.stderr, /could not be predicted \(exit code 3\)/);
  // Negative control: a folder without bad entries exits 0.
  const ok = run(['predict', runDir, join(ds, 'test', classes[0]!)]);
  assert.equal(ok.code, 0, ok.stderr);
});

test('predict on a FIFO given by name does not block', (t) => {
  if (fifo.status !== 0) {
    t.skip('no mkfifo');
    return;
  }
  const r = run(['predict', runDir, join(bad, 'pipe.jpg')]);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stdout, /error: fifo/);
});

test('eval on the train split: skipped entries listed in the eval JSON, exit 3', () => {
  const out = join(work, 'eval.json');
  const r = run(['eval', runDir, '--data', ds, '--split', 'train', '--out', out]);
  assert.equal(r.code, 3, r.stderr);
  assertReported(r.stderr);
  const e = JSON.parse(readFileSync(out, 'utf8')) as { metrics: { samples: number }; skipped: { path: string }[] };
  assert.equal(e.metrics.samples, 8);
  assert.equal(e.skipped.length, expected.length);
  // Negative control: the clean test split exits 0.
  const ok = run(['eval', runDir, '--data', ds, '--split', 'test', '--out', join(work, 'eval-test.json')]);
  assert.equal(ok.code, 0, ok.stderr);
});

test('analyze: skipped entries in the summary and the JSON, exit 3', () => {
  const out = join(work, 'analysis');
  const r = run(['analyze', ds, '--out', out]);
  assert.equal(r.code, 3, r.stderr);
  assertReported(r.stderr);
  const a = JSON.parse(readFileSync(join(out, 'analysis.json'), 'utf8')) as { images: number; skipped: unknown[] };
  assert.equal(a.images, 16);
  assert.equal(a.skipped.length, expected.length);
});
