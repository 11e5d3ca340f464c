// The training loop: the recipe end to end, with a run folder that records
// config, classes, versions and metrics next to atomic checkpoints, exact
// resume, and a clean stop on NaN loss or on request.
import { appendFileSync, existsSync, mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import * as T from '../tensor/index.js';
import { createModel, type ClassifierModel } from '../models/index.js';
import {
  SGD,
  AdamW,
  CosineWarmupLR,
  paramGroupsNoDecay,
  type Optimizer,
  type GroupBase,
  type OptimizerStateDict,
  type SchedulerStateDict,
} from '../optim/index.js';
import {
  DataLoader,
  loadDataset,
  selectSplits,
  subsetDataset,
  computeChannelStats,
  type ChannelStats,
  type Dataset,
  type Triple,
} from '../data/index.js';
import { deriveSeed } from '../util/rng.js';
import { cpuFeatures, cpuHasNativeBf16 } from '../util/cpu-features.js';
import { writeJsonAtomic, WriteError } from '../util/atomic.js';
import { readRunStart, reportSkippedInputs, writeRunStart } from './run-start.js';
import { goodsrecVersion } from '../util/version.js';
import { evaluate } from '../eval/evaluate.js';
import type { EvalMetrics } from '../eval/metrics.js';
import {
  type TrainConfig,
  DEFAULT_CONFIG,
  scaledLr,
  validateConfig,
  headOptions,
  marginOptions,
} from '../run/config.js';
import { marginCrossEntropy } from './margin-loss.js';
import {
  saveCheckpoint,
  loadCheckpoint,
  writePointer,
  readPointer,
  pruneCheckpoints,
  disposeTensors,
} from '../run/checkpoint.js';
import {
  configNormalization,
  evalPipeline,
  preprocessFromConfig,
  trainPipeline,
  type PreprocessConfig,
} from '../run/pipelines.js';
import { writeRunFiles, type RunInfo } from '../run/run-folder.js';
import { resolvePretrained, checkArchitecture, type ResolvedPretrained } from '../hub/index.js';
import { freezeBatchNormParams, layerDecayGroups, setTrainMode } from './finetune.js';
import type { StepProgress } from './progress.js';
import { DistributedSession, sha256 } from '../distributed/session.js';

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
  best: { top1: number; epoch: number; checkpoint: string } | null;
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

function resolveAmp(c: TrainConfig, device: T.Device): 'off' | 'bf16' | 'fp16' {
  if (c.amp === 'auto') return device.startsWith('cuda') ? 'fp16' : 'off';
  if (c.amp === 'fp16' && !device.startsWith('cuda'))
    throw new Error("amp 'fp16' needs a CUDA device; on CPU use 'bf16' or 'off'");
  return c.amp;
}

function makeRunName(c: TrainConfig): string {
  const t = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${c.model.name}-${t}`;
}

function versions(device: T.Device): Record<string, unknown> {
  const b = T.buildInfo();
  return {
    goodsrec: goodsrecVersion(),
    node: process.version,
    libtorch: b.torchVersion,
    cuda: b.cuda,
    mkldnn: b.mkldnn,
    malloc: T.getMallocPolicy(),
    device,
    threads: T.getNumThreads(),
    platform: `${process.platform}-${process.arch}`,
    cpu: cpuFeatures(),
  };
}

function ckptName(epoch: number, step: number): string {
  return step === 0
    ? `epoch-${String(epoch).padStart(4, '0')}`
    : `epoch-${String(epoch).padStart(4, '0')}-step-${String(step).padStart(6, '0')}`;
}

/** Loads and splits the dataset as the config says; the class list covers every split. */
export function prepareDataset(c: TrainConfig): { all: Dataset; train: Dataset; val: Dataset | null } {
  const all = loadDataset(c.data.root);
  let train = selectSplits(all, c.data.trainSplit);
  if (train.samples.length === 0) {
    const splits = [...new Set(all.samples.map((s) => s.split))].join(', ') || 'none';
    throw new Error(`dataset ${c.data.root}: split '${c.data.trainSplit}' has no images (splits found: ${splits})`);
  }
  if (c.data.fraction < 1) train = subsetDataset(train, { fraction: c.data.fraction, seed: c.seed });
  const val = c.data.valSplit ? selectSplits(all, c.data.valSplit) : null;
  if (val && val.samples.length === 0)
    throw new Error(
      `dataset ${c.data.root}: validation split '${c.data.valSplit}' has no images (set data.valSplit='' to train without validation)`,
    );
  return { all, train, val };
}

/** EMA of the model's weights (float tensors averaged, integer buffers copied). */
class WeightEma {
  constructor(
    readonly model: ClassifierModel,
    readonly decay: number,
  ) {}
  update(src: ClassifierModel): void {
    const mine = this.model.stateTensors();
    T.tidy(() =>
      T.noGrad(() => {
        for (const [k, t] of src.stateTensors()) {
          const e = mine.get(k)!;
          if (T.isFloating(t.dtype)) e.mul_(this.decay).add_(t.detach(), 1 - this.decay);
          else e.copy_(t);
        }
      }),
    );
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
  runDir: string;
  device: T.Device;
  amp: 'off' | 'bf16' | 'fp16';
}

/** Model, optimizer and everything else a checkpoint holds. */
interface Learner {
  model: ClassifierModel;
  optimizer: Optimizer<GroupBase>;
  scheduler: CosineWarmupLR;
  ema: WeightEma | null;
  scaler: T.GradScaler | null;
  numClasses: number;
}

/** The loop's position and record, carried from epoch to epoch (and restored on resume). */
interface Progress {
  pos: { epoch: number; step: number };
  globalStep: number;
  best: TrainResult['best'];
  lastVal: EvalMetrics | null;
  stepsDone: number;
  saveFailures: number;
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
  const { c, runDir, resumeFrom, stored } = openRunFolder(configIn, o, dist, isMain, log);
  const device = dist ? dist.device(T.resolveDevice(c.device)) : T.resolveDevice(c.device);
  const amp = resolveAmp(c, device);
  const cpu = amp === 'bf16' && device === 'cpu' ? cpuFeatures() : null;
  if (cpu && cpuHasNativeBf16(cpu) === false) {
    log(
      `amp bf16: this CPU (${cpu.model}) has neither AVX512-BF16 nor AMX, so bf16 convolutions and ` +
        'matmuls are emulated and usually slower than fp32 (--amp off)',
    );
  }
  T.setNumThreads(c.threads > 0 ? c.threads : dist ? dist.defaultThreads() : availableParallelism());
  const ctx: Ctx = { c, o, dist, isMain, log, runDir, device, amp };

  const data = await prepareData(ctx, stored);
  const trainLoader = new DataLoader({
    dataset: data.train,
    pipeline: trainPipeline(c, data.norm),
    batchSize: c.batchSize,
    mode: 'train',
    seed: c.seed,
    sampler: c.classBalanced ? 'class-balanced' : 'shuffle',
    dropLast: data.train.samples.length > c.batchSize,
    onBadFile: c.data.badFiles,
    ...(c.data.workers > 0 ? { workers: c.data.workers } : {}),
    cacheBytes: Math.floor(c.data.cacheMB * 1024 ** 2),
    ...(dist ? { shard: { rank: dist.rank, worldSize: dist.worldSize } } : {}),
    reuseBuffers: true, // each batch is copied into a tensor before the next is requested
  });
  const stepsPerEpoch = trainLoader.stepsPerEpoch;
  const learner = buildModel(ctx, data.all.classes.length, data.pretrained, Math.ceil(stepsPerEpoch / c.accumulate));
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
      appendMetric(ctx, rec as unknown as Record<string, unknown>);
      o.events?.onEpoch?.(rec);
      const stopNow = stopRequested(ctx);
      await endOfEpoch(ctx, learner, progress, rec, { epoch, isLast, stopNow, hasVal: data.val !== null });
      dist?.waitForMain(`the end of epoch ${epoch + 1} (rank 0 saving)`);
      if (stopNow && !isLast) {
        stopped = true;
        log(`stopped after epoch ${epoch + 1}; continue with --resume ${runDir}`);
      }
    }
  } finally {
    await trainLoader.close();
    if (isMain && trainLoader.badFiles.length) {
      writeJsonAtomic(join(runDir, 'bad-files.json'), trainLoader.badFiles);
      log(`${trainLoader.badFiles.length} bad image file(s) were skipped; see ${join(runDir, 'bad-files.json')}`);
    }
  }
  if (progress.saveFailures > 0) {
    const last = readPointer(runDir, 'latest');
    throw new Error(
      `the final checkpoint could not be saved (see above); ${last ? `the last saved checkpoint is ${last}` : 'no checkpoint was saved'}`,
    );
  }
  const epochsDone = Math.min(c.schedule.epochs, progress.stepsDone / stepsPerEpoch);
  learner.model.dispose();
  learner.ema?.model.dispose();
  const skipped = data.skippedInputs + trainLoader.badFiles.length;
  return {
    runDir,
    stopped,
    epochsDone,
    best: progress.best,
    lastVal: progress.lastVal,
    seconds: (Date.now() - started) / 1000,
    skippedInputs: skipped,
  };
}

/**
 * The run folder: a new one (named by rank 0, config.json written first), or the one to resume with
 * its stored config and, when it got that far, its classes and pre-processing.
 */
function openRunFolder(
  configIn: TrainConfig,
  o: TrainOptions,
  dist: DistributedSession | null,
  isMain: boolean,
  log: (s: string) => void,
): { c: TrainConfig; runDir: string; resumeFrom: string | undefined; stored: RunInfo | null } {
  let c = configIn;
  let runDir: string;
  let resumeFrom: string | undefined;
  // On resume, the run folder's own config, classes and pre-processing rule.
  let stored: RunInfo | null = null;
  if (o.resume) {
    runDir = resolve(o.resume);
    ({ config: c, stored } = readRunStart(runDir, o.resume));
    validateConfig(c);
    resumeFrom = readPointer(runDir, 'latest');
    if (!resumeFrom) log(`resume: ${runDir} has no checkpoint yet; starting it from the beginning`);
  } else {
    runDir = resolve(c.out, o.name ?? makeRunName(c));
    if (isMain && existsSync(join(runDir, 'config.json')))
      throw new Error(
        `run folder ${runDir} already exists: pick another --name, or continue it with --resume ${runDir}`,
      );
    // Rank 0 names the run (the others' clocks differ); the world size and global batch are recorded with it.
    if (dist) runDir = dist.share('runDir', isMain ? runDir : undefined);
    const world = dist?.worldSize ?? 1;
    c = {
      ...c,
      distributed: {
        ...(c.distributed ?? DEFAULT_CONFIG.distributed),
        worldSize: world,
        globalBatch: c.batchSize * c.accumulate * world,
      },
    };
  }
  if (isMain) mkdirSync(join(runDir, 'checkpoints'), { recursive: true });
  if (isMain && !o.resume) writeRunStart(runDir, c);
  return { c, runDir, resumeFrom, stored };
}

/**
 * The dataset and its statistics (class list over every split; stored with the model), the pretrained
 * weights, and the evaluation pre-processing; rank 0 records them in the run folder (or checks a resumed
 * run's classes).
 */
async function prepareData(
  ctx: Ctx,
  stored: RunInfo | null,
): Promise<{
  all: Dataset;
  train: Dataset;
  val: Dataset | null;
  norm: ChannelStats;
  pretrained: ResolvedPretrained | null;
  preprocess: PreprocessConfig;
  skippedInputs: number;
}> {
  const { c, runDir, log, dist, isMain } = ctx;
  const { all, train: trainDs, val: valDs } = prepareDataset(c);
  const skippedInputs = reportSkippedInputs(runDir, [trainDs, valDs], log);
  let norm: ChannelStats;
  if (c.input.mean === 'dataset' || c.input.std === 'dataset') {
    if (stored) norm = { mean: stored.preprocess.mean, std: stored.preprocess.std };
    else {
      log('computing mean/std of the training split');
      const s = await computeChannelStats(trainDs);
      norm = {
        mean: c.input.mean === 'dataset' ? s.mean : (c.input.mean as Triple),
        std: c.input.std === 'dataset' ? s.std : (c.input.std as Triple),
      };
    }
  } else norm = configNormalization(c);
  // Pretrained weights by name (downloaded into the shared caches); not needed to resume.
  let pre: ResolvedPretrained | null = null;
  if (c.model.pretrained && !stored) {
    pre = await resolvePretrained(c.model.pretrained, { log });
    checkArchitecture(pre, c.model.name);
  }
  const record = pre?.cfg
    ? { name: pre.name, architecture: pre.architecture, ...(pre.commit ? { commit: pre.commit } : {}), cfg: pre.cfg }
    : undefined;
  const preprocess = preprocessFromConfig(c, norm, record);
  dist?.checkAgreement({
    config: sha256({ ...c, out: resolve(c.out) }),
    dataset: sha256(trainDs.samples.map((s) => [s.path, s.label, s.split])),
  });

  if (!isMain) {
    /* rank 0 writes the run folder */
  } else if (!stored) {
    writeRunFiles(runDir, {
      config: c,
      classes: all.classes,
      preprocess,
      versions: versions(ctx.device),
      dataset: {
        root: resolve(c.data.root),
        classes: all.classes.length,
        train: trainDs.samples.length,
        val: valDs?.samples.length ?? 0,
        trainSplit: c.data.trainSplit,
        valSplit: c.data.valSplit,
        fraction: c.data.fraction,
      },
    });
  } else if (JSON.stringify(stored.classes) !== JSON.stringify(all.classes)) {
    throw new Error(
      `--resume: the dataset's classes changed since the run started (${stored.classes.length} stored, ${all.classes.length} now)`,
    );
  }
  return { all, train: trainDs, val: valDs, norm, pretrained: pre, preprocess, skippedInputs };
}

/** Model, optimizer, schedule, EMA and loss scaler; init is seeded so runs repeat. */
function buildModel(
  ctx: Ctx,
  numClasses: number,
  pre: ResolvedPretrained | null,
  optimizerStepsPerEpoch: number,
): Learner {
  const { c, log, device } = ctx;
  T.manualSeed(c.seed);
  const model = createModel(c.model.name, {
    numClasses,
    dropRate: c.model.dropRate,
    dropPathRate: c.model.dropPathRate,
    ...headOptions(c.model),
    pretrained: pre?.weights,
    log: (m: string) => log(m),
  });
  model.to(device);
  if (c.model.channelsLast) model.to('channelsLast');
  const lr = scaledLr(c);
  if (c.finetune.freezeBn) log(`finetune: ${freezeBatchNormParams(model)} BatchNorm parameters frozen`);
  const groups = layerDecayGroups(
    model,
    c.optim.noDecayBiasNorm
      ? paramGroupsNoDecay(model, c.optim.weightDecay)
      : [
          {
            params: model.parameters().filter((p) => p.requiresGrad),
            weightDecay: c.optim.weightDecay,
            names: model
              .namedParameters()
              .filter(([, p]) => p.requiresGrad)
              .map(([n]) => n),
          },
        ],
    lr,
    c.finetune.layerDecay,
  );
  const optimizer: Optimizer<GroupBase> =
    c.optim.name === 'sgd'
      ? (new SGD(groups, {
          lr,
          momentum: c.optim.momentum,
          nesterov: c.optim.nesterov,
          weightDecay: c.optim.weightDecay,
        }) as unknown as Optimizer<GroupBase>)
      : (new AdamW(groups, { lr, weightDecay: c.optim.weightDecay }) as unknown as Optimizer<GroupBase>);
  const scheduler = new CosineWarmupLR(optimizer, {
    epochs: c.schedule.epochs,
    warmupEpochs: c.schedule.warmupEpochs,
    minLr: c.schedule.minLr,
    ...(c.schedule.perIteration ? { interval: 'iteration' as const, stepsPerEpoch: optimizerStepsPerEpoch } : {}),
  });
  let ema: WeightEma | null = null;
  if (c.ema > 0) {
    const m = createModel(c.model.name, { numClasses, ...headOptions(c.model), log: null });
    m.to(device);
    m.loadStateDict(model.stateDict());
    m.eval();
    ema = new WeightEma(m, c.ema);
  }
  const scaler = ctx.amp === 'fp16' ? new T.GradScaler() : null;
  return { model, optimizer, scheduler, ema, scaler, numClasses };
}

/** Resume: weights, optimizer, schedule, EMA, scaler, position, best; a fresh start otherwise. */
function restoreState(ctx: Ctx, l: Learner, resumeFrom: string | undefined): Progress {
  const p: Progress = {
    pos: { epoch: 0, step: 0 },
    globalStep: 0,
    best: null,
    lastVal: null,
    stepsDone: 0,
    saveFailures: 0,
  };
  if (!resumeFrom) return p;
  const { device, dist, log } = ctx;
  const ck = loadCheckpoint(resumeFrom);
  T.tidy(() => {
    l.model.loadStateDict(new Map([...ck.model].map(([k, r]) => [k, T.fromRaw(r, device)])));
    if (l.ema && ck.ema) l.ema.model.loadStateDict(new Map([...ck.ema].map(([k, r]) => [k, T.fromRaw(r, device)])));
  });
  const optState = ck.optimizer() as OptimizerStateDict;
  try {
    l.optimizer.loadStateDict(optState);
  } finally {
    disposeTensors(optState);
  }
  l.scheduler.loadStateDict(ck.state.scheduler as SchedulerStateDict);
  if (l.scaler && ck.state.scaler) l.scaler.loadState(ck.state.scaler as { scale: number; growthTracker: number });
  p.pos = ck.state.position as { epoch: number; step: number };
  // Another world size: the same samples were seen after step * batch * worldSize (strided shards).
  const ckWorld = (ck.state.worldSize as number | undefined) ?? 1;
  const world = dist?.worldSize ?? 1;
  if (ckWorld !== world) {
    log(`resume: the checkpoint was written by ${ckWorld} process(es), this run has ${world}`);
    p.pos = { epoch: p.pos.epoch, step: Math.floor((p.pos.step * ckWorld) / world) };
  }
  p.globalStep = ck.state.globalStep as number;
  p.best = (ck.state.best as TrainResult['best']) ?? null;
  log(`resumed from ${resumeFrom} at epoch ${p.pos.epoch + 1}, step ${p.pos.step}`);
  return p;
}

function appendMetric(ctx: Ctx, rec: Record<string, unknown>): void {
  if (ctx.isMain) appendFileSync(join(ctx.runDir, 'metrics.jsonl'), JSON.stringify(rec) + '\n');
}

/** Every rank votes once per step; any rank's request stops all of them at the same step. */
function stopRequested(ctx: Ctx): boolean {
  const local = ctx.o.events?.shouldStop?.() ?? false;
  return ctx.dist ? ctx.dist.agreeStop(local) : local;
}

/**
 * Writes checkpoint `p` (rank 0; the others get its name) and moves latest.json to it. A failed write
 * keeps the previous checkpoint and returns null; two in a row stop training.
 */
async function saveCheckpointAt(
  ctx: Ctx,
  l: Learner,
  pr: Progress,
  p: { epoch: number; step: number },
): Promise<string | null> {
  const { runDir, log } = ctx;
  const name = ckptName(p.epoch, p.step);
  if (!ctx.isMain) return name;
  const content = { model: l.model.stateDict(), ema: l.ema?.model.stateDict(), optimizer: l.optimizer.stateDict() };
  try {
    await saveCheckpoint(join(runDir, 'checkpoints'), name, {
      ...content,
      state: {
        position: p,
        globalStep: pr.globalStep,
        scheduler: l.scheduler.stateDict(),
        scaler: l.scaler?.state() ?? null,
        best: pr.best,
        val: pr.lastVal ? { top1: pr.lastVal.top1, top5: pr.lastVal.top5 } : null,
        model: ctx.c.model.name,
        numClasses: l.numClasses,
        worldSize: ctx.dist?.worldSize ?? 1,
      },
    });
    writePointer(runDir, 'latest', name, { position: p });
    pr.saveFailures = 0;
    return name;
  } catch (e) {
    if (!(e instanceof WriteError)) throw e;
    pr.saveFailures++;
    log(`checkpoint ${name} could not be saved: ${(e as Error).message}; the previous checkpoint is intact`);
    if (pr.saveFailures >= 2)
      throw new Error(
        `two checkpoints in a row could not be saved (last: ${(e as Error).message}); stopping so no more work is lost`,
      );
    return null;
  } finally {
    disposeTensors(content);
  }
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
  const { c, o, dist, device, runDir, log, amp } = ctx;
  const { model, optimizer, scheduler, ema, scaler } = l;
  const margin = marginOptions(c);
  const stepsPerEpoch = loader.stepsPerEpoch;
  const totalSteps = c.schedule.epochs * stepsPerEpoch;
  const autocastDevice: T.AutocastDevice = device.startsWith('cuda') ? 'cuda' : 'cpu';
  const epochStart = Date.now();
  setTrainMode(model, c.finetune, epoch);
  loader.setState({ epoch, step: epoch === pr.pos.epoch ? pr.pos.step : 0 });
  let lossSum = 0;
  let lossN = 0;
  let images = 0;
  let step = epoch === pr.pos.epoch ? pr.pos.step : 0;
  for await (const batch of loader) {
    // Seeded per step so dropout/drop-path repeat exactly after a resume.
    T.manualSeed(deriveSeed(c.seed, epoch, step, 0x7a11));
    dist?.beginStep(epoch, step, (step + 1) % c.accumulate === 0 || step + 1 === stepsPerEpoch);
    const lossValue = T.tidy(() => {
      let x = T.tensor(batch.data as Float32Array, batch.shape);
      if (device !== 'cpu') x = x.to(device);
      if (c.model.channelsLast) x = x.contiguous('channelsLast');
      const y = T.tensor(batch.labels, [batch.labels.length]).long().to(device);
      const forward = (): T.Tensor => {
        const logits = model.forward(x);
        return margin
          ? marginCrossEntropy(logits.float(), y, margin)
          : T.F.crossEntropy(logits.float(), y, { labelSmoothing: c.loss.labelSmoothing });
      };
      const loss =
        amp === 'off' ? forward() : T.autocast(autocastDevice, forward, amp === 'bf16' ? 'bfloat16' : 'float16');
      const v = loss.item();
      if (!Number.isFinite(v)) return v;
      const scaled = scaler ? scaler.scaleLoss(loss) : loss;
      (c.accumulate > 1 ? scaled.div(c.accumulate) : scaled).backward();
      return v;
    });
    if (!Number.isFinite(lossValue)) {
      const last = readPointer(runDir, 'latest');
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
      let doStep = true;
      dist?.averageGradients();
      if (scaler)
        doStep = T.tidy(() =>
          scaler.unscaleAndUpdate(
            model
              .parameters()
              .map((p) => p.grad)
              .filter((g): g is T.Tensor => g !== undefined),
          ),
        );
      if (doStep) optimizer.step();
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
    if (pr.globalStep % 50 === 0 && step % c.accumulate === 0)
      appendMetric(ctx, { type: 'step', epoch, step, globalStep: pr.globalStep, loss: lossValue, lr: currentLr });
    if (c.checkpointEverySteps > 0 && step % c.checkpointEverySteps === 0 && step < stepsPerEpoch)
      await saveCheckpointAt(ctx, l, pr, { epoch, step });
    if (stopRequested(ctx)) {
      if (step < stepsPerEpoch) {
        const n = await saveCheckpointAt(ctx, l, pr, { epoch, step });
        log(n ? `stopped: checkpoint ${n} saved; continue with --resume ${runDir}` : 'stopped');
        return { stopped: true, record: epochRecord(epoch, lossSum, lossN, images, epochStart, optimizer) };
      }
    }
  }
  if (!c.schedule.perIteration) scheduler.step();
  return { stopped: false, record: epochRecord(epoch, lossSum, lossN, images, epochStart, optimizer) };
}

function epochRecord(
  epoch: number,
  lossSum: number,
  lossN: number,
  images: number,
  epochStart: number,
  optimizer: Optimizer<GroupBase>,
): EpochRecord {
  const seconds = (Date.now() - epochStart) / 1000;
  return {
    type: 'epoch',
    epoch: epoch + 1,
    trainLoss: lossN ? lossSum / lossN : NaN,
    lr: optimizer.paramGroups[0]!.lr,
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

/** Rank 0: checkpoint when the epoch improved, is the last, is due, or a stop was asked; best.json; pruning. */
async function endOfEpoch(
  ctx: Ctx,
  l: Learner,
  pr: Progress,
  rec: EpochRecord,
  e: { epoch: number; isLast: boolean; stopNow: boolean; hasVal: boolean },
): Promise<void> {
  const { c, runDir } = ctx;
  const { epoch, isLast } = e;
  const improved = rec.val !== undefined && (pr.best === null || rec.val.top1 > pr.best.top1);
  if (!(ctx.isMain && (improved || isLast || (epoch + 1) % c.checkpointEvery === 0 || e.stopNow))) return;
  const name = ckptName(epoch + 1, 0);
  if (improved) pr.best = { top1: rec.val!.top1, epoch: epoch + 1, checkpoint: name };
  const saved = await saveCheckpointAt(ctx, l, pr, { epoch: epoch + 1, step: 0 });
  if (saved && improved) writePointer(runDir, 'best', saved, { top1: pr.best!.top1, epoch: epoch + 1 });
  if (saved && !e.hasVal && isLast) writePointer(runDir, 'best', saved, { epoch: epoch + 1 });
  const protect = [readPointer(runDir, 'best'), readPointer(runDir, 'latest')]
    .filter((p): p is string => !!p)
    .map((p) => p.split('/').pop()!);
  pruneCheckpoints(join(runDir, 'checkpoints'), c.keepCheckpoints, protect);
}
