/**
 * `npm run bench -- ddp`: data-parallel training steps, goodsrec against PyTorch DDP in the same setting:
 * ResNet-18, 3x112x112, 100 classes, batch 16 per process, SGD momentum 0.9, label smoothing 0.1, Gloo on
 * loopback, 2 processes x 1 thread each; plus goodsrec in 1 process x 2 threads at the same global batch
 * (32) for reference. goodsrec and PyTorch rounds alternate (G P, P G, G P, ...) so drifting load hits
 * both; each round's median ms per step (rank 0), the median over rounds, the time ratio, the bytes
 * all-reduced per step, and the load average before and after (a warning when it is above half the cores).
 *
 * Env: GOODSREC_BENCH_ROUNDS (per side, at least 3; default 3), GOODSREC_BENCH_STEPS (timed steps per
 * round, default 6), GOODSREC_BENCH_WARMUP (default 2).
 */
import { spawn } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { freePort } from '../test/helpers/free-port.js';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = fileURLToPath(import.meta.url);
const REPO = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const PER_RANK = 16;

interface Result {
  times_ms: number[];
  bytes: number;
  loss: number;
  buckets?: number;
  buffer_bytes?: number;
}

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
  const buckets = dist?.dataParallel?.buckets.length ?? 0;
  const bufferBytes = model.buffers().reduce((a, b) => a + b.numel * T.bytesPerElement(b.dtype), 0);
  const result: Result = { times_ms: times, bytes, loss, buckets, buffer_bytes: bufferBytes };
  if (!dist || dist.isMain) console.log(JSON.stringify(result));
  dist?.close();
}

function runProcs(cmds: { cmd: string; args: string[]; env: NodeJS.ProcessEnv }[]): Promise<Result> {
  return Promise.all(
    cmds.map(
      ({ cmd, args, env }) =>
        new Promise<string>((ok, fail) => {
          const p = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
          let out = '';
          p.stdout.on('data', (d: Buffer) => {
            out += d.toString();
          });
          p.on('exit', (c) => (c === 0 ? ok(out) : fail(new Error(`${cmd} ${args.join(' ')} exited with ${c}`))));
        }),
    ),
  ).then(
    (outs) =>
      JSON.parse(
        outs
          .map((o) => o.trim())
          .find((o) => o.length > 0)!
          .split('\n')
          .pop()!,
      ) as Result,
  );
}

/** The load average, with a warning when other work competes for the cores (then timings mislead). */
function loadLine(when: string): string {
  const cores = availableParallelism();
  const l = loadavg();
  const line = `  load average ${when}: ${l.map((v) => v.toFixed(2)).join(' ')} (${cores} cores)`;
  return l[0]! > cores * 0.5
    ? `${line}\n  WARNING: 1-min load ${l[0]!.toFixed(2)} > ${(cores * 0.5).toFixed(1)} (half the cores): ` +
        'other processes share the CPUs, so these timings mix in their work; rerun on an idle machine before trusting ' +
        'the ratio'
    : line;
}

export async function run(): Promise<void> {
  const rounds = Math.max(3, Number(process.env['GOODSREC_BENCH_ROUNDS'] ?? 3));
  const steps = Number(process.env['GOODSREC_BENCH_STEPS'] ?? 6);
  const warmup = Number(process.env['GOODSREC_BENCH_WARMUP'] ?? 2);
  console.log(
    `ddp bench: ResNet-18, 3x112x112, 100 classes, batch ${PER_RANK} per process, SGD momentum; Gloo on loopback; ` +
      `${rounds} alternating rounds per side of ${steps} timed steps after ${warmup} warm-up`,
  );
  console.log(loadLine('before'));
  const base = { ...process.env, OMP_WAIT_POLICY: 'PASSIVE', GOODSREC_THREADS: '1' };
  const ranks = async (
    mk: (rank: number, env: NodeJS.ProcessEnv) => { cmd: string; args: string[]; env: NodeJS.ProcessEnv },
  ): Promise<Result> => {
    const port = await freePort();
    return runProcs(
      [0, 1].map((r) =>
        mk(r, {
          ...base,
          RANK: String(r),
          LOCAL_RANK: String(r),
          WORLD_SIZE: '2',
          LOCAL_WORLD_SIZE: '2',
          MASTER_ADDR: '127.0.0.1',
          MASTER_PORT: String(port),
        }),
      ),
    );
  };
  const sizes = [String(steps), String(warmup), String(PER_RANK)];
  const goodsrec = (): Promise<Result> =>
    ranks((_, env) => ({ cmd: process.execPath, args: [HERE, '--child', ...sizes], env }));
  const torch = (): Promise<Result> =>
    ranks((_, env) => ({ cmd: '/usr/bin/python3', args: [join(REPO, 'bench', 'ddp_torch.py'), ...sizes], env }));
  const g: Result[] = [];
  const p: Result[] = [];
  for (let r = 0; r < rounds; r++) {
    // Alternating which side goes first, so a load that drifts during the run hits both alike.
    if (r % 2 === 0) {
      g.push(await goodsrec());
      p.push(await torch());
    } else {
      p.push(await torch());
      g.push(await goodsrec());
    }
  }
  const one = await runProcs([
    {
      cmd: process.execPath,
      args: [HERE, '--child', String(steps), String(warmup), String(2 * PER_RANK)],
      env: { ...base, GOODSREC_THREADS: '2' },
    },
  ]);
  const perRound = (rs: Result[]): number[] => rs.map((x) => median(x.times_ms));
  const gm = median(perRound(g)),
    pm = median(perRound(p)),
    om = median(one.times_ms);
  const fmt = (v: number[]): string => v.map((x) => x.toFixed(0)).join(' ');
  console.log(`  goodsrec DDP 2 proc x 1 thread: median ${gm.toFixed(0)} ms/step (round medians ${fmt(perRound(g))})`);
  console.log(`  PyTorch  DDP 2 proc x 1 thread: median ${pm.toFixed(0)} ms/step (round medians ${fmt(perRound(p))})`);
  console.log(`  goodsrec     1 proc x 2 threads (batch ${2 * PER_RANK}): median ${om.toFixed(0)} ms/step (one round)`);
  const gb = g[0]!;
  console.log(`  time ratio goodsrec/PyTorch (DDP): ${(gm / pm).toFixed(2)} (goal <= 1.0)`);
  console.log(
    `  all-reduced per step: ${(gb.bytes / 1e6).toFixed(2)} MB of float32 gradients in ${gb.buckets} ` +
      'buckets ' +
      `(PyTorch: ${(p[0]!.bytes / 1e6).toFixed(2)} MB), plus 4 bytes for the stop vote; broadcast per step: ` +
      `${((gb.buffer_bytes ?? 0) / 1e3).toFixed(1)} kB of BatchNorm buffers (DDP broadcast_buffers)`,
  );
  console.log(loadLine('after'));
}

if (process.argv[1] === HERE && process.argv[2] === '--child') {
  await child(Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5]));
} else if (process.argv[1] === HERE) {
  await run();
}
