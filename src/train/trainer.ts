// The training loop: the recipe end to end, with a run folder that records
// config, classes, versions and metrics next to atomic checkpoints, exact
// resume, and a clean stop on NaN loss or on request. The run folder (src/run)
// and the checkpoint policy decide what is written where; learner.ts builds
// what a checkpoint holds; data-setup.ts the data.
import { availableParallelism } from 'node:os';
import * as T from '../tensor/index.js';
import { classCounts, type Batch, type DataLoader, type Dataset } from '../data/index.js';
import { deriveSeed } from '../util/rng.js';
import { cpuFeatures, cpuHasNativeBf16 } from '../util/cpu-features.js';
import { chooseAmp } from './amp-choice.js';
import { scaledOptimizerStep } from './amp-step.js';
import { evaluate } from '../eval/evaluate.js';
import type { EvalMetrics } from '../eval/metrics.js';
import { type TrainConfig, DEFAULT_CONFIG } from '../run/config.js';
import { loadCheckpoint } from '../run/checkpoint.js';
import { CheckpointPolicy, type BestCheckpoint } from '../run/checkpoint-policy.js';
import { checkpointName } from '../run/layout.js';
import { evalPipeline, type PreprocessConfig } from '../run/pipelines.js';
import type { RunFolder } from '../run/run-folder.js';
import { setTrainMode } from './finetune.js';
import type { StepProgress } from './progress.js';
import { DistributedSession } from '../distributed/session.js';
import { openRunFolder, type RunStart } from './run-start.js';
import { createTrainLoader, prepareData } from './data-setup.js';
import {
  createLearner,
  disposeLearner,
  learnerCheckpoint,
  restoreLearner,
  type Learner,
  type Position,
} from './learner.js';

export { prepareDataset } from './data-setup.js';

export interface EpochRecord {
  type: 'epoch';
  epoch: number;
  trainLoss: number;
  lr: number;
  imagesPerSec: number;
  seconds: number;
  val?: { top1: number; top5: number; loss: number | null; meanClassAccuracy: number };
}

export interface TrainEvents {
  onStep?(p: StepProgress, totalSteps: number, stepsDone: number): void;
  onLog?(line: string): void;
  onEpoch?(r: EpochRecord): void;
  /** Polled after every step: true saves a checkpoint and returns. */
  shouldStop?(): boolean;
}

export interface TrainResult {
  runDir: string;
  stopped: boolean;
  epochsDone: number;
  best: BestCheckpoint | null;
  lastVal: EvalMetrics | null;
  seconds: number;
  /** Inputs not trained on: dataset entries that are not readable files, and files that failed to decode. */
  skippedInputs: number;
}

export class TrainingDivergedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrainingDivergedError';
  }
}

export interface TrainOptions {
  /** Continue this run folder from its latest checkpoint. */
  resume?: string;
  /** Name of the new run folder under config.out. */
  name?: string;
  events?: TrainEvents;
}

export async function train(configIn: TrainConfig, o: TrainOptions = {}): Promise<TrainResult> {
  const started = Date.now();
  // One rank of a data-parallel job when launched with torchrun's environment (WORLD_SIZE > 1).
  const dist = DistributedSession.fromEnv(process.env, T.resolveDevice(configIn.device));
  try {
    return await trainRank(configIn, o, dist, started);
  } finally {
    dist?.close();
  }
}

/** What the steps of one training process share. */
interface Ctx {
  c: TrainConfig;
  o: TrainOptions;
  dist: DistributedSession | null;
  isMain: boolean;
  log: (s: string) => void;
  folder: RunFolder;
  device: T.Device;
  amp: 'off' | 'bf16' | 'fp16';
  policy: CheckpointPolicy;
}

/** The loop's position and record, carried from epoch to epoch (and restored on resume). */
interface Progress {
  pos: Position;
  globalStep: number;
  lastVal: EvalMetrics | null;
  stepsDone: number;
}

async function trainRank(
  configIn: TrainConfig,
  o: TrainOptions,
  dist: DistributedSession | null,
  started: number,
): Promise<TrainResult> {
  const isMain = dist === null || dist.isMain;
  const log = (s: string): void => {
    if (isMain) o.events?.onLog?.(s);
  };
  const start = openRunFolder(configIn, o, dist, log);
  try {
    return await trainInFolder(start, { o, dist, isMain, log, started });
  } finally {
    start.folder.release();
  }
}

/** Everything after the run folder is open: data, learner, the epochs, the result. */
async function trainInFolder(
  { c, folder, resumeFrom, stored }: RunStart,
  base: Pick<Ctx, 'o' | 'dist' | 'isMain' | 'log'> & { started: number },
): Promise<TrainResult> {
  const { o, dist, isMain, log } = base;
  const device = dist ? dist.device(T.resolveDevice(c.device)) : T.resolveDevice(c.device);
  const ampChoice = chooseAmp(c.amp, device);
  const amp = ampChoice.amp;
  log(`amp: ${amp === 'off' ? 'fp32' : amp} (${ampChoice.reason})`);
  const cpu = amp === 'bf16' && device === 'cpu' ? cpuFeatures() : null;
  if (cpu && cpuHasNativeBf16(cpu) === false) {
    log(
      `amp bf16: this CPU (${cpu.model}) has neither AVX512-BF16 nor AMX, so bf16 convolutions and ` +
        'matmuls are emulated and usually slower than fp32 (--amp off)',
    );
  }
  T.setNumThreads(c.threads > 0 ? c.threads : dist ? dist.defaultThreads() : availableParallelism());
  if (T.isCuda(device)) {
    // Training shapes are fixed: let cuDNN time its convolution algorithms once and keep the fastest.
    T.cuda.setCudnnBenchmark(true);
    log(`device: ${T.describeDevice(device)}, cuDNN benchmark mode on`);
  }
  const policy = CheckpointPolicy.forTraining(c);
  const ctx: Ctx = { c, o, dist, isMain, log, folder, device, amp, policy };

  const data = await prepareData(c, folder, stored, { dist, device, amp: ampChoice, log });
  const trainLoader = createTrainLoader(c, data.train, data.norm, dist);
  const stepsPerEpoch = trainLoader.stepsPerEpoch;
  const learner = createLearner(c, {
    numClasses: data.all.classes.length,
    classCounts: classCounts(data.train),
    pretrained: data.pretrained,
    device,
    amp,
    optimizerStepsPerEpoch: Math.ceil(stepsPerEpoch / c.accumulate),
    log,
  });
  const progress = restoreState(ctx, learner, resumeFrom);
  progress.stepsDone = progress.pos.epoch * stepsPerEpoch + progress.pos.step;
  const dcfg = { ...DEFAULT_CONFIG.distributed, ...c.distributed };
  const synced = dist?.attach(learner.model, dcfg.bucketCapMB, dcfg.syncBn) ?? 0;
  if (synced) log(`sync-bn: ${synced} BatchNorm layers normalise over the global batch`);

  let stopped = false;
  try {
    for (let epoch = progress.pos.epoch; epoch < c.schedule.epochs && !stopped; epoch++) {
      const r = await runEpoch(ctx, learner, progress, trainLoader, epoch);
      if (r.stopped) {
        stopped = true;
        break;
      }
      const rec = r.record;
      const isLast = epoch + 1 === c.schedule.epochs;
      // Every rank validates its shard (each sample once over all ranks); the counts are summed over ranks.
      if (data.val && c.validateEvery > 0 && ((epoch + 1) % c.validateEvery === 0 || isLast)) {
        const m = await validate(ctx, learner, data.val, data.preprocess, epoch);
        progress.lastVal = m;
        rec.val = { top1: m.top1, top5: m.top5, loss: m.loss, meanClassAccuracy: m.meanClassAccuracy };
      }
      if (isMain) folder.appendMetric(rec);
      o.events?.onEpoch?.(rec);
      const stopNow = stopRequested(ctx);
      const d = policy.atEpochEnd(epoch + 1, { isLast, stop: stopNow, top1: rec.val?.top1, hasVal: data.val !== null });
      if (isMain && d.save)
        policy.settleEpoch(folder, d, await saveCheckpointAt(ctx, learner, progress, { epoch: epoch + 1, step: 0 }));
      dist?.waitForMain(`the end of epoch ${epoch + 1} (rank 0 saving)`);
      if (stopNow && !isLast) {
        stopped = true;
        log(`stopped after epoch ${epoch + 1}; continue with --resume ${folder.root}`);
      }
    }
  } finally {
    await trainLoader.close();
    if (isMain && trainLoader.badFiles.length) {
      folder.writeJson('badFiles', trainLoader.badFiles);
      log(`${trainLoader.badFiles.length} bad image file(s) were skipped; see ${folder.path('badFiles')}`);
    }
  }
  if (policy.lastSaveFailed) {
    const last = folder.pointer('latest');
    throw new Error(
      `the final checkpoint could not be saved (see above); ${last ? `the last saved checkpoint is ${last}` : 'no checkpoint was saved'}`,
    );
  }
  const epochsDone = Math.min(c.schedule.epochs, progress.stepsDone / stepsPerEpoch);
  disposeLearner(learner);
  return {
    runDir: folder.root,
    stopped,
    epochsDone,
    best: policy.best,
    lastVal: progress.lastVal,
    seconds: (Date.now() - base.started) / 1000,
    skippedInputs: data.skippedInputs + trainLoader.badFiles.length,
  };
}

/** Resume: weights, optimizer, schedule, EMA, scaler, position, best; a fresh start otherwise. */
function restoreState(ctx: Ctx, l: Learner, resumeFrom: string | undefined): Progress {
  const p: Progress = { pos: { epoch: 0, step: 0 }, globalStep: 0, lastVal: null, stepsDone: 0 };
  if (!resumeFrom) return p;
  const { dist, log } = ctx;
  const s = restoreLearner(l, loadCheckpoint(resumeFrom), ctx.device);
  p.pos = s.position;
  // Another world size: the same samples were seen after step * batch * worldSize (strided shards).
  const world = dist?.worldSize ?? 1;
  if (s.worldSize !== world) {
    log(`resume: the checkpoint was written by ${s.worldSize} process(es), this run has ${world}`);
    p.pos = { epoch: p.pos.epoch, step: Math.floor((p.pos.step * s.worldSize) / world) };
  }
  p.globalStep = s.globalStep;
  ctx.policy.best = s.best;
  log(`resumed from ${resumeFrom} at epoch ${p.pos.epoch + 1}, step ${p.pos.step}`);
  return p;
}

/** Every rank votes once per step; any rank's request stops all of them at the same step. */
function stopRequested(ctx: Ctx): boolean {
  const local = ctx.o.events?.shouldStop?.() ?? false;
  return ctx.dist ? ctx.dist.agreeStop(local) : local;
}

/**
 * Writes checkpoint `p` (rank 0; the others get its name) and moves latest.json to it. A failed write
 * keeps the previous checkpoint and returns null; two in a row stop training (the policy's rule).
 */
async function saveCheckpointAt(ctx: Ctx, l: Learner, pr: Progress, p: Position): Promise<string | null> {
  const name = checkpointName(p.epoch, p.step);
  if (!ctx.isMain) return name;
  const content = learnerCheckpoint(l, {
    position: p,
    globalStep: pr.globalStep,
    best: ctx.policy.best,
    worldSize: ctx.dist?.worldSize ?? 1,
    modelName: ctx.c.model.name,
    val: pr.lastVal ? { top1: pr.lastVal.top1, top5: pr.lastVal.top5 } : null,
  });
  return ctx.policy.save(ctx.folder, name, content, { position: p }, ctx.log);
}

/**
 * One epoch of training steps (from the resume position in the first); checkpoints inside the epoch
 * when asked. `stopped`: a stop request ended it early (a checkpoint was saved).
 */
async function runEpoch(
  ctx: Ctx,
  l: Learner,
  pr: Progress,
  loader: DataLoader,
  epoch: number,
): Promise<{ stopped: boolean; record: EpochRecord }> {
  const { c, o, dist, device, folder, log, amp } = ctx;
  const { model, optimizer, scheduler, ema, scaler } = l;
  const stepsPerEpoch = loader.stepsPerEpoch;
  const totalSteps = c.schedule.epochs * stepsPerEpoch;
  const autocastDevice: T.AutocastDevice = T.deviceType(device);
  const epochStart = Date.now();
  setTrainMode(model, c.finetune, epoch);
  loader.setState({ epoch, step: epoch === pr.pos.epoch ? pr.pos.step : 0 });
  let lossSum = 0;
  let lossN = 0;
  let images = 0;
  let step = epoch === pr.pos.epoch ? pr.pos.step : 0;
  const record = (): EpochRecord =>
    epochRecord(epoch, lossSum, lossN, images, epochStart, optimizer.paramGroups[0]!.lr);
  // Batch i + 1 is taken and its host-to-device copy issued while the device runs step i (a prefetch of one
  // batch); on the CPU the same path runs with the copy a no-op.
  // In a scope: on CUDA the host tensor and its pinned copy are freed once the copy is queued (libtorch's
  // pinned allocator keeps the block until the copy has run).
  const prefetch = new T.DevicePrefetcher(loader[Symbol.asyncIterator](), (b: Batch) =>
    T.tidy(() => ({
      x: T.batchToDevice(T.tensor(b.data as Float32Array, b.shape), device, {
        channelsLast: c.model.channelsLast,
      }).keep(),
      y: T.batchToDevice(T.tensor(b.labels, [b.labels.length]).long(), device).keep(),
    })),
  );
  let next = await prefetch.fetch();
  try {
    while (next) {
      const { batch, onDevice } = next;
      // Seeded per step so dropout/drop-path repeat exactly after a resume.
      T.manualSeed(deriveSeed(c.seed, epoch, step, 0x7a11));
      dist?.beginStep(epoch, step, (step + 1) % c.accumulate === 0 || step + 1 === stepsPerEpoch);
      // Forward and backward are queued before the loss is read (reading it waits for the device); a
      // non-finite loss is caught below, before any optimizer step.
      const lossT = T.tidy(() => {
        const forward = (): T.Tensor => l.loss(model.forward(onDevice.x), onDevice.y);
        const loss =
          amp === 'off' ? forward() : T.autocast(autocastDevice, forward, amp === 'bf16' ? 'bfloat16' : 'float16');
        const scaled = scaler ? scaler.scaleLoss(loss) : loss;
        (c.accumulate > 1 ? scaled.div(c.accumulate) : scaled).backward();
        return loss.keep();
      });
      next = await prefetch.fetch();
      const lossValue = lossT.item();
      lossT.dispose();
      onDevice.x.dispose();
      onDevice.y.dispose();
      if (!Number.isFinite(lossValue)) {
        const last = folder.pointer('latest');
        throw new TrainingDivergedError(
          `loss became ${lossValue} at epoch ${epoch + 1}, step ${step + 1}: stopping. ` +
            (last
              ? `The last good checkpoint is ${last}; lower optim.lr or enable a warmup and resume from it.`
              : 'No checkpoint was saved yet; lower optim.lr or enable a warmup.'),
        );
      }
      step++;
      pr.stepsDone++;
      if (step % c.accumulate === 0 || step === stepsPerEpoch) {
        dist?.averageGradients();
        scaledOptimizerStep(optimizer, model.parameters(), scaler);
        optimizer.zeroGrad();
        pr.globalStep++;
        ema?.update(model);
        if (c.schedule.perIteration) scheduler.step();
      }
      lossSum += lossValue * batch.labels.length;
      lossN += batch.labels.length;
      images += batch.labels.length;
      const secs = (Date.now() - epochStart) / 1000;
      const currentLr = optimizer.paramGroups[0]!.lr;
      o.events?.onStep?.(
        {
          epoch,
          epochs: c.schedule.epochs,
          step,
          steps: stepsPerEpoch,
          loss: lossValue,
          lr: currentLr,
          imagesPerSec: images / Math.max(secs, 1e-9),
        },
        totalSteps,
        pr.stepsDone,
      );
      if (ctx.isMain && pr.globalStep % 50 === 0 && step % c.accumulate === 0)
        folder.appendMetric({ type: 'step', epoch, step, globalStep: pr.globalStep, loss: lossValue, lr: currentLr });
      if (ctx.policy.dueAtStep(step, stepsPerEpoch)) await saveCheckpointAt(ctx, l, pr, { epoch, step });
      if (stopRequested(ctx)) {
        if (step < stepsPerEpoch) {
          const n = await saveCheckpointAt(ctx, l, pr, { epoch, step });
          log(n ? `stopped: checkpoint ${n} saved; continue with --resume ${folder.root}` : 'stopped');
          return { stopped: true, record: record() };
        }
      }
    }
  } finally {
    // A stop or an error leaves the prefetched batch and the loader's workers: release both.
    if (next) {
      next.onDevice.x.dispose();
      next.onDevice.y.dispose();
    }
    await prefetch.close();
  }
  if (!c.schedule.perIteration) scheduler.step();
  return { stopped: false, record: record() };
}

function epochRecord(
  epoch: number,
  lossSum: number,
  lossN: number,
  images: number,
  epochStart: number,
  lr: number,
): EpochRecord {
  const seconds = (Date.now() - epochStart) / 1000;
  return {
    type: 'epoch',
    epoch: epoch + 1,
    trainLoss: lossN ? lossSum / lossN : NaN,
    lr,
    imagesPerSec: images / Math.max(seconds, 1e-9),
    seconds,
  };
}

/**
 * Validation of the (EMA) model on the validation split with the run's evaluation pre-processing; in a
 * data-parallel job each rank evaluates its shard and the counts are summed over the ranks.
 */
async function validate(
  ctx: Ctx,
  l: Learner,
  valDs: Dataset,
  preprocess: PreprocessConfig,
  epoch: number,
): Promise<EvalMetrics> {
  const { c, device, dist } = ctx;
  const evalModel = l.ema ? l.ema.model : l.model;
  const r = await evaluate(evalModel, valDs, evalPipeline(preprocess, c.data.maxPixels), {
    ...dist?.shardedEvaluation(evalModel, `validation after epoch ${epoch + 1}`),
    batchSize: Math.max(c.batchSize, 32),
    device,
    channelsLast: c.model.channelsLast,
    keepTopK: 0,
    ...(c.data.workers > 0 ? { workers: c.data.workers } : {}),
  });
  setTrainMode(l.model, c.finetune, epoch);
  return r.metrics;
}
