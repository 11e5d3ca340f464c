// Data-parallel training through the CLI on the embedded sample: the --nproc-per-node launcher,
// ranks started by hand with torchrun's environment, a killed rank ending the job with an error
// naming rank and step, resume with another world size, and a config mismatch refused at start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort } from './helpers/free-port.js';

const root = resolve(import.meta.dirname, '..', '..');
const cli = join(root, 'dist', 'src', 'cli', 'main.js');
const sample = join(root, 'examples', 'grocery-sample');
const work = mkdtempSync(join(tmpdir(), 'goodsrec-dist-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

const tiny = [
  '--data',
  sample,
  '--model',
  'resnet18',
  '--size',
  '32',
  '--batch-size',
  '8',
  '--set',
  'data.fraction=0.5',
  '--set',
  'augment.cutout=4',
  '--set',
  'data.workers=0',
  '--set',
  'validateEvery=0',
];

interface Rank {
  code: Promise<number | null>;
  stderr: () => string;
  kill: (sig: NodeJS.Signals) => void;
  started: number;
}

/** One rank started by hand, as torchrun/Slurm/Kubernetes would. */
function startRank(args: string[], rank: number, port: number, env: Record<string, string> = {}): Rank {
  const p = spawn(process.execPath, [cli, 'train', ...args], {
    env: {
      ...process.env,
      CI: '1',
      RANK: String(rank),
      LOCAL_RANK: String(rank),
      WORLD_SIZE: '2',
      LOCAL_WORLD_SIZE: '2',
      MASTER_ADDR: '127.0.0.1',
      MASTER_PORT: String(port),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  p.stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  p.stdout.resume();
  return {
    code: new Promise((r) => p.on('exit', (c) => r(c))),
    stderr: () => err,
    kill: (s) => p.kill(s),
    started: Date.now(),
  };
}

// Every timeout below only guards against a hang: sized for a 2-core machine at a load of 20 (a resume
// took over 240 s there), far above what a passing run takes.

async function until(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('--nproc-per-node 2 --sync-bn: one run folder by rank 0, settings recorded, sharded validation = 1-process eval', {
  timeout: 600_000,
}, async () => {
  const port = await freePort();
  const r = spawnSync(
    process.execPath,
    [
      cli,
      'train',
      ...tiny,
      '--epochs',
      '1',
      '--out',
      work,
      '--name',
      'launch',
      '--sync-bn',
      '--set',
      'validateEvery=1',
      '--nproc-per-node',
      '2',
      '--master-port',
      String(port),
    ],
    { encoding: 'utf8', env: { ...process.env, CI: '1' }, timeout: 420_000 },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /launched ranks 0-1 of 2/);
  assert.match(r.stderr + r.stdout, /sync-bn: \d+ BatchNorm layers/);
  assert.deepEqual(readdirSync(work), ['launch']);
  const dir = join(work, 'launch');
  type Config = { distributed: Record<string, unknown> };
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Config;
  assert.deepEqual(config.distributed, { bucketCapMB: 25, syncBn: true, worldSize: 2, globalBatch: 16 });
  type Val = { top1: number; top5: number; loss: number; meanClassAccuracy: number };
  const epochs = readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { type: string; val?: Val });
  assert.equal(epochs.length, 1, 'one metrics line per epoch: only rank 0 writes');
  assert.ok(existsSync(join(dir, 'checkpoints', 'epoch-0001')));
  // 36 images, 2 ranks: 18 each, 2 full batches of 8 per epoch.
  assert.match(r.stdout, /done in/);

  // Validation ran sharded (30 of the 60 test images per rank, counts summed): the same metrics as one
  // process evaluating the checkpoint.
  const ckpt = join(dir, 'checkpoints', 'epoch-0001');
  const e = spawnSync(process.execPath, [cli, 'eval', ckpt, '--json', '--out', join(work, 'eval.json')], {
    encoding: 'utf8',
    env: { ...process.env, CI: '1' },
    timeout: 240_000,
  });
  assert.equal(e.status, 0, e.stderr);
  const one = JSON.parse(e.stdout) as Val & { samples: number };
  const val = epochs[0]!.val!;
  assert.equal(one.samples, 60);
  assert.deepEqual([val.top1 * 60, val.top5 * 60].map(Math.round), [one.top1 * 60, one.top5 * 60].map(Math.round));
  assert.deepEqual([val.top1, val.top5, val.meanClassAccuracy], [one.top1, one.top5, one.meanClassAccuracy]);
  assert.ok(Math.abs(val.loss - one.loss) <= 1e-6 * one.loss, `loss ${val.loss} vs ${one.loss}`);
});

test('a killed rank ends the job with an error naming rank and step; the run resumes with 1 process', {
  timeout: 900_000,
}, async () => {
  const port = await freePort();
  // 12 epochs of 2 steps: the run must outlast the 100 ms poll for latest.json, or the kill may land after
  // it finished (seen on an idle machine with 2 epochs).
  const args = [...tiny, '--epochs', '12', '--set', 'checkpointEverySteps=1', '--out', work, '--name', 'killed'];
  const timeoutS = 30;
  const r0 = startRank(args, 0, port, { GOODSREC_DIST_TIMEOUT: String(timeoutS) });
  const r1 = startRank(args, 1, port, { GOODSREC_DIST_TIMEOUT: String(timeoutS) });
  const dir = join(work, 'killed');
  await until(() => existsSync(join(dir, 'latest.json')), 300_000);
  r1.kill('SIGKILL');
  const killedAt = Date.now();
  const code = await r0.code;
  assert.notEqual(code, 0);
  // Within the collective timeout, plus a minute to report and exit on a loaded machine (a rank that
  // missed its peer's death would wait until the test's own timeout).
  const stoppedMs = Date.now() - killedAt;
  console.log(`# rank 0 stopped ${stoppedMs} ms after its peer was killed`);
  assert.ok(stoppedMs < (timeoutS + 60) * 1000, `rank 0 stopped ${stoppedMs} ms after its peer was killed`);
  // Where the kill lands depends on timing: a step, or the wait at an epoch end.
  assert.match(r0.stderr(), /data-parallel job failed on rank 0 of 2 at (epoch \d+, step \d+|the end of epoch \d+)/);
  assert.match(r0.stderr(), /resumable/);
  await r1.code;

  const r = spawnSync(process.execPath, [cli, 'train', '--resume', dir], {
    encoding: 'utf8',
    env: { ...process.env, CI: '1' },
    timeout: 540_000,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr + r.stdout, /written by 2 process\(es\), this run has 1/);
  assert.ok(existsSync(join(dir, 'checkpoints', 'epoch-0012')));
});

test('ranks with different configs are refused at start with a clear error', { timeout: 300_000 }, async () => {
  const port = await freePort();
  const r0 = startRank([...tiny, '--epochs', '1', '--out', work, '--name', 'mismatch'], 0, port);
  const r1 = startRank([...tiny, '--epochs', '1', '--out', work, '--name', 'mismatch', '--seed', '7'], 1, port);
  const [c0, c1] = await Promise.all([r0.code, r1.code]);
  assert.notEqual(c0, 0);
  assert.notEqual(c1, 0);
  assert.match(r0.stderr(), /rank 1 has a different config/);
  assert.match(r1.stderr(), /rank 0 has a different config/);
});
