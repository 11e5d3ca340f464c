// The model zoo: create models by name. Importing this module registers every family.
export { ClassifierModel, IMAGENET_MEAN, IMAGENET_STD, type ModelCfg } from './model.js';
export {
  registerModel,
  createModel,
  listModels,
  getModelCfg,
  getModelEntry,
  closeModelNames,
  type CreateModelOptions,
  type ModelFactory,
  type ModelEntry,
  type CheckpointFilter,
} from './registry.js';
export {
  ResNet,
  BasicBlock,
  Bottleneck,
  registerResNet,
  RESNET_VARIANTS,
  type ResNetArgs,
  type ResNetBlock,
  type BlockArgs,
} from './resnet.js';
export { EfficientNet, MBConv, EFFICIENTNET_VARIANTS, type EfficientNetArgs } from './efficientnet.js';
export {
  SwinTransformer,
  SwinTransformerBlock,
  ShiftedWindowAttention,
  PatchMerging,
  SWIN_VARIANTS,
  type SwinArgs,
} from './swin.js';
import './resnet-attn.js';
import './inception-resnet-v2.js';
export {
  EmbeddingNet,
  MarginHead,
  isMarginHead,
  MARGIN_HEADS,
  type MarginHeadType,
  type EmbeddingHeadOptions,
} from './margin-head.js';
