// Pretrained weights by name: 'hf-hub:org/name[@revision]' (a timm-format repo:
// config.json + model.safetensors), 'torchvision:model[.WEIGHTS]', or a local
// file or folder. Resolves to a local weight file, the architecture it holds
// (checked against the zoo) and timm's pretrained_cfg when there is one.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { closeModelNames, getModelEntry, listModels } from '../models/index.js';
import { HubError } from './errors.js';
import { hubDownload } from './download.js';
import { TORCHVISION_ALIASES, TORCHVISION_WEIGHTS, torchvisionDownload, torchvisionWeights } from './torchvision.js';
import { IMAGENET_MEAN, IMAGENET_STD } from '../models/model.js';

export type PretrainedName =
  | { kind: 'hf-hub'; repo: string; revision: string }
  | { kind: 'torchvision'; model: string; weights: string }
  | { kind: 'file'; path: string };

/** timm's pretrained_cfg, in our spelling; what the weights were trained and evaluated with. */
export interface PretrainedCfg {
  inputSize?: [number, number, number];
  testInputSize?: [number, number, number];
  mean?: [number, number, number];
  std?: [number, number, number];
  interpolation?: string;
  cropPct?: number;
  cropMode?: string;
  numClasses?: number;
  labelNames?: string[];
}

export interface ResolvedPretrained {
  /** The name as given. */
  name: string;
  /** Local weight file (safetensors or .pth). */
  weights: string;
  /** Zoo model the weights are for (null: a bare local file, not known). */
  architecture: string | null;
  cfg: PretrainedCfg | null;
  /** Hub commit the files came from, when known. */
  commit?: string | null;
}

export function parsePretrainedName(name: string): PretrainedName {
  if (name.startsWith('hf-hub:') || name.startsWith('hf_hub:')) {
    const rest = name.slice(7);
    const at = rest.indexOf('@');
    const repo = at < 0 ? rest : rest.slice(0, at);
    const revision = at < 0 ? 'main' : rest.slice(at + 1);
    if (!revision) throw new HubError('BAD_NAME', `${name}: empty revision after '@'`);
    return { kind: 'hf-hub', repo, revision };
  }
  if (name.startsWith('torchvision:')) {
    const rest = name.slice(12);
    const dot = rest.indexOf('.');
    return dot < 0
      ? { kind: 'torchvision', model: rest, weights: 'DEFAULT' }
      : { kind: 'torchvision', model: rest.slice(0, dot), weights: rest.slice(dot + 1) };
  }
  return { kind: 'file', path: name };
}

/** timm spellings of zoo models whose names differ (torchvision's are in TORCHVISION_ALIASES). */
const TIMM_ALIASES: Record<string, string> = {};
/** Zoo models built on torchvision's module names: timm's weights for them have another layout. */
const TORCHVISION_LAYOUT = /^(efficientnet_b\d|swin_)/;

/**
 * The zoo model for a timm or torchvision architecture name ('resnet50.a1_in1k' -> resnet50,
 * 'swin_t' -> swin_tiny_patch4_window7_224); an unknown name is an error listing close matches.
 */
export function zooArchitecture(arch: string, from: 'timm' | 'torchvision' | 'any' = 'any'): string {
  const base = arch.split('.')[0]!.toLowerCase();
  const name = TIMM_ALIASES[base] ?? TORCHVISION_ALIASES[base] ?? base;
  if (!listModels().includes(name)) {
    const close = closeModelNames(name);
    throw new HubError(
      'BAD_NAME',
      `architecture '${arch}' is not in goodsrec's zoo` +
        `${close.length ? `; close matches: ${close.join(', ')}` : ''} (goodsrec models lists them all)`,
    );
  }
  if (from === 'timm' && TORCHVISION_LAYOUT.test(name)) {
    throw new HubError(
      'BAD_NAME',
      `timm's ${base} weights use timm's module layout, but goodsrec's ${name} is torchvision's; ` +
        `use --pretrained torchvision:${name}`,
    );
  }
  return name;
}

/** The architecture a name implies without downloading anything (null for local files). */
export function pretrainedArchitecture(name: string): string | null {
  const n = parsePretrainedName(name);
  if (n.kind === 'hf-hub') {
    // A guess from the repo name; the repo's config.json decides (and its errors come after the download).
    try {
      return n.repo.startsWith('timm/') ? zooArchitecture(n.repo.slice(5), 'timm') : null;
    } catch {
      return null;
    }
  }
  if (n.kind === 'torchvision') return zooArchitecture(n.model, 'torchvision');
  return null;
}

type Json = Record<string, unknown>;
const triple = (v: unknown): [number, number, number] | undefined =>
  Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number')
    ? (v as [number, number, number])
    : undefined;

/** timm's config.json ({architecture, num_classes, label_names, pretrained_cfg}) -> architecture + cfg. */
export function readTimmConfig(path: string): { architecture: string | null; cfg: PretrainedCfg } {
  let j: Json;
  try {
    j = JSON.parse(readFileSync(path, 'utf8')) as Json;
  } catch (e) {
    throw new HubError('BAD_NAME', `${path}: not a timm config.json (${(e as Error).message})`);
  }
  const p = (typeof j.pretrained_cfg === 'object' && j.pretrained_cfg !== null ? j.pretrained_cfg : {}) as Json;
  const cfg: PretrainedCfg = {};
  const set = <K extends keyof PretrainedCfg>(k: K, v: PretrainedCfg[K] | undefined): void => {
    if (v !== undefined) cfg[k] = v;
  };
  set('inputSize', triple(p.input_size));
  set('testInputSize', triple(p.test_input_size));
  set('mean', triple(p.mean));
  set('std', triple(p.std));
  set('interpolation', typeof p.interpolation === 'string' ? p.interpolation : undefined);
  set('cropPct', typeof p.crop_pct === 'number' ? p.crop_pct : undefined);
  set('cropMode', typeof p.crop_mode === 'string' ? p.crop_mode : undefined);
  const nc = j.num_classes ?? p.num_classes;
  set('numClasses', typeof nc === 'number' ? nc : undefined);
  const labels = j.label_names ?? p.label_names;
  set(
    'labelNames',
    Array.isArray(labels) && labels.every((x) => typeof x === 'string') ? (labels as string[]) : undefined,
  );
  const arch =
    typeof j.architecture === 'string' ? j.architecture : typeof p.architecture === 'string' ? p.architecture : null;
  return { architecture: arch, cfg };
}

const WEIGHT_FILES = ['model.safetensors', 'pytorch_model.bin'];

export interface ResolveOptions {
  progress?: boolean;
  log?: (message: string) => void;
}

async function fromHub(name: string, repo: string, revision: string, o: ResolveOptions): Promise<ResolvedPretrained> {
  const dl = {
    revision,
    ...(o.progress !== undefined ? { progress: o.progress } : {}),
    ...(o.log ? { log: o.log } : {}),
  };
  const config = await hubDownload(repo, 'config.json', dl);
  const { architecture, cfg } = readTimmConfig(config.path);
  const arch = zooArchitecture(architecture ?? repo.split('/')[1]!, 'timm');
  let lastError: unknown;
  for (const file of WEIGHT_FILES) {
    try {
      const w = await hubDownload(repo, file, dl);
      return { name, weights: w.path, architecture: arch, cfg, commit: w.commit };
    } catch (e) {
      if (!(e instanceof HubError) || (e.code !== 'ENTRY_NOT_FOUND' && e.code !== 'OFFLINE_NOT_CACHED')) throw e;
      lastError = e;
    }
  }
  throw lastError;
}

function fromFolder(name: string, dir: string): ResolvedPretrained {
  const file = WEIGHT_FILES.map((f) => join(dir, f)).find((f) => existsSync(f));
  if (!file)
    throw new HubError(
      'BAD_NAME',
      `${dir}: a pretrained folder needs ${WEIGHT_FILES.join(' or ')} (and timm's config.json)`,
    );
  const conf = join(dir, 'config.json');
  if (!existsSync(conf)) return { name, weights: file, architecture: null, cfg: null };
  const { architecture, cfg } = readTimmConfig(conf);
  return { name, weights: file, architecture: architecture ? zooArchitecture(architecture, 'timm') : null, cfg };
}

function torchvisionCfg(model: string, weights: string): PretrainedCfg {
  const t = torchvisionWeights(model, weights);
  return {
    inputSize: [3, t.cropSize, t.cropSize],
    mean: IMAGENET_MEAN,
    std: IMAGENET_STD,
    interpolation: t.interpolation,
    cropPct: t.cropSize / t.resizeSize,
    cropMode: 'center',
    numClasses: 1000,
  };
}

/** Resolves a pretrained name to a local weight file (downloading into the shared caches when needed). */
export async function resolvePretrained(name: string, o: ResolveOptions = {}): Promise<ResolvedPretrained> {
  const n = parsePretrainedName(name);
  if (n.kind === 'hf-hub') return fromHub(name, n.repo, n.revision, o);
  if (n.kind === 'torchvision') {
    const arch = zooArchitecture(n.model, 'torchvision');
    if (!TORCHVISION_WEIGHTS[arch])
      throw new HubError('BAD_NAME', `torchvision:${n.model}: torchvision publishes no weights for ${arch}`);
    const weights = await torchvisionDownload(
      arch,
      n.weights,
      o.progress !== undefined ? { progress: o.progress } : {},
    );
    return { name, weights, architecture: arch, cfg: torchvisionCfg(arch, n.weights) };
  }
  if (!existsSync(n.path)) {
    throw new HubError(
      'BAD_NAME',
      `pretrained '${name}': no such file or folder (or use hf-hub:org/name or torchvision:model)`,
    );
  }
  if (statSync(n.path).isDirectory()) return fromFolder(name, n.path);
  return { name, weights: n.path, architecture: null, cfg: null };
}

/** Throws when the weights are for another architecture than the model being built. */
export function checkArchitecture(p: ResolvedPretrained, model: string): void {
  getModelEntry(model);
  if (p.architecture && p.architecture !== model) {
    throw new HubError(
      'BAD_NAME',
      `pretrained ${p.name} holds ${p.architecture} weights but model.name is ${model}: ` +
        `use --model ${p.architecture} (or leave --model out to take it from the weights)`,
    );
  }
}
