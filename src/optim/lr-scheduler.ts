// Learning-rate schedules: closed forms of PyTorch's LinearLR-then-
// CosineAnnealingLR (SequentialLR) and StepLR, stepped per epoch or per
// iteration, with state dicts.
import type { GroupBase, Optimizer } from './optimizer.js';

export interface SchedulerStateDict {
  last_epoch: number;
  base_lrs: number[];
  [key: string]: number | number[] | string;
}

export interface SchedulerTiming {
  /**
   * 'epoch' (default): call step() once per epoch. 'iteration': call step()
   * after every optimizer step; the schedule (given in epochs) then moves in
   * fractions of an epoch.
   */
  interval?: 'epoch' | 'iteration';
  /** Iterations per epoch (needed for 'iteration'). */
  stepsPerEpoch?: number;
}

export abstract class LRScheduler {
  readonly baseLrs: number[];
  /** Number of step() calls so far (PyTorch's last_epoch after construction is 0). */
  lastStep = 0;
  protected readonly stepsPerEpoch: number;

  constructor(
    readonly optimizer: Optimizer<GroupBase>,
    timing: SchedulerTiming = {},
  ) {
    const interval = timing.interval ?? 'epoch';
    if (interval !== 'epoch' && interval !== 'iteration')
      throw new TypeError(`Expected 'epoch' or 'iteration' for interval but received ${String(interval)}`);
    const spe = interval === 'iteration' ? timing.stepsPerEpoch : 1;
    if (spe === undefined || !Number.isInteger(spe) || spe < 1)
      throw new RangeError(
        `Expected a positive integer stepsPerEpoch for interval 'iteration' but received ${String(spe)}`,
      );
    this.stepsPerEpoch = spe;
    for (const g of optimizer.paramGroups) g.initialLr ??= g.lr;
    this.baseLrs = optimizer.paramGroups.map((g) => g.initialLr!);
  }

  /** Sets the initial lr; subclasses call it at the end of their constructor (PyTorch's initial step). */
  protected start(): void {
    this.apply();
  }

  /** The lr of a group whose base lr is baseLr at time t (in epochs, fractional per iteration). */
  abstract lrAt(t: number, baseLr: number): number;

  /** Advances one step (an epoch or an iteration, as configured) and sets the groups' lr. */
  step(): void {
    this.lastStep++;
    this.apply();
  }

  /** Time in epochs of the current step. */
  get epoch(): number {
    return this.lastStep / this.stepsPerEpoch;
  }

  private apply(): void {
    const t = this.epoch;
    this.optimizer.paramGroups.forEach((g, i) => {
      g.lr = this.lrAt(t, this.baseLrs[i]!);
    });
  }

  getLastLr(): number[] {
    return this.optimizer.paramGroups.map((g) => g.lr);
  }

  stateDict(): SchedulerStateDict {
    return {
      last_epoch: this.lastStep,
      base_lrs: [...this.baseLrs],
      steps_per_epoch: this.stepsPerEpoch,
      kind: this.constructor.name,
    };
  }

  loadStateDict(sd: SchedulerStateDict): void {
    if (sd.kind !== undefined && sd.kind !== this.constructor.name)
      throw new TypeError(`${this.constructor.name}.loadStateDict: the state is of a ${String(sd.kind)}`);
    if (sd.base_lrs.length !== this.baseLrs.length)
      throw new RangeError(
        `${this.constructor.name}.loadStateDict: ${sd.base_lrs.length} groups in the state, ${this.baseLrs.length} in the optimizer`,
      );
    if (sd.steps_per_epoch !== undefined && sd.steps_per_epoch !== this.stepsPerEpoch) {
      throw new RangeError(
        `${this.constructor.name}.loadStateDict: the state was stepped ${String(sd.steps_per_epoch)} times per epoch, this scheduler ${this.stepsPerEpoch}`,
      );
    }
    this.baseLrs.splice(0, this.baseLrs.length, ...sd.base_lrs);
    this.lastStep = sd.last_epoch;
    this.apply();
  }
}

export interface CosineOptions extends SchedulerTiming {
  /** Length of the whole schedule (warmup included), in epochs. */
  epochs: number;
  /** Linear warmup length in epochs (default 0). */
  warmupEpochs?: number;
  /** lr at the start of the warmup as a fraction of the base lr (PyTorch LinearLR's start_factor; default 0.001). */
  warmupStartFactor?: number;
  /** lr at the end of the cosine (eta_min; default 0). */
  minLr?: number;
}

/**
 * Linear warmup from base*warmupStartFactor to base over warmupEpochs, then
 * cosine annealing from base to minLr over the remaining epochs; minLr after.
 * Equals SequentialLR([LinearLR(start_factor, total_iters=W), CosineAnnealingLR(T_max=E-W, eta_min)], milestones=[W]).
 */
export class CosineWarmupLR extends LRScheduler {
  readonly epochs: number;
  readonly warmupEpochs: number;
  readonly warmupStartFactor: number;
  readonly minLr: number;

  constructor(optimizer: Optimizer<GroupBase>, o: CosineOptions) {
    super(optimizer, o);
    const warmup = o.warmupEpochs ?? 0;
    if (!(o.epochs > 0)) throw new RangeError(`Expected epochs > 0 for CosineWarmupLR but received ${o.epochs}`);
    if (!(warmup >= 0 && warmup < o.epochs))
      throw new RangeError(`Expected 0 <= warmupEpochs < epochs for CosineWarmupLR but received ${warmup}`);
    const sf = o.warmupStartFactor ?? 0.001;
    if (!(sf > 0 && sf <= 1)) throw new RangeError(`Expected warmupStartFactor in (0, 1] but received ${sf}`);
    const minLr = o.minLr ?? 0;
    if (!(minLr >= 0)) throw new RangeError(`Expected minLr >= 0 but received ${minLr}`);
    this.epochs = o.epochs;
    this.warmupEpochs = warmup;
    this.warmupStartFactor = sf;
    this.minLr = minLr;
    this.start();
  }

  lrAt(t: number, baseLr: number): number {
    if (t < this.warmupEpochs)
      return baseLr * (this.warmupStartFactor + ((1 - this.warmupStartFactor) * t) / this.warmupEpochs);
    const span = this.epochs - this.warmupEpochs;
    const tc = Math.min(t - this.warmupEpochs, span);
    return this.minLr + ((baseLr - this.minLr) * (1 + Math.cos((Math.PI * tc) / span))) / 2;
  }
}

export interface StepOptions extends SchedulerTiming {
  /** Decay every stepSize epochs. */
  stepSize: number;
  /** Multiplicative factor (default 0.1). */
  gamma?: number;
}

/** lr = base * gamma^floor(epoch / stepSize) (PyTorch's StepLR). */
export class StepLR extends LRScheduler {
  readonly stepSize: number;
  readonly gamma: number;

  constructor(optimizer: Optimizer<GroupBase>, o: StepOptions) {
    super(optimizer, o);
    if (!(o.stepSize > 0)) throw new RangeError(`Expected stepSize > 0 for StepLR but received ${o.stepSize}`);
    this.stepSize = o.stepSize;
    this.gamma = o.gamma ?? 0.1;
    this.start();
  }

  lrAt(t: number, baseLr: number): number {
    // The small slack keeps k/stepsPerEpoch from landing just below an integer.
    return baseLr * this.gamma ** Math.floor(t / this.stepSize + 1e-9);
  }
}
