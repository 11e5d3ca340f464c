// `goodsrec train --nproc-per-node N`: starts N ranks of this machine as child processes with
// torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT), and ends the whole job when one rank fails, as torchrun does.
import { spawn, type ChildProcess } from 'node:child_process';

export interface LaunchOptions {
  nprocPerNode: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
  /** After the first failure, how long the other ranks get to stop by themselves before SIGTERM (ms). */
  graceMs?: number;
}

/** Launcher flags of the train command (removed from the arguments the ranks get). */
export const LAUNCH_FLAGS = ['--nproc-per-node', '--nnodes', '--node-rank', '--master-addr', '--master-port'] as const;

/** argv without the launcher flags (both `--flag value` and `--flag=value`). */
export function stripLaunchFlags(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if ((LAUNCH_FLAGS as readonly string[]).includes(a)) {
      i++;
      continue;
    }
    if (LAUNCH_FLAGS.some((f) => a.startsWith(`${f}=`))) continue;
    out.push(a);
  }
  return out;
}

export function validateLaunch(o: LaunchOptions): void {
  const int = (v: number, name: string, min: number): void => {
    if (!Number.isInteger(v) || v < min) throw new Error(`${name} must be an integer >= ${min}, got ${v}`);
  };
  int(o.nprocPerNode, '--nproc-per-node', 1);
  int(o.nnodes, '--nnodes', 1);
  int(o.nodeRank, '--node-rank', 0);
  int(o.masterPort, '--master-port', 1);
  if (o.nodeRank >= o.nnodes) throw new Error(`--node-rank ${o.nodeRank} must be below --nnodes ${o.nnodes}`);
  if (o.masterPort > 65535) throw new Error(`--master-port ${o.masterPort} is not a port`);
}

/**
 * Runs `node <script> <args>` once per local rank and waits for all. Resolves with the job's exit code: 0 when
 * every rank succeeded, else the first failing rank's code (its own error is on stderr).
 */
export function launchRanks(
  script: string,
  args: readonly string[],
  o: LaunchOptions,
  log: (line: string) => void,
): Promise<number> {
  validateLaunch(o);
  const world = o.nnodes * o.nprocPerNode;
  const children: { rank: number; proc: ChildProcess; done: boolean }[] = [];
  for (let local = 0; local < o.nprocPerNode; local++) {
    const rank = o.nodeRank * o.nprocPerNode + local;
    const proc = spawn(process.execPath, [...process.execArgv, script, ...args], {
      stdio: 'inherit',
      env: {
        ...process.env,
        RANK: String(rank),
        LOCAL_RANK: String(local),
        WORLD_SIZE: String(world),
        LOCAL_WORLD_SIZE: String(o.nprocPerNode),
        GROUP_RANK: String(o.nodeRank),
        MASTER_ADDR: o.masterAddr,
        MASTER_PORT: String(o.masterPort),
      },
    });
    children.push({ rank, proc, done: false });
  }
  log(
    `launched ranks ${children[0]!.rank}-${children.at(-1)!.rank} of ${world} (rendezvous ${o.masterAddr}:${o.masterPort})`,
  );
  // SIGTERM (Slurm, Kubernetes) goes to every rank; Ctrl-C reaches them from the terminal directly.
  const forward = (sig: NodeJS.Signals): void => {
    for (const c of children) if (!c.done) c.proc.kill(sig);
  };
  const onTerm = (): void => forward('SIGTERM');
  const onInt = (): void => {
    /* the ranks got it too: they stop together at the next step */
  };
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  return new Promise((resolveCode) => {
    let failure: { rank: number; code: number } | null = null;
    let timers: NodeJS.Timeout[] = [];
    const finish = (): void => {
      if (!children.every((c) => c.done)) return;
      for (const t of timers) clearTimeout(t);
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      resolveCode(failure ? failure.code : 0);
    };
    for (const c of children) {
      c.proc.on('exit', (code, signal) => {
        c.done = true;
        const exitCode = code ?? (signal === 'SIGINT' ? 130 : 1);
        if (exitCode !== 0 && exitCode !== 130 && failure === null) {
          failure = { rank: c.rank, code: exitCode };
          log(`rank ${c.rank} exited with ${signal ?? `code ${code}`}; stopping the other ranks`);
          const grace = o.graceMs ?? 15_000;
          timers = [setTimeout(() => forward('SIGTERM'), grace), setTimeout(() => forward('SIGKILL'), grace + 10_000)];
        } else if (exitCode === 130 && failure === null) {
          failure = { rank: c.rank, code: 130 };
        }
        finish();
      });
    }
  });
}
