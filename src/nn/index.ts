// goodsrec's neural-network layer: modules with PyTorch's names and semantics.
export {
  Module,
  StateDictError,
  pipe,
  type ForwardHook,
  type HookHandle,
  type LoadStateDictOptions,
  type LoadStateDictResult,
  type StateDictInput,
  type Step,
  type ToTarget,
} from './module.js';
export { matcher, type NamePattern } from './pattern.js';
export * as init from './init.js';
export { Conv2d, type Conv2dOptions } from './layers/conv.js';
export { Linear, Identity, Flatten } from './layers/linear.js';
export { BatchNorm2d, LayerNorm, GroupNorm, type BatchNormOptions } from './layers/norm.js';
export { ReLU, SiLU, GELU, Hardswish, Sigmoid, createAct, type ActName } from './layers/activation.js';
export { MaxPool2d, AvgPool2d, AdaptiveAvgPool2d } from './layers/pooling.js';
export { Dropout, DropPath } from './layers/dropout.js';
export { Sequential, ModuleList, ModuleDict } from './layers/containers.js';
export { createAttn, registerAttn, listAttn, type AttnFactory } from './layers/create-attn.js';
export { CrossEntropyLoss, SoftTargetCrossEntropy } from './loss.js';
export { readStateDict, loadWeights, saveWeights } from './weights.js';
