/**
 * `npm run bench -- ddp`: data-parallel training steps, goodsrec against PyTorch DDP in the same setting:
 * ResNet-18, 3x112x112, 100 classes, batch 16 per process, SGD momentum 0.9, label smoothing 0.1, Gloo on
 * loopback, 2 processes x 1 thread each; plus goodsrec in 1 process x 2 threads at the same global batch
 * (32) for reference. Prints the median ms per step (rank 0), the time ratio and the bytes all-reduced
 * per step.
 *
 * Env: GOODSREC_BENCH_STEPS (timed steps, default 6), GOODSREC_BENCH_WARMUP (default 2).
 */
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = fileURLToPath(import.meta.url);
const REPO = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const PER_RANK = 16;

interface Result { times_ms: number[]; bytes: number; loss: number }

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** One goodsrec rank (WORLD_SIZE unset: a single process with the whole global batch). */
async function child(steps: number, warmup: number, batch: number): Promise<void> {
  const T = await import('../src/tensor/index.js');
  const { createModel } = await import('../src/models/index.js');
  const { SGD } = await import('../src/optim/index.js');
  const { DistributedSession } = await import('../src/distributed/session.js');
  const dist = DistributedSession.fromEnv();
  T.setNumThreads(Number(process.env['GOODSREC_THREADS'] ?? 1));
  T.manualSeed(dist?.rank ?? 0);
  const model = createModel('resnet18', { numClasses: 100, log: null }).train();
  dist?.attach(model, 25);
  const x = T.randn([batch, 3, 112, 112]).keep();
  const y = T.randint(0, 100, [batch]).keep();
  const opt = new SGD(model.parameters(), { lr: 0.1, momentum: 0.9, weightDecay: 1e-4 });
  const times: number[] = [];
  let loss = 0;
  for (let i = 0; i < warmup + steps; i++) {
    const t = performance.now();
    dist?.beginStep(0, i);
    loss = T.tidy(() => {
      const l = T.F.crossEntropy(model.forward(x), y, { labelSmoothing: 0.1 });
      opt.zeroGrad();
      l.backward();
      return l.item();
    });
    dist?.averageGradients();
    opt.step();
    if (i >= warmup) times.push(performance.now() - t);
  }
  const bytes = dist?.dataParallel?.bytesPerStep ?? 0;
  if (!dist || dist.isMain) console.log(JSON.stringify({ times_ms: times, bytes, loss } satisfies Result));
  dist?.close();
}

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => ok(p)); });
  });
}

function runProcs(cmds: { cmd: string; args: string[]; env: NodeJS.ProcessEnv }[]): Promise<Result> {
  return Promise.all(cmds.map(({ cmd, args, env }) => new Promise<string>((ok, fail) => {
    const p = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    p.on('exit', (c) => (c === 0 ? ok(out) : fail(new Error(`${cmd} ${args.join(' ')} exited with ${c}`))));
  }))).then((outs) => JSON.parse(outs.map((o) => o.trim()).find((o) => o.length > 0)!.split('\n').pop()!) as Result);
}

export async function run(): Promise<void> {
  const steps = Number(process.env['GOODSREC_BENCH_STEPS'] ?? 6);
  const warmup = Number(process.env['GOODSREC_BENCH_WARMUP'] ?? 2);
  console.log(`ddp bench: ResNet-18, 3x112x112, 100 classes, batch ${PER_RANK} per process, SGD momentum; Gloo on loopback; ` +
    `${steps} timed steps after ${warmup} warm-up; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const base = { ...process.env, OMP_WAIT_POLICY: 'PASSIVE', GOODSREC_THREADS: '1' };
  const ranks = async (mk: (rank: number, env: NodeJS.ProcessEnv) => { cmd: string; args: string[]; env: NodeJS.ProcessEnv }): Promise<Result> => {
    const port = await freePort();
    return runProcs([0, 1].map((r) => mk(r, { ...base, RANK: String(r), LOCAL_RANK: String(r), WORLD_SIZE: '2', LOCAL_WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) })));
  };
  const g = await ranks((_, env) => ({ cmd: process.execPath, args: [HERE, '--child', String(steps), String(warmup), String(PER_RANK)], env }));
  const p = await ranks((_, env) => ({ cmd: '/usr/bin/python3', args: [join(REPO, 'bench', 'ddp_torch.py'), String(steps), String(warmup), String(PER_RANK)], env }));
  const one = await runProcs([{ cmd: process.execPath, args: [HERE, '--child', String(steps), String(warmup), String(2 * PER_RANK)], env: { ...base, GOODSREC_THREADS: '2' } }]);
  const gm = median(g.times_ms), pm = median(p.times_ms), om = median(one.times_ms);
  console.log(`  goodsrec DDP 2 proc x 1 thread: median ${gm.toFixed(0)} ms/step (${g.times_ms.map((v) => v.toFixed(0)).join(' ')})`);
  console.log(`  PyTorch  DDP 2 proc x 1 thread: median ${pm.toFixed(0)} ms/step (${p.times_ms.map((v) => v.toFixed(0)).join(' ')})`);
  console.log(`  goodsrec     1 proc x 2 threads (batch ${2 * PER_RANK}): median ${om.toFixed(0)} ms/step`);
  console.log(`  time ratio goodsrec/PyTorch (DDP): ${(gm / pm).toFixed(2)} (goal <= 1.0); ` +
    `all-reduced per step: ${(g.bytes / 1e6).toFixed(1)} MB of gradients (PyTorch: ${(p.bytes / 1e6).toFixed(1)} MB)`);
}

if (process.argv[1] === HERE && process.argv[2] === '--child') {
  await child(Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5]));
} else if (process.argv[1] === HERE) {
  await run();
}
