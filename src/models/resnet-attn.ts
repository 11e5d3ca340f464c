// Attention and "wider" variants of the ResNet family, as data over resnet.ts:
// SE-ResNet/SE-ResNeXt in timm's names (se.fc1/se.fc2 in every bottleneck),
// ResNet-50 + CBAM (timm's CbamModule in the same `se` slot, with the paper's
// MLP bias), ResNet-50 + BAM (modules bam1..bam3 after layer1-3, the BAM
// authors' names), and the recipe's wider variants (layer4 planes 512 -> 1024:
// a 4096-d pooled feature and one bias-free Linear classifier).
import '../nn/layers/se.js';
import '../nn/layers/cbam.js';
import '../nn/layers/bam.js';
import { IMAGENET_MEAN, IMAGENET_STD, type ModelCfg } from './model.js';
import { registerResNet, type ResNetArgs } from './resnet.js';

function cfg(source: string): ModelCfg {
  return {
    inputSize: [3, 224, 224], mean: IMAGENET_MEAN, std: IMAGENET_STD, interpolation: 'bilinear', cropPct: 0.875,
    classifier: 'fc', firstConv: 'conv1', numClasses: 1000, source,
  };
}

const R50: Pick<ResNetArgs, 'block' | 'layers'> = { block: 'bottleneck', layers: [3, 4, 6, 3] };
/** The recipe's wider last stage (GoodsRecognition.MindSpore): 4 x 1024 = 4096 pooled features, bias-free classifier. */
const WIDER: Pick<ResNetArgs, 'planes' | 'fcBias'> = { planes: [64, 128, 256, 1024], fcBias: false };

export const RESNET_ATTN_VARIANTS: Readonly<Record<string, { args: ResNetArgs; source: string }>> = {
  seresnet50: { args: { ...R50, attnLayer: 'se' }, source: 'timm' },
  seresnext50_32x4d: { args: { ...R50, cardinality: 32, baseWidth: 4, attnLayer: 'se' }, source: 'timm' },
  resnet50_cbam: { args: { ...R50, attnLayer: 'cbam', attnArgs: { mlpBias: true } }, source: 'Woo et al. 2018 (CBAM), timm module names' },
  resnet50_bam: { args: { ...R50, stageAttn: 'bam' }, source: 'Park et al. 2018 (BAM), authors\' module names' },
  seresnext50_32x4d_wider: { args: { ...R50, cardinality: 32, baseWidth: 4, attnLayer: 'se', ...WIDER }, source: 'goodsrec recipe (wider SE-ResNeXt50)' },
  resnet50_bam_wider: { args: { ...R50, stageAttn: 'bam', ...WIDER }, source: 'goodsrec recipe (wider ResNet50-BAM)' },
};

for (const [name, v] of Object.entries(RESNET_ATTN_VARIANTS)) registerResNet(name, v.args, cfg(v.source));
