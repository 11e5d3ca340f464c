// What the trainer needs to run as one rank of a data-parallel job: the process group from
// torchrun's environment, agreement checks at start, one run folder chosen by rank 0, the
// model wrapped as DDP, a per-step stop vote, and errors that name the failing rank and step.
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import * as T from '../tensor/index.js';
import type { Module } from '../nn/index.js';
import type { EvaluateOptions } from '../eval/evaluate.js';
import { DataParallel } from './data-parallel.js';
import { distEnvFromProcess, type DistEnv } from './env.js';
import { convertSyncBatchNorm } from './sync-batchnorm.js';

/** Long waits (rank 0 alone saving checkpoints) get this much, not the per-collective timeout. */
const LONG_WAIT_MS = 24 * 3600 * 1000;

export function sha256(value: unknown): string {
  return createHash('sha256')
    .update(typeof value === 'string' ? value : JSON.stringify(value))
    .digest('hex');
}

export class DistributedSession {
  readonly env: DistEnv;
  readonly pg: T.ProcessGroup;
  private dp: DataParallel | null = null;
  private where = 'start-up';
  private pos = { epoch: 0, step: 0 };
  private mainWaits = 0;

  private constructor(env: DistEnv, pg: T.ProcessGroup) {
    this.env = env;
    this.pg = pg;
  }

  /**
   * Joins the job described by the environment; null when this is a single-process run. The backend follows
   * `device` (the config's device): Gloo for the CPU, NCCL for CUDA.
   */
  static fromEnv(env: NodeJS.ProcessEnv = process.env, device: T.Device = 'cpu'): DistributedSession | null {
    const e = distEnvFromProcess(env);
    if (!e || e.worldSize === 1) return null;
    const pg = T.ProcessGroup.init({
      masterAddr: e.masterAddr,
      masterPort: e.masterPort,
      rank: e.rank,
      worldSize: e.worldSize,
      timeoutMs: e.timeoutMs,
      device: T.rankDevice(device, e.localRank),
    });
    return new DistributedSession(e, pg);
  }

  /** This rank's device: 'cuda' means the GPU of this node numbered LOCAL_RANK, as torchrun jobs use. */
  device(device: T.Device): T.Device {
    return T.rankDevice(device, this.env.localRank);
  }

  get rank(): number {
    return this.env.rank;
  }
  get worldSize(): number {
    return this.env.worldSize;
  }
  get isMain(): boolean {
    return this.env.rank === 0;
  }
  get dataParallel(): DataParallel | null {
    return this.dp;
  }

  /** Intra-op threads per rank by default: the cores divided among this node's ranks. */
  defaultThreads(): number {
    return Math.max(1, Math.floor(availableParallelism() / this.env.localWorldSize));
  }

  /** Rank 0's value of `key` on every rank (rank 0 passes it, the others receive it). */
  share(key: string, value?: string): string {
    return this.guard(() => {
      if (this.isMain) {
        if (value === undefined) throw new Error(`share(${key}): rank 0 must give the value`);
        this.pg.storeSet(`share/${key}`, value);
        return value;
      }
      return this.pg.storeWait(`share/${key}`);
    });
  }

  /** Every rank must have the same value for each entry (config, dataset...); a clear error otherwise. */
  checkAgreement(values: Record<string, string>): void {
    const mine = sha256(values);
    this.guard(() => {
      this.pg.storeSet(`agree/${this.rank}`, JSON.stringify(values));
      this.pg.barrier();
      const bad: string[] = [];
      for (let r = 0; r < this.worldSize; r++) {
        const theirs = JSON.parse(this.pg.storeWait(`agree/${r}`)) as Record<string, string>;
        if (sha256(theirs) === mine) continue;
        const which = Object.keys(values).filter((k) => theirs[k] !== values[k]);
        bad.push(`rank ${r} has a different ${which.join(' and ')}`);
      }
      // Every rank has read every value before any of them fails (rank 0's exit closes the store).
      this.pg.barrier();
      if (bad.length) {
        throw new Error(
          `data-parallel start-up (rank ${this.rank}): ${bad.join('; ')}. Every rank must run the same ` +
            'config on the same dataset (same files, same splits); compare the config files and dataset folders of the nodes',
        );
      }
    });
  }

  /**
   * Wraps the model as DDP and makes every rank start from rank 0's weights; with syncBn, its BatchNorm layers
   * first become SyncBatchNorm. Returns the number of layers synchronized.
   */
  attach(model: Module, bucketCapMB: number, syncBn = false): number {
    const synced = syncBn ? convertSyncBatchNorm(model, this.pg) : 0;
    this.dp = new DataParallel(this.pg, model, { bucketCapMB });
    this.guard(() => this.dp!.broadcastState());
    return synced;
  }

  /**
   * Options that make evaluate() run this rank's shard of a split (rank r: samples r, r+W, ...; no padding) and
   * sum the metric counts over ranks, so every rank gets the metrics of the whole split. `model` (the model or
   * its EMA) first gets rank 0's parameters and buffers: replicas' BatchNorm statistics drift apart by design.
   */
  shardedEvaluation(model: Module, what: string): Pick<EvaluateOptions, 'shard' | 'reduceCounts'> {
    this.where = what;
    this.guard(() => T.noGrad(() => this.pg.broadcast([...model.parameters(), ...model.buffers()], 0)));
    return {
      shard: { rank: this.rank, worldSize: this.worldSize },
      reduceCounts: (counts) =>
        this.guard(() =>
          T.tidy(() => {
            const t = T.tensor(counts, [counts.length], { dtype: 'float64' });
            this.pg.allreduce(t, 'sum');
            return Float64Array.from(t.data<'float64'>());
          }),
        ),
    };
  }

  /**
   * Before the forward of (epoch, step): heartbeat for failure reports, rank 0's buffers; `sync`: this step's
   * backward ends in averageGradients (not a gradient-accumulation micro-step), so its all-reduce overlaps it.
   */
  beginStep(epoch: number, step: number, sync = true): void {
    this.where = `epoch ${epoch + 1}, step ${step + 1}`;
    this.pos = { epoch, step };
    this.guard(() => {
      this.heartbeat('computing');
      this.dp?.beforeForward();
      if (sync) this.dp?.beforeBackward();
    });
  }

  /** After backward, before the optimizer step: gradients averaged over ranks. */
  averageGradients(): void {
    this.guard(() => {
      this.heartbeat('in the gradient all-reduce');
      this.dp?.averageGradients();
    });
  }

  /** One vote per step: true on every rank as soon as any rank asks to stop (Ctrl-C reaches ranks at different steps). */
  agreeStop(local: boolean): boolean {
    return this.guard(() =>
      T.tidy(() => {
        const flag = T.tensor([local ? 1 : 0], [1]);
        this.pg.allreduce(flag, 'max');
        return flag.item() > 0;
      }),
    );
  }

  /** Waits for rank 0 after work only it does (validation, checkpoints). */
  waitForMain(what: string): void {
    this.where = what;
    // The long wait is on a store key (libtorch 1.13's Gloo barrier ignores a per-call timeout); the barrier
    // after it is short, so a hung rank still fails rank 0 in time, and a dead rank 0 ends the others at once.
    const key = `main-done/${this.mainWaits++}`;
    this.guard(() => {
      if (this.isMain) this.pg.storeSet(key, '1');
      else this.pg.storeWait(key, LONG_WAIT_MS);
      this.pg.barrier();
    });
  }

  /** Where this rank is, for the failure report of any rank (one small store write). */
  private heartbeat(phase: 'computing' | 'in the gradient all-reduce'): void {
    this.pg.storeSet(`progress/${this.rank}`, JSON.stringify({ ...this.pos, phase, at: Date.now() }));
  }

  close(): void {
    this.pg.destroy();
  }

  /** Runs a collective; a failure becomes an error naming this rank, the step, and every rank's last progress. */
  private guard<R>(fn: () => R): R {
    try {
      return fn();
    } catch (e) {
      if (!(e instanceof T.CollectiveError)) throw e;
      throw new T.CollectiveError(
        `data-parallel job failed on rank ${this.rank} of ${this.worldSize} at ${this.where}: ` +
          `${e.message}\n${this.progressReport()}\nThe job stops; the run folder stays resumable from its last checkpoint (--resume).`,
      );
    }
  }

  private progressReport(): string {
    const lines: string[] = [];
    let furthest = -1;
    const seen: (number | null)[] = [];
    try {
      for (let r = 0; r < this.worldSize; r++) {
        const raw = this.pg.storeGet(`progress/${r}`);
        const p = raw ? (JSON.parse(raw) as { epoch: number; step: number; phase: string; at: number }) : null;
        const key = p ? p.epoch * 1e9 + p.step * 2 + (p.phase === 'computing' ? 0 : 1) : null;
        seen.push(key);
        if (key !== null) furthest = Math.max(furthest, key);
        lines.push(
          p
            ? `rank ${r}: epoch ${p.epoch + 1}, step ${p.step + 1}, ${p.phase} for ${((Date.now() - p.at) / 1000).toFixed(0)} s`
            : `rank ${r}: no step yet`,
        );
      }
    } catch {
      return 'The rendezvous store on rank 0 is unreachable: rank 0 died or its machine is gone.';
    }
    const behind = seen.map((k, r) => (k === null || k < furthest ? r : -1)).filter((r) => r >= 0);
    return (
      `Last progress per rank: ${lines.join('; ')}.` +
      (behind.length ? ` Behind (dead or hung): rank ${behind.join(', rank ')}.` : '')
    );
  }
}
