// The model registry: variants are registered by name with a factory and a
// default config; createModel(name, options) is the only public constructor.
import * as T from '../tensor/index.js';
import { readStateDict } from '../nn/weights.js';
import type { ClassifierModel, ModelCfg } from './model.js';
import { EmbeddingNet, isMarginHead } from './margin-head.js';

/** Options every model accepts; families read their own extra keys. */
export interface CreateModelOptions {
  numClasses?: number;
  /** A safetensors or .pth/.pt file of the reference implementation's weights. */
  pretrained?: string;
  inChans?: number;
  dropRate?: number;
  dropPathRate?: number;
  /** Where pretrained loading reports what it loaded and skipped (default console.log; null: silent). */
  log?: ((message: string) => void) | null;
  [key: string]: unknown;
}

export type ModelFactory = (options: CreateModelOptions) => ClassifierModel;

/** Renames a reference checkpoint's keys to ours (timm's checkpoint_filter_fn); gets and returns owned tensors. */
export type CheckpointFilter = (stateDict: Map<string, T.Tensor>, model: ClassifierModel) => Map<string, T.Tensor>;

export interface ModelEntry {
  name: string;
  factory: ModelFactory;
  cfg: ModelCfg;
  filter?: CheckpointFilter;
  /** Family tag for listings ('resnet', 'efficientnet', ...). */
  family?: string;
}

const REGISTRY = new Map<string, ModelEntry>();

export function registerModel(
  name: string,
  factory: ModelFactory,
  cfg: ModelCfg,
  extra: { filter?: CheckpointFilter; family?: string } = {},
): void {
  if (!/^[a-z0-9_]+$/.test(name))
    throw new TypeError(`Expected a model name of lower-case letters, digits and '_' but received '${name}'`);
  if (REGISTRY.has(name)) process.emitWarning(`registerModel: '${name}' registered twice; the later registration wins`);
  REGISTRY.set(name, { name, factory, cfg, ...extra });
}

/** Registered names, sorted; a glob filter ('resnet*') narrows them. */
export function listModels(filter?: string): string[] {
  const names = [...REGISTRY.keys()].sort();
  if (!filter) return names;
  const re = new RegExp(
    `^${filter
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  );
  return names.filter((n) => re.test(n));
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return d[b.length]!;
}

/** Registered names closest to a misspelt one. */
export function closeModelNames(name: string, max = 5): string[] {
  return [...REGISTRY.keys()]
    .map((n) => ({ n, d: n.startsWith(name) || name.startsWith(n) ? 0.5 : editDistance(name, n) }))
    .filter((x) => x.d <= Math.max(2, Math.floor(name.length / 3)))
    .sort((a, b) => a.d - b.d || a.n.localeCompare(b.n))
    .slice(0, max)
    .map((x) => x.n);
}

export function getModelEntry(name: string): ModelEntry {
  const e = REGISTRY.get(name);
  if (e) return e;
  const close = closeModelNames(name);
  throw Object.assign(
    new Error(
      `Unknown model '${name}'${close.length ? `; did you mean ${close.join(', ')}?` : ''} (${REGISTRY.size} models registered; see listModels())`,
    ),
    { code: 'MODEL_UNKNOWN' },
  );
}

export function getModelCfg(name: string): ModelCfg {
  return { ...getModelEntry(name).cfg };
}

/**
 * Creates a registered model. Options left undefined take the variant's
 * defaults. With `pretrained`, the weights are loaded from the file; when the
 * class count differs from the file's, the classifier keeps its fresh
 * initialisation. What was loaded and skipped is reported through `log`.
 */
export function createModel(name: string, options: CreateModelOptions = {}): ClassifierModel {
  const entry = getModelEntry(name);
  const opts: CreateModelOptions = {};
  for (const [k, v] of Object.entries(options)) if (v !== undefined) opts[k] = v;
  // head 'arcface' / 'cosface': the family's backbone without classifier (pretrained weights load into it) + a MarginHead.
  if (isMarginHead(opts.head)) {
    const { head: _h, embeddingDim, bnNeck, scale, numClasses, ...rest } = opts;
    const backbone = createModel(name, { ...rest, numClasses: 0 });
    const net = new EmbeddingNet(backbone, (numClasses as number | undefined) ?? 1000, {
      embeddingDim: embeddingDim as number | undefined,
      bnNeck: bnNeck as boolean | undefined,
      scale: scale as number | undefined,
    });
    net.pretrainedCfg = { ...backbone.pretrainedCfg!, classifier: 'head', numClasses: net.numClasses };
    return net;
  }
  const model = entry.factory(opts);
  model.pretrainedCfg = { ...entry.cfg, numClasses: model.numClasses };
  if (opts.pretrained) {
    try {
      loadPretrained(model, entry, opts.pretrained, opts.log === undefined ? console.log : opts.log);
    } catch (e) {
      model.dispose();
      throw e;
    }
  }
  return model;
}

function loadPretrained(
  model: ClassifierModel,
  entry: ModelEntry,
  path: string,
  log: ((m: string) => void) | null,
): void {
  T.tidy(() => {
    let sd = readStateDict(path);
    if (entry.filter) sd = entry.filter(sd, model);
    const own = model.stateTensors();
    const prefix = `${entry.cfg.classifier}.`;
    const skipped: string[] = [];
    for (const [k, t] of [...sd]) {
      if (!k.startsWith(prefix)) continue;
      const mine = own.get(k);
      const same =
        mine !== undefined && mine.shape.length === t.shape.length && mine.shape.every((d, i) => d === t.shape[i]);
      if (!same) {
        skipped.push(`${k} [${t.shape.join(', ')}]`);
        sd.delete(k);
      }
    }
    // A skipped or absent classifier (headless weights) keeps its fresh initialisation.
    const headless = ![...sd.keys()].some((k) => k.startsWith(prefix));
    const r = model.loadStateDict(
      sd,
      skipped.length || headless ? { strict: true, allowMissing: entry.cfg.classifier } : { strict: true },
    );
    if (log) {
      const note = skipped.length
        ? `; skipped ${skipped.join(', ')} (model has ${model.numClasses} classes): classifier re-initialised`
        : headless && r.missingKeys.length
          ? `; the file has no classifier (${entry.cfg.classifier}): classifier initialised fresh`
          : '';
      log(`${entry.name}: loaded ${r.loaded.length} tensors from ${path}${note}`);
    }
  });
}
