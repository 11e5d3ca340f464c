// Parameter groups: no weight decay on biases and norm weights (timm's
// param_groups_weight_decay), optionally a separate lr for the classifier.
import type * as T from '../tensor/index.js';
import type { Module } from '../nn/module.js';
import { matcher, type NamePattern } from '../nn/pattern.js';

export interface ParamGroupSpec {
  params: T.Tensor[];
  weightDecay: number;
  lr?: number;
  names: string[];
}

export interface NoDecayOptions {
  /** Further parameter names (globs/RegExp) exempt from weight decay. */
  noDecay?: NamePattern[];
  /** Give the parameters under this prefix (e.g. the model's classifier, 'fc') their own lr. */
  head?: { pattern: NamePattern; lr: number };
}

/**
 * Groups the trainable parameters: 1-d tensors (biases, norm weights) and
 * `*.bias` get no weight decay, the rest `weightDecay`. With `head`, the
 * matching parameters form separate groups with their own lr. Empty groups
 * are left out. Frozen parameters (requiresGrad false) are skipped.
 */
export function paramGroupsNoDecay(model: Module, weightDecay: number, options: NoDecayOptions = {}): ParamGroupSpec[] {
  const extra = (options.noDecay ?? []).map(matcher);
  const isHead = options.head ? matcher(options.head.pattern) : () => false;
  const groups = new Map<string, ParamGroupSpec>();
  const add = (key: string, spec: Omit<ParamGroupSpec, 'params' | 'names'>, name: string, p: T.Tensor): void => {
    let g = groups.get(key);
    if (!g) {
      g = { ...spec, params: [], names: [] };
      groups.set(key, g);
    }
    g.params.push(p);
    g.names.push(name);
  };
  for (const [name, p] of model.namedParameters()) {
    if (!p.requiresGrad) continue;
    const noDecay = p.ndim <= 1 || name.endsWith('.bias') || extra.some((m) => m(name));
    const head = isHead(name);
    const lr = head ? { lr: options.head!.lr } : {};
    add(
      `${head ? 'head' : 'body'}-${noDecay ? 'nd' : 'd'}`,
      { weightDecay: noDecay ? 0 : weightDecay, ...lr },
      name,
      p,
    );
  }
  const order = ['body-nd', 'body-d', 'head-nd', 'head-d'];
  return order.map((k) => groups.get(k)).filter((g): g is ParamGroupSpec => g !== undefined);
}
