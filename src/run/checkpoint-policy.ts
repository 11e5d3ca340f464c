// When a run saves a checkpoint, which ones it keeps, and what latest.json / best.json name. Like
// timm's CheckpointSaver it tracks the best metric and keeps mid-epoch "recovery" checkpoints; unlike
// it, it keeps the newest `keep` periodic checkpoints (not the top-k by metric) besides best and latest,
// because --resume and `goodsrec average` want the newest, and it writes every checkpoint as a folder
// atomically (a failed write keeps the previous one; see checkpoint.ts).
import { disposeTensors, type CheckpointContent } from './checkpoint.js';
import { checkpointName } from './layout.js';
import type { RunFolder } from './run-folder.js';
import { WriteError } from '../util/atomic.js';

/** The best checkpoint so far (by validation top-1), as checkpoints and TrainResult record it. */
export interface BestCheckpoint {
  top1: number;
  /** Epochs done when it was saved. */
  epoch: number;
  checkpoint: string;
}

export interface CheckpointPolicyOptions {
  /** Save at the end of every n-th epoch (improvements, the last epoch and stops save anyway). */
  everyEpochs: number;
  /** Save inside an epoch every n steps (0: never). */
  everySteps: number;
  /** Periodic checkpoints kept besides the ones best.json and latest.json name. */
  keep: number;
  /** Failed saves in a row that are logged and survived (the previous checkpoint stays); one more throws. */
  failuresTolerated: number;
}

/** What the end of an epoch saves. */
export interface EpochEndDecision {
  save: boolean;
  /** The checkpoint's name (epochs done). */
  name: string;
  /** The epoch's validation top-1 beat the best so far (the policy's `best` now names this checkpoint). */
  improved: boolean;
  /** best.json names this checkpoint once saved: an improvement, or the last epoch of a run without validation. */
  makesBest: boolean;
  epoch: number;
  top1: number | undefined;
}

export class CheckpointPolicy {
  private failures = 0;

  constructor(
    readonly options: CheckpointPolicyOptions,
    /** The best checkpoint so far (restored with the run on resume). */
    public best: BestCheckpoint | null = null,
  ) {
    for (const k of ['everyEpochs', 'everySteps', 'keep', 'failuresTolerated'] as const) {
      const v = options[k];
      if (!(Number.isInteger(v) && v >= (k === 'everyEpochs' ? 1 : 0)))
        throw new RangeError(`CheckpointPolicy: ${k} must be an integer >= ${k === 'everyEpochs' ? 1 : 0}, got ${v}`);
    }
  }

  /** The policy a training run's config asks for. */
  static forTraining(
    c: { checkpointEvery: number; checkpointEverySteps: number; keepCheckpoints: number },
    best: BestCheckpoint | null = null,
  ): CheckpointPolicy {
    return new CheckpointPolicy(
      {
        everyEpochs: c.checkpointEvery,
        everySteps: c.checkpointEverySteps,
        keep: c.keepCheckpoints,
        failuresTolerated: 1,
      },
      best,
    );
  }

  /** One checkpoint written once (FixRes): nothing periodic, a failed write throws. */
  static single(): CheckpointPolicy {
    return new CheckpointPolicy({ everyEpochs: 1, everySteps: 0, keep: 0, failuresTolerated: 0 });
  }

  /** A save failed last and none succeeded since. */
  get lastSaveFailed(): boolean {
    return this.failures > 0;
  }

  /** Inside an epoch, after `step` of `stepsPerEpoch` steps: a periodic save is due (the epoch end saves on its own). */
  dueAtStep(step: number, stepsPerEpoch: number): boolean {
    return this.options.everySteps > 0 && step % this.options.everySteps === 0 && step < stepsPerEpoch;
  }

  /**
   * The end of the epoch that makes `epoch` epochs done: saved when it improved the best validation top-1
   * (strictly), is the last, is due (every n epochs) or a stop was asked. An improvement becomes `best`.
   */
  atEpochEnd(
    epoch: number,
    e: { isLast: boolean; stop: boolean; top1?: number | undefined; hasVal: boolean },
  ): EpochEndDecision {
    const improved = e.top1 !== undefined && (this.best === null || e.top1 > this.best.top1);
    const name = checkpointName(epoch, 0);
    if (improved) this.best = { top1: e.top1!, epoch, checkpoint: name };
    return {
      save: improved || e.isLast || epoch % this.options.everyEpochs === 0 || e.stop,
      name,
      improved,
      makesBest: improved || (!e.hasVal && e.isLast),
      epoch,
      top1: e.top1,
    };
  }

  /**
   * Writes checkpoint `name` and then latest.json (with `pointer` fields). The content's tensors are freed
   * afterwards. A failed write (WriteError) is logged and keeps the previous checkpoint (null) while within
   * `failuresTolerated` in a row; beyond, it throws.
   */
  async save(
    folder: RunFolder,
    name: string,
    content: CheckpointContent,
    pointer: Record<string, unknown> = {},
    log: (line: string) => void = () => {},
  ): Promise<string | null> {
    try {
      await folder.saveCheckpoint(name, content);
      folder.writePointer('latest', name, pointer);
      this.failures = 0;
      return name;
    } catch (e) {
      if (!(e instanceof WriteError)) throw e;
      this.failures++;
      if (this.options.failuresTolerated === 0) throw e;
      log(`checkpoint ${name} could not be saved: ${e.message}; the previous checkpoint is intact`);
      if (this.failures > this.options.failuresTolerated)
        throw new Error(
          `${this.failures === 2 ? 'two' : this.failures} checkpoints in a row could not be saved (last: ${e.message}); stopping so no more work is lost`,
        );
      return null;
    } finally {
      disposeTensors([content.model, content.ema, content.optimizer]);
    }
  }

  /** After the epoch end's save (`saved`: its name, or null when it failed): best.json, then pruning. */
  settleEpoch(folder: RunFolder, d: EpochEndDecision, saved: string | null): void {
    if (saved && d.makesBest)
      folder.writePointer('best', saved, d.improved ? { top1: d.top1, epoch: d.epoch } : { epoch: d.epoch });
    folder.pruneCheckpoints(this.options.keep);
  }

  /** best.json names `saved` (a one-off writer's only checkpoint), with what made it best. */
  markBest(folder: RunFolder, saved: string, why: Record<string, unknown>): void {
    folder.writePointer('best', saved, why);
  }
}
