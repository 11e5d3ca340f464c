// The pretrained weights' own data config (timm's pretrained_cfg) drives the
// pre-processing: every input option the user did not set takes its value (size, eval size, mean,
// std, crop_pct, interpolation, crop_mode), so these numbers have one source.
import type { PretrainedCfg, ResolvedPretrained } from '../hub/index.js';
import type { ResizeMode, TrainConfig } from './config.js';

/** The dotted option keys a layer of options sets ('input.size', 'model.name', ...). */
export function explicitKeys(layers: { values: Record<string, unknown> }[]): Set<string> {
  const out = new Set<string>();
  const walk = (o: unknown, prefix: string): void => {
    if (typeof o === 'object' && o !== null && !Array.isArray(o)) {
      for (const [k, v] of Object.entries(o)) walk(v, prefix ? `${prefix}.${k}` : k);
    } else out.add(prefix);
  };
  for (const l of layers) walk(l.values, '');
  return out;
}

/** What was taken from the pretrained config, recorded in preprocess.json, the ONNX sidecar and the served page. */
export interface PretrainedRecord {
  name: string;
  architecture: string | null;
  commit?: string | null;
  cfg: PretrainedCfg;
  /** Options set from cfg (the others were the user's), when known. */
  applied?: string[];
}

/** timm's crop_mode -> input.resize. */
const CROP_MODES: Partial<Record<string, ResizeMode>> = { squash: 'squash', center: 'center', border: 'letterbox' };

/** Returns the config with the input options the user left alone set from the weights' config. */
export function applyPretrainedCfg(
  c: TrainConfig,
  p: ResolvedPretrained,
  explicit: Set<string>,
): { config: TrainConfig; record: PretrainedRecord | null } {
  if (!p.cfg) return { config: c, record: null };
  const cfg = p.cfg;
  const out = structuredClone(c);
  const applied: string[] = [];
  const set = (key: string, apply: () => void): void => {
    if (!explicit.has(key)) {
      apply();
      applied.push(key);
    }
  };
  if (cfg.inputSize)
    set('input.size', () => {
      out.input.size = cfg.inputSize![2];
    });
  if (cfg.testInputSize && cfg.testInputSize[2] !== out.input.size)
    set('input.testSize', () => {
      out.input.testSize = cfg.testInputSize![2];
    });
  if (cfg.mean)
    set('input.mean', () => {
      out.input.mean = [...cfg.mean!];
    });
  if (cfg.std)
    set('input.std', () => {
      out.input.std = [...cfg.std!];
    });
  if (cfg.cropPct)
    set('input.cropPct', () => {
      out.input.cropPct = cfg.cropPct!;
    });
  if (cfg.interpolation === 'bilinear' || cfg.interpolation === 'bicubic') {
    const f = cfg.interpolation;
    set('input.interpolation', () => {
      out.input.interpolation = f;
    });
  }
  // timm's eval crop: 'squash' and 'center' are ours; 'border' (longest side to size / cropPct, then
  // center crop or pad) is the letterbox's geometry.
  const resize = cfg.cropMode ? CROP_MODES[cfg.cropMode] : undefined;
  if (resize)
    set('input.resize', () => {
      out.input.resize = resize;
    });
  return {
    config: out,
    record: { name: p.name, architecture: p.architecture, ...(p.commit ? { commit: p.commit } : {}), cfg, applied },
  };
}
