// Attention and "wider" variants of the ResNet family, as data over resnet.ts:
// SE-ResNet/SE-ResNeXt in timm's names (se.fc1/se.fc2 in every bottleneck),
// ResNet-50 + CBAM (timm's CbamModule in the same `se` slot, with the paper's
// MLP bias), ResNet-50 + BAM (modules bam1..bam3 after layer1-3, the BAM
// authors' names), and the recipe's wider variants (layer4 planes 512 -> 1024:
// a 4096-d pooled feature and one bias-free Linear classifier).
import '../nn/layers/se.js';
import '../nn/layers/cbam.js';
import '../nn/layers/bam.js';
import type * as T from '../tensor/index.js';
import { IMAGENET_MEAN, IMAGENET_STD, type ModelCfg } from './model.js';
import { registerResNet, type ResNetArgs } from './resnet.js';
import type { CheckpointFilter } from './registry.js';

function cfg(source: string): ModelCfg {
  return {
    inputSize: [3, 224, 224],
    mean: IMAGENET_MEAN,
    std: IMAGENET_STD,
    interpolation: 'bilinear',
    cropPct: 0.875,
    classifier: 'fc',
    firstConv: 'conv1',
    numClasses: 1000,
    source,
  };
}

/**
 * Renames a checkpoint of the CBAM authors' code (Jongchan/attention-module, Bottleneck
 * attribute `cbam`) to timm's layout: ChannelGate.mlp.{1,3} Linear -> se.channel.fc{1,2} 1x1
 * convs; SpatialGate.spatial.{conv,bn} -> se.spatial.conv.{conv,bn}, with the 7x7 conv's two
 * input channels swapped (their pooled maps are [max, mean], timm's [mean, max]). Other
 * checkpoints pass through unchanged.
 */
export const cbamAuthorsFilter: CheckpointFilter = (sd) => {
  if (![...sd.keys()].some((k) => k.includes('.cbam.'))) return sd;
  const out = new Map<string, T.Tensor>();
  const rules: [RegExp, string][] = [
    [/\.cbam\.ChannelGate\.mlp\.1\./, '.se.channel.fc1.'],
    [/\.cbam\.ChannelGate\.mlp\.3\./, '.se.channel.fc2.'],
    [/\.cbam\.SpatialGate\.spatial\.conv\./, '.se.spatial.conv.conv.'],
    [/\.cbam\.SpatialGate\.spatial\.bn\./, '.se.spatial.conv.bn.'],
  ];
  for (const [k, t] of sd) {
    const rule = rules.find(([re]) => re.test(k));
    if (!rule) {
      out.set(k, t);
      continue;
    }
    const name = k.replace(rule[0], rule[1]);
    let v = t;
    if (name.endsWith('.channel.fc1.weight') || name.endsWith('.channel.fc2.weight')) v = t.reshape([...t.shape, 1, 1]);
    else if (name.endsWith('.spatial.conv.conv.weight')) v = t.flip(1);
    if (v !== t) t.dispose();
    out.set(name, v);
  }
  return out;
};

const R50: Pick<ResNetArgs, 'block' | 'layers'> = { block: 'bottleneck', layers: [3, 4, 6, 3] };
/** The recipe's wider last stage (GoodsRecognition.MindSpore): 4 x 1024 = 4096 pooled features, bias-free classifier. */
const WIDER: Pick<ResNetArgs, 'planes' | 'fcBias'> = { planes: [64, 128, 256, 1024], fcBias: false };

export const RESNET_ATTN_VARIANTS: Readonly<
  Record<string, { args: ResNetArgs; source: string; filter?: CheckpointFilter }>
> = {
  seresnet50: { args: { ...R50, attnLayer: 'se' }, source: 'timm' },
  seresnext50_32x4d: { args: { ...R50, cardinality: 32, baseWidth: 4, attnLayer: 'se' }, source: 'timm' },
  resnet50_cbam: {
    args: { ...R50, attnLayer: 'cbam', attnArgs: { mlpBias: true } },
    source: "Woo et al. 2018 (CBAM), timm module names; the authors' checkpoints are renamed",
    filter: cbamAuthorsFilter,
  },
  resnet50_bam: { args: { ...R50, stageAttn: 'bam' }, source: "Park et al. 2018 (BAM), authors' module names" },
  seresnext50_32x4d_wider: {
    args: { ...R50, cardinality: 32, baseWidth: 4, attnLayer: 'se', ...WIDER },
    source: 'goodsrec recipe (wider SE-ResNeXt50)',
  },
  resnet50_bam_wider: { args: { ...R50, stageAttn: 'bam', ...WIDER }, source: 'goodsrec recipe (wider ResNet50-BAM)' },
};

for (const [name, v] of Object.entries(RESNET_ATTN_VARIANTS)) registerResNet(name, v.args, cfg(v.source), v.filter);
