// Fine-tuning from pretrained weights: layer-wise lr decay groups, head-only
// first epochs (trunk frozen, its BatchNorm statistics kept) and frozen BatchNorm.
import type { ClassifierModel } from '../models/index.js';
import type { Module } from '../nn/module.js';
import { BatchNorm2d } from '../nn/layers/norm.js';
import type { ParamGroupSpec } from '../optim/param-groups.js';
import type { FinetuneOptions } from '../run/config.js';

export type { FinetuneOptions };

const hasParams = (m: Module): boolean => m.namedParameters().length > 0;

/**
 * Depth of every parameter, from the model's top-level children in order: leading
 * leaf modules (conv1, bn1: the stem) share depth 0, a container child (layer1) is
 * one depth, or one per stage when a single list holds the trunk (features.0, ...),
 * and the classifier is the top depth.
 */
export function parameterDepths(model: ClassifierModel): { depth: Map<string, number>; max: number } {
  const classifier = model.pretrainedCfg?.classifier ?? 'fc';
  const units: string[][] = []; // prefixes per depth
  const children = model
    .namedChildren()
    .filter(([n, c]) => hasParams(c) && n !== classifier && !classifier.startsWith(`${n}.`));
  const containers = children.filter(([, c]) => c.namedChildren().some(([, k]) => hasParams(k)));
  let stemOpen = true;
  for (const [name, child] of children) {
    const kids = child.namedChildren().filter(([, k]) => hasParams(k));
    if (kids.length === 0) {
      if (stemOpen && units.length > 0) units[units.length - 1]!.push(name);
      else units.push([name]);
      continue;
    }
    stemOpen = false;
    // One list of stages holding the whole trunk (torchvision's `features`): a depth per stage.
    const stages = containers.length === 1 && kids.length > 1 && kids.every(([k]) => /^\d+$/.test(k));
    if (stages) for (const [k] of kids) units.push([`${name}.${k}`]);
    else units.push([name]);
  }
  const max = units.length;
  const depth = new Map<string, number>();
  for (const [n] of model.namedParameters()) {
    const d = units.findIndex((prefixes) => prefixes.some((p) => n === p || n.startsWith(`${p}.`)));
    depth.set(n, d < 0 ? max : d);
  }
  return { depth, max };
}

/** Splits parameter groups by depth with lr * decay^(max - depth) (the groups' lr is the base lr). */
export function layerDecayGroups(
  model: ClassifierModel,
  groups: ParamGroupSpec[],
  lr: number,
  decay: number,
): ParamGroupSpec[] {
  if (decay === 1) return groups;
  const { depth, max } = parameterDepths(model);
  const out: ParamGroupSpec[] = [];
  for (const g of groups) {
    const byDepth = new Map<number, ParamGroupSpec>();
    g.names.forEach((n, i) => {
      const d = depth.get(n) ?? max;
      let s = byDepth.get(d);
      if (!s) {
        s = { weightDecay: g.weightDecay, lr: (g.lr ?? lr) * decay ** (max - d), params: [], names: [] };
        byDepth.set(d, s);
      }
      s.params.push(g.params[i]!);
      s.names.push(n);
    });
    out.push(...[...byDepth.keys()].sort((a, b) => a - b).map((d) => byDepth.get(d)!));
  }
  return out;
}

/** Freezes BatchNorm affine parameters (call before the optimizer is built). */
export function freezeBatchNormParams(model: ClassifierModel): number {
  let n = 0;
  for (const [, m] of model.namedModules()) {
    if (!(m instanceof BatchNorm2d)) continue;
    for (const p of m.parameters()) {
      p.setRequiresGrad(false);
      n++;
    }
  }
  return n;
}

/**
 * Puts the model in training mode for an epoch: model.train(), then BatchNorm in eval
 * when frozen, and during head-only epochs the trunk frozen and in eval mode.
 */
export function setTrainMode(model: ClassifierModel, o: FinetuneOptions, epoch: number): void {
  model.train();
  const classifier = model.pretrainedCfg?.classifier ?? 'fc';
  const headOnly = epoch < o.headOnlyEpochs;
  for (const [name, m] of model.namedModules()) {
    const inHead = name === classifier || name.startsWith(`${classifier}.`);
    if ((o.freezeBn && m instanceof BatchNorm2d) || (headOnly && !inHead && name !== '')) m.training = false;
  }
  if (o.headOnlyEpochs > 0) {
    for (const [name, p] of model.namedParameters()) {
      if (name.startsWith(`${classifier}.`)) continue;
      p.setRequiresGrad(!headOnly);
      if (headOnly) p.zeroGrad();
    }
    if (!headOnly && o.freezeBn) freezeBatchNormParams(model);
  }
}
