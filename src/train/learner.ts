// What a training checkpoint holds, built from the run config: the model, its optimizer (parameter
// groups: no decay on norms, layer-wise lr decay, frozen BatchNorm), the lr schedule, the weight EMA, the
// fp16 loss scaler and the loss; restored from a checkpoint on resume, and turned back into one.
import * as T from '../tensor/index.js';
import { createModel, type ClassifierModel } from '../models/index.js';
import {
  CosineWarmupLR,
  createOptimizer,
  paramGroupsNoDecay,
  type GroupBase,
  type Optimizer,
  type OptimizerStateDict,
  type ParamGroupSpec,
  type SchedulerStateDict,
} from '../optim/index.js';
import { headOptions, marginOptions, scaledLr, type TrainConfig } from '../run/config.js';
import { disposeTensors, type CheckpointContent, type LoadedCheckpoint } from '../run/checkpoint.js';
import type { BestCheckpoint } from '../run/checkpoint-policy.js';
import type { ResolvedPretrained } from '../hub/index.js';
import { createEma, type WeightEma } from './ema.js';
import { freezeBatchNormParams, layerDecayGroups } from './finetune.js';
import { createLoss, type LossFn } from './loss.js';

/** Model, optimizer and everything else a checkpoint holds. */
export interface Learner {
  model: ClassifierModel;
  optimizer: Optimizer<GroupBase>;
  scheduler: CosineWarmupLR;
  ema: WeightEma | null;
  scaler: T.GradScaler | null;
  loss: LossFn;
  numClasses: number;
}

/** Where a checkpoint left the loop. */
export interface Position {
  epoch: number;
  step: number;
}

/** The optimizer's parameter groups: trainable parameters, no decay on biases/norms if asked, layer decay. */
function parameterGroups(c: TrainConfig, model: ClassifierModel, lr: number): ParamGroupSpec[] {
  const trainable = model.namedParameters().filter(([, p]) => p.requiresGrad);
  const base = c.optim.noDecayBiasNorm
    ? paramGroupsNoDecay(model, c.optim.weightDecay)
    : [{ params: trainable.map(([, p]) => p), weightDecay: c.optim.weightDecay, names: trainable.map(([n]) => n) }];
  return layerDecayGroups(model, base, lr, c.finetune.layerDecay);
}

/** Model, optimizer, schedule, EMA, loss and loss scaler; init is seeded so runs repeat. */
export function createLearner(
  c: TrainConfig,
  o: {
    numClasses: number;
    /** Training photos per class (the logit-adjusted loss's prior). */
    classCounts: readonly number[];
    pretrained: ResolvedPretrained | null;
    device: T.Device;
    amp: 'off' | 'bf16' | 'fp16';
    optimizerStepsPerEpoch: number;
    log: (line: string) => void;
  },
): Learner {
  T.manualSeed(c.seed);
  const model = createModel(c.model.name, {
    numClasses: o.numClasses,
    dropRate: c.model.dropRate,
    dropPathRate: c.model.dropPathRate,
    ...headOptions(c.model),
    pretrained: o.pretrained?.weights,
    log: (m: string) => o.log(m),
  });
  model.to(o.device);
  if (c.model.channelsLast) model.to('channelsLast');
  const lr = scaledLr(c);
  if (c.finetune.freezeBn) o.log(`finetune: ${freezeBatchNormParams(model)} BatchNorm parameters frozen`);
  const optimizer = createOptimizer(parameterGroups(c, model, lr), { ...c.optim, lr });
  const scheduler = new CosineWarmupLR(optimizer, {
    epochs: c.schedule.epochs,
    warmupEpochs: c.schedule.warmupEpochs,
    minLr: c.schedule.minLr,
    ...(c.schedule.perIteration ? { interval: 'iteration' as const, stepsPerEpoch: o.optimizerStepsPerEpoch } : {}),
  });
  return {
    model,
    optimizer,
    scheduler,
    ema: createEma(c, model, o.numClasses, o.device),
    scaler: o.amp === 'fp16' ? new T.GradScaler() : null,
    loss: createLoss({
      labelSmoothing: c.loss.labelSmoothing,
      margin: marginOptions(c),
      logitAdjust: { tau: c.loss.logitAdjust, classCounts: o.classCounts },
    }),
    numClasses: o.numClasses,
  };
}

export function disposeLearner(l: Learner): void {
  l.model.dispose();
  l.ema?.dispose();
}

/** What a checkpoint's state.json records of the loop besides the learner (see learnerCheckpoint). */
export interface LoopState {
  position: Position;
  globalStep: number;
  best: BestCheckpoint | null;
  worldSize: number;
}

/** Weights, optimizer, schedule, EMA and scaler from a checkpoint; returns the loop state it recorded. */
export function restoreLearner(l: Learner, ck: LoadedCheckpoint, device: T.Device): LoopState {
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
  return {
    position: ck.state.position as Position,
    globalStep: ck.state.globalStep as number,
    best: (ck.state.best as BestCheckpoint | undefined) ?? null,
    // Checkpoints from before data-parallel training were written by one process.
    worldSize: (ck.state.worldSize as number | undefined) ?? 1,
  };
}

/** A checkpoint of the learner at a loop state (new tensor handles: the saver frees them). */
export function learnerCheckpoint(
  l: Learner,
  s: LoopState & { modelName: string; val: { top1: number; top5: number } | null },
): CheckpointContent {
  return {
    model: l.model.stateDict(),
    ema: l.ema?.model.stateDict(),
    optimizer: l.optimizer.stateDict(),
    state: {
      position: s.position,
      globalStep: s.globalStep,
      scheduler: l.scheduler.stateDict(),
      scaler: l.scaler?.state() ?? null,
      best: s.best,
      val: s.val,
      model: s.modelName,
      numClasses: l.numClasses,
      worldSize: s.worldSize,
    },
  };
}
