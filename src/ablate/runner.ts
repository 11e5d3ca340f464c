// Runs an ablation's jobs as child processes of the ordinary commands (`goodsrec train`, `eval`,
// `ensemble`), N at a time with a share of the cores each. Everything lands in OUT:
//   runs/<training>-s<seed>/            ordinary run folders
//   results/<training>-s<seed>.train.json   train --json's result, renamed in when the training finished
//   results/<cell>-s<seed>.eval.json    the cell's eval file (written atomically by eval/ensemble)
//   logs/<job>.log                      the child's output
// A job whose result exists is not run again; a run folder without a result continues from its latest
// checkpoint (`train --resume`), or starts over when it has none. So killing and restarting continues.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readPointer } from '../run/checkpoint.js';
import { RUN_FILE } from '../run/layout.js';
import { jobs as planJobs, runName, type AblateSpec, type Job, type Plan } from './plan.js';

export interface RunnerOptions {
  /** The goodsrec command's entry script (dist/src/cli/main.js). */
  cli: string;
  out: string;
  parallel: number;
  /** Compute threads per job. */
  threads: number;
  /** The split the cells are evaluated on. */
  split: string;
  /** Called with each progress line. */
  log: (line: string) => void;
}

export const ablateLayout = (out: string) => ({
  runs: join(out, 'runs'),
  results: join(out, 'results'),
  logs: join(out, 'logs'),
  runDir: (name: string) => join(out, 'runs', name),
  trainResult: (name: string) => join(out, 'results', `${name}.train.json`),
  evalResult: (name: string) => join(out, 'results', `${name}.eval.json`),
  log: (name: string, kind: string) => join(out, 'logs', `${name}.${kind}.log`),
  lock: join(out, 'ablate.lock'),
});

/** Whether a process with this id is alive (ours or another user's). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes the ablation folder for this process: two runners on one folder would resume the same run folders at
 * once. A lock left by a killed runner (its process gone) is taken over.
 */
function takeLock(file: string): () => void {
  for (let tries = 0; tries < 2; tries++) {
    try {
      writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      return () => rmSync(file, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number.parseInt(readFileSync(file, 'utf8'), 10);
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid))
        throw new Error(
          `${file}: another goodsrec ablate (pid ${pid}) is running on this folder; wait for it or stop it`,
        );
      rmSync(file, { force: true });
    }
  }
  throw new Error(`${file}: could not take the lock`);
}

/** Whether a job's result is there (the job is done). */
export function jobDone(out: string, j: Job): boolean {
  const L = ablateLayout(out);
  return existsSync(j.kind === 'train' ? L.trainResult(j.name) : L.evalResult(j.name));
}

interface Command {
  args: string[];
  /** train: stdout is the result, renamed in on success. */
  result?: string;
}

function trainCommand(spec: AblateSpec, o: RunnerOptions, j: Extract<Job, { kind: 'train' }>): Command {
  const L = ablateLayout(o.out);
  const dir = L.runDir(j.name);
  const result = L.trainResult(j.name);
  if (existsSync(join(dir, RUN_FILE.config))) {
    let latest: string | undefined;
    try {
      latest = readPointer(dir, 'latest');
    } catch {
      latest = undefined;
    }
    if (latest && existsSync(latest)) {
      o.log(`${j.name}: resuming from ${latest}`);
      return { args: ['train', '--resume', dir, '--json'], result };
    }
  }
  // Never got to a checkpoint (or to its config): start this training over.
  if (existsSync(dir)) {
    o.log(`${j.name}: no checkpoint in ${dir}; starting it over`);
    rmSync(dir, { recursive: true, force: true });
  }
  const sets = [
    ...spec.set,
    ...j.training.overrides.map(([k, v]) => `${k}=${v}`),
    `seed=${j.seed}`,
    `threads=${o.threads}`,
  ];
  return {
    args: [
      'train',
      ...(spec.config ? ['--config', spec.config] : []),
      ...sets.flatMap((s) => ['--set', s]),
      '--out',
      L.runs,
      '--name',
      j.name,
      '--json',
    ],
    result,
  };
}

function evalCommand(o: RunnerOptions, j: Extract<Job, { kind: 'eval' }>): Command {
  const L = ablateLayout(o.out);
  const e = j.cell.eval;
  const tta = e.tta ? ['--tta', e.tta.join(',')] : [];
  const out = ['--split', o.split, '--out', L.evalResult(j.name), '--json'];
  // The partner run is the last training the job needs (plan.ts: jobs()).
  if (e.ensembleWith)
    return {
      args: ['ensemble', L.runDir(runName(j.cell.training, j.seed)), L.runDir(j.needs.at(-1)!), ...tta, ...out],
    };
  return {
    args: [
      'eval',
      L.runDir(runName(j.cell.training, j.seed)),
      ...(e.size !== undefined ? ['--size', String(e.size)] : []),
      ...tta,
      ...out,
    ],
  };
}

/** The command line of a job (for --dry-run and logs). */
export function jobCommand(spec: AblateSpec, o: RunnerOptions, j: Job): string[] {
  return j.kind === 'train' ? trainCommand(spec, { ...o, log: () => {} }, j).args : evalCommand(o, j).args;
}

export interface RunOutcome {
  done: number;
  skipped: number;
  failed: { name: string; message: string }[];
  interrupted: boolean;
}

/**
 * Runs every job not done yet, `parallel` at a time, each after the trainings it needs. SIGINT/SIGTERM:
 * the children get SIGTERM (a training saves a checkpoint and stops), then the outcome says interrupted.
 */
export async function runAblation(spec: AblateSpec, plan: Plan, o: RunnerOptions): Promise<RunOutcome> {
  const L = ablateLayout(o.out);
  for (const d of [L.runs, L.results, L.logs]) mkdirSync(d, { recursive: true });
  const unlock = takeLock(L.lock);
  const all = planJobs(plan);
  const pending = all.filter((j) => !jobDone(o.out, j));
  const outcome: RunOutcome = { done: 0, skipped: all.length - pending.length, failed: [], interrupted: false };
  if (outcome.skipped) o.log(`${outcome.skipped} of ${all.length} jobs done already`);
  const failed = new Set<string>();
  const running = new Map<string, ChildProcess>();
  let stopping = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    outcome.interrupted = true;
    o.log(
      `${sig}: stopping ${running.size} job(s) (trainings save a checkpoint); run the same command again to continue`,
    );
    for (const p of running.values()) p.kill('SIGTERM');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const total = all.length;
  let started = outcome.skipped;

  const needsOf = (j: Job): string[] => (j.kind === 'eval' ? j.needs : []);
  const trainDone = (name: string): boolean => existsSync(L.trainResult(name));
  /** The first pending job whose trainings are done; a job whose training failed fails too. */
  const next = (): Job | undefined => {
    for (let i = 0; i < pending.length; i++) {
      const j = pending[i]!;
      const needs = needsOf(j);
      const lost = needs.find((n) => failed.has(n));
      if (lost) {
        pending.splice(i--, 1);
        failed.add(j.name);
        outcome.failed.push({ name: j.name, message: `its training ${lost} failed` });
        continue;
      }
      if (needs.every(trainDone)) return pending.splice(i, 1)[0];
    }
    return undefined;
  };

  const runOne = (j: Job): Promise<void> => {
    const c = j.kind === 'train' ? trainCommand(spec, o, j) : evalCommand(o, j);
    const t0 = Date.now();
    const n = ++started;
    o.log(`[${n}/${total}] ${j.name} ${j.kind}: started`);
    return new Promise((resolveJob) => {
      const p = spawn(process.execPath, [o.cli, ...c.args], {
        env: {
          ...process.env,
          CI: '1',
          GOODSREC_THREADS: String(o.threads),
          OMP_NUM_THREADS: String(o.threads),
          // Spin-waiting OpenMP threads slow every job when the cores are shared (engine-notes pitfall 6).
          OMP_WAIT_POLICY: 'PASSIVE',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      running.set(j.name, p);
      const logFile = createWriteStream(L.log(j.name, j.kind), { flags: 'a' });
      logFile.write(`$ goodsrec ${c.args.join(' ')}\n`);
      let stdout = '';
      p.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
      });
      p.stderr.on('data', (d: Buffer) => logFile.write(d));
      let settled = false;
      const finish = (code: number | null, error?: Error): void => {
        if (settled) return;
        settled = true;
        running.delete(j.name);
        logFile.end(`\n[exit ${code}${error ? `: ${error.message}` : ''}]\n`);
        const minutes = ((Date.now() - t0) / 60000).toFixed(1);
        // 3 = finished with some bad input files skipped (listed in the result): still a result.
        const ok = !error && (code === 0 || code === 3);
        if (ok && c.result) {
          writeFileSync(`${c.result}.partial`, stdout);
          renameSync(`${c.result}.partial`, c.result);
        }
        if (ok && jobDone(o.out, j)) {
          outcome.done++;
          o.log(`[${n}/${total}] ${j.name} ${j.kind}: done in ${minutes} min`);
        } else if (stopping) {
          o.log(`[${n}/${total}] ${j.name} ${j.kind}: stopped after ${minutes} min`);
        } else {
          failed.add(j.name);
          const message = error ? error.message : `exit ${code}; see ${L.log(j.name, j.kind)}`;
          outcome.failed.push({ name: j.name, message });
          o.log(`[${n}/${total}] ${j.name} ${j.kind}: FAILED (${message})`);
        }
        resolveJob();
      };
      p.on('error', (e) => finish(null, e));
      p.on('close', (code) => finish(code));
    });
  };

  // Workers take the first ready job; one that finds none waits for a running job to finish.
  let wake: (() => void) | undefined;
  const worker = async (): Promise<void> => {
    while (!stopping) {
      const j = next();
      if (j) {
        await runOne(j);
        wake?.();
        continue;
      }
      if (!pending.length || !running.size) return;
      await new Promise<void>((r) => {
        const prev = wake;
        wake = () => {
          prev?.();
          r();
        };
      });
      wake = undefined;
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, o.parallel) }, worker));
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    unlock();
  }
  // Jobs left waiting on a training that never finished (interrupted or blocked).
  for (const j of pending)
    if (!stopping) outcome.failed.push({ name: j.name, message: 'not run: a training it needs did not finish' });
  return outcome;
}
