// torchvision's published ImageNet weights: the file names and eval transforms of
// torchvision.models (0.14) for the zoo's torchvision-named models, downloaded as
// torch.hub does into $TORCH_HOME/hub/checkpoints/<file>, the name's 8 hex digits
// being the sha256 prefix that torch.hub checks.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { HubError } from './errors.js';
import { downloadBlob } from './http.js';
import { withFileLock } from './lock.js';
import { hubSettings, torchHubCheckpoints } from './settings.js';

export interface TorchvisionWeights {
  /** File name under download.pytorch.org/models/. */
  file: string;
  cropSize: number;
  resizeSize: number;
  interpolation: 'bilinear' | 'bicubic';
}

type Table = Record<string, Record<string, TorchvisionWeights> & { DEFAULT: string }>;
const w = (
  file: string,
  cropSize = 224,
  resizeSize = 256,
  interpolation: 'bilinear' | 'bicubic' = 'bilinear',
): TorchvisionWeights => ({ file, cropSize, resizeSize, interpolation });

/** Our zoo name -> torchvision's weights enum (IMAGENET1K_V1 / V2) and DEFAULT. */
export const TORCHVISION_WEIGHTS = {
  resnet18: { DEFAULT: 'IMAGENET1K_V1', IMAGENET1K_V1: w('resnet18-f37072fd.pth') },
  resnet34: { DEFAULT: 'IMAGENET1K_V1', IMAGENET1K_V1: w('resnet34-b627a593.pth') },
  resnet50: {
    DEFAULT: 'IMAGENET1K_V2',
    IMAGENET1K_V1: w('resnet50-0676ba61.pth'),
    IMAGENET1K_V2: w('resnet50-11ad3fa6.pth', 224, 232),
  },
  resnet101: {
    DEFAULT: 'IMAGENET1K_V2',
    IMAGENET1K_V1: w('resnet101-63fe2227.pth'),
    IMAGENET1K_V2: w('resnet101-cd907fc2.pth', 224, 232),
  },
  resnet152: {
    DEFAULT: 'IMAGENET1K_V2',
    IMAGENET1K_V1: w('resnet152-394f9c45.pth'),
    IMAGENET1K_V2: w('resnet152-f82ba261.pth', 224, 232),
  },
  resnext50_32x4d: {
    DEFAULT: 'IMAGENET1K_V2',
    IMAGENET1K_V1: w('resnext50_32x4d-7cdf4587.pth'),
    IMAGENET1K_V2: w('resnext50_32x4d-1a0047aa.pth', 224, 232),
  },
  efficientnet_b0: {
    DEFAULT: 'IMAGENET1K_V1',
    IMAGENET1K_V1: w('efficientnet_b0_rwightman-3dd342df.pth', 224, 256, 'bicubic'),
  },
  efficientnet_b1: {
    DEFAULT: 'IMAGENET1K_V2',
    IMAGENET1K_V1: w('efficientnet_b1_rwightman-533bc792.pth', 240, 256, 'bicubic'),
    IMAGENET1K_V2: w('efficientnet_b1-c27df63c.pth', 240, 255),
  },
  efficientnet_b2: {
    DEFAULT: 'IMAGENET1K_V1',
    IMAGENET1K_V1: w('efficientnet_b2_rwightman-bcdf34b7.pth', 288, 288, 'bicubic'),
  },
  efficientnet_b3: {
    DEFAULT: 'IMAGENET1K_V1',
    IMAGENET1K_V1: w('efficientnet_b3_rwightman-cf984f9c.pth', 300, 320, 'bicubic'),
  },
  efficientnet_b4: {
    DEFAULT: 'IMAGENET1K_V1',
    IMAGENET1K_V1: w('efficientnet_b4_rwightman-7eb33cd5.pth', 380, 384, 'bicubic'),
  },
  efficientnet_b5: {
    DEFAULT: 'IMAGENET1K_V1',
    IMAGENET1K_V1: w('efficientnet_b5_lukemelas-b6417697.pth', 456, 456, 'bicubic'),
  },
  efficientnet_b6: {
    DEFAULT: 'IMAGENET1K_V1',
    IMAGENET1K_V1: w('efficientnet_b6_lukemelas-c76e70fd.pth', 528, 528, 'bicubic'),
  },
  efficientnet_b7: {
    DEFAULT: 'IMAGENET1K_V1',
    IMAGENET1K_V1: w('efficientnet_b7_lukemelas-dcc49843.pth', 600, 600, 'bicubic'),
  },
  swin_tiny_patch4_window7_224: {
    DEFAULT: 'IMAGENET1K_V1',
    IMAGENET1K_V1: w('swin_t-704ceda3.pth', 224, 232, 'bicubic'),
  },
} as unknown as Table;

/** torchvision's own spellings of zoo models whose names differ. */
export const TORCHVISION_ALIASES: Record<string, string> = { swin_t: 'swin_tiny_patch4_window7_224' };

/** GOODSREC_TORCHVISION_URL replaces https://download.pytorch.org/models (a mirror; the tests' loopback server). */
export function torchvisionBaseUrl(env: NodeJS.ProcessEnv = process.env): string {
  return (env.GOODSREC_TORCHVISION_URL || 'https://download.pytorch.org/models').replace(/\/+$/, '');
}

export function torchvisionWeights(model: string, weights = 'DEFAULT'): TorchvisionWeights {
  const name = TORCHVISION_ALIASES[model] ?? model;
  const entry = TORCHVISION_WEIGHTS[name];
  if (!entry) {
    throw new HubError(
      'BAD_NAME',
      `torchvision:${model}: no torchvision weights for this model; ` +
        `known: ${Object.keys(TORCHVISION_WEIGHTS).join(', ')}`,
    );
  }
  const key = weights === 'DEFAULT' ? entry.DEFAULT : weights.replace(/^\w+_Weights\./, '');
  const found = key === 'DEFAULT' ? undefined : (entry as Record<string, TorchvisionWeights | string>)[key];
  if (!found || typeof found === 'string') {
    const known = Object.keys(entry).join(', ');
    throw new HubError('BAD_NAME', `torchvision:${model}: no weights '${weights}' (known: ${known})`);
  }
  return found;
}

/** The weight file in torch.hub's cache, downloaded (resumably, locked, hash-checked) when missing. */
export async function torchvisionDownload(
  model: string,
  weights = 'DEFAULT',
  o: { progress?: boolean } = {},
): Promise<string> {
  const t = torchvisionWeights(model, weights);
  const dest = join(torchHubCheckpoints(), t.file);
  if (existsSync(dest)) return dest;
  if (hubSettings().offline) {
    throw new HubError(
      'OFFLINE_NOT_CACHED',
      `HF_HUB_OFFLINE=1 and ${t.file} is not in ${torchHubCheckpoints()}: ` +
        `run 'goodsrec pull torchvision:${model}' where download.pytorch.org is reachable, or unset HF_HUB_OFFLINE`,
    );
  }
  const prefix = /-([0-9a-f]{8,})\.pth$/.exec(t.file)?.[1];
  await withFileLock(`${dest}.lock`, async () => {
    if (existsSync(dest)) return;
    await downloadBlob({
      url: `${torchvisionBaseUrl()}/${t.file}`,
      headers: {},
      dest,
      size: null,
      etag: null,
      label: t.file,
      progress: o.progress ?? true,
      ...(prefix ? { sha256Prefix: prefix } : {}),
    });
  });
  return dest;
}
