// Optimizer base: parameter groups with their own hyper-parameters, per-parameter
// state, PyTorch-layout state dicts (parameters by index in group order).
import * as T from '../tensor/index.js';

type Tensor = T.Tensor;

/** Hyper-parameters shared by every optimizer group (schedulers change lr). */
export interface GroupBase {
  lr: number /** lr when the scheduler started (PyTorch's initial_lr). */;
  initialLr?: number;
}

/** A parameter group: its tensors and its hyper-parameters. */
export type ParamGroup<O extends GroupBase> = O & { params: Tensor[] };

/** Group input: tensors plus any hyper-parameters that differ from the optimizer's defaults. */
export type ParamGroupInput<O extends GroupBase> = Partial<O> & { params: readonly Tensor[] };

export type ParamsInput<O extends GroupBase> = readonly Tensor[] | readonly ParamGroupInput<O>[];

export type StateValue = Tensor | number;
export type ParamState = Record<string, StateValue>;

/**
 * PyTorch's optimizer state-dict layout: per-parameter state keyed by the
 * parameter's index over all groups, and the groups' hyper-parameters with
 * PyTorch's names (lr, weight_decay, ...) and the indices of their parameters.
 */
export interface OptimizerStateDict {
  state: Map<number, ParamState>;
  param_groups: Array<Record<string, number | boolean | number[] | null> & { params: number[] }>;
}

function isGroupList<O extends GroupBase>(p: ParamsInput<O>): p is readonly ParamGroupInput<O>[] {
  return p.length > 0 && !(p[0] instanceof T.Tensor);
}

export abstract class Optimizer<O extends GroupBase> {
  readonly paramGroups: ParamGroup<O>[];
  readonly defaults: Readonly<O>;
  /** Per-parameter state (momentum buffers, moments, step counts); tensors here are kept and owned by the optimizer. */
  protected readonly state = new Map<Tensor, ParamState>();
  /** PyTorch's name for each hyper-parameter of a group (camelCase -> snake_case). */
  protected abstract readonly torchNames: Readonly<Record<Exclude<keyof O, 'initialLr'>, string>>;

  constructor(params: ParamsInput<O>, defaults: O) {
    this.defaults = { ...defaults };
    const groups = isGroupList(params) ? params : [{ params } as ParamGroupInput<O>];
    if (groups.length === 0 || groups.every((g) => g.params.length === 0)) {
      throw new RangeError(`${this.constructor.name}: got an empty parameter list`);
    }
    const seen = new Set<Tensor>();
    this.paramGroups = groups.map((g, i) => {
      for (const p of g.params) {
        if (!(p instanceof T.Tensor))
          throw new TypeError(`${this.constructor.name}: group ${i} holds a non-tensor parameter`);
        if (seen.has(p))
          throw new Error(`${this.constructor.name}: a parameter appears in more than one group (group ${i})`);
        seen.add(p);
      }
      const merged = { ...defaults } as Record<string, unknown>;
      for (const [k, v] of Object.entries(g)) if (v !== undefined && k !== 'params') merged[k] = v;
      return { ...(merged as O), params: [...g.params] };
    });
    for (const g of this.paramGroups) this.validate(g);
  }

  /** Checks a group's hyper-parameters (throws a RangeError naming the bad one). */
  protected abstract validate(group: ParamGroup<O>): void;

  /** Updates one parameter from its gradient (called under noGrad, inside a tidy scope per parameter). */
  protected abstract update(p: Tensor, grad: Tensor, group: ParamGroup<O>, state: ParamState): void;

  /** One optimisation step over every parameter that has a gradient. */
  step(): void {
    T.noGrad(() => {
      for (const g of this.paramGroups) {
        for (const p of g.params) {
          // One scope per parameter: temporaries are freed before the next
          // parameter's, as PyTorch's reference counting does (lower peak memory).
          T.tidy(() => {
            const grad = p.grad;
            if (!grad) return;
            let st = this.state.get(p);
            if (!st) {
              st = {};
              this.state.set(p, st);
            }
            this.update(p, grad, g, st);
          }, 'optimizer.step');
        }
      }
    });
  }

  /** Drops every parameter's gradient (PyTorch's zero_grad(set_to_none=True): frees the memory). */
  zeroGrad(): void {
    for (const g of this.paramGroups) for (const p of g.params) p.zeroGrad();
  }

  /** Stores a state tensor (kept; a previous one under the same key is freed). */
  protected setState(st: ParamState, key: string, t: Tensor): Tensor {
    const old = st[key];
    t.keep();
    st[key] = t;
    if (old instanceof T.Tensor && old !== t) old.dispose();
    return t;
  }

  /**
   * The state in PyTorch's layout. State tensors are new handles sharing the
   * optimizer's storage (the caller disposes them).
   */
  stateDict(): OptimizerStateDict {
    const index = new Map<Tensor, number>();
    let next = 0;
    const param_groups = this.paramGroups.map((g) => {
      const packed: Record<string, number | boolean | number[] | null> = {};
      for (const [k, torchName] of Object.entries(this.torchNames) as [string, string][]) {
        packed[torchName] = (g as unknown as Record<string, number | boolean | null>)[k] ?? null;
      }
      if (g.initialLr !== undefined) packed.initial_lr = g.initialLr;
      const params = g.params.map((p) => {
        if (!index.has(p)) index.set(p, next++);
        return index.get(p)!;
      });
      return { ...packed, params };
    });
    const state = new Map<number, ParamState>();
    for (const [p, st] of this.state) {
      const i = index.get(p);
      if (i === undefined) continue;
      const out: ParamState = {};
      for (const [k, v] of Object.entries(st)) out[k] = v instanceof T.Tensor ? v.detach() : v;
      state.set(i, out);
    }
    return { state, param_groups };
  }

  /** Restores a state dict of the same parameter layout (tensors are copied; hyper-parameters replace the groups'). */
  loadStateDict(sd: OptimizerStateDict): void {
    if (sd.param_groups.length !== this.paramGroups.length) {
      throw new RangeError(
        `${this.constructor.name}.loadStateDict: the state dict has ${sd.param_groups.length} parameter groups, the optimizer ${this.paramGroups.length}`,
      );
    }
    const byIndex = new Map<number, Tensor>();
    sd.param_groups.forEach((sg, gi) => {
      const g = this.paramGroups[gi]!;
      if (sg.params.length !== g.params.length) {
        throw new RangeError(
          `${this.constructor.name}.loadStateDict: group ${gi} has ${sg.params.length} parameters in the state dict, ${g.params.length} in the optimizer`,
        );
      }
      sg.params.forEach((idx, j) => byIndex.set(idx, g.params[j]!));
    });
    for (const [i, st] of sd.state) {
      const p = byIndex.get(i);
      if (!p)
        throw new RangeError(`${this.constructor.name}.loadStateDict: state for parameter ${i}, which no group holds`);
      for (const [k, v] of Object.entries(st)) {
        if (v instanceof T.Tensor && v.shape.length > 0 && v.numel !== p.numel) {
          throw new RangeError(
            `${this.constructor.name}.loadStateDict: state '${k}' of parameter ${i} has shape [${v.shape.join(', ')}], the parameter [${p.shape.join(', ')}]`,
          );
        }
      }
    }
    for (const st of this.state.values()) for (const v of Object.values(st)) if (v instanceof T.Tensor) v.dispose();
    this.state.clear();
    for (const [i, st] of sd.state) {
      const p = byIndex.get(i)!;
      const own: ParamState = {};
      for (const [k, v] of Object.entries(st)) {
        if (v instanceof T.Tensor) {
          // Scalars such as AdamW's step become numbers; buffers are copied in the parameter's dtype and layout.
          own[k] =
            v.shape.length === 0 && k === 'step'
              ? v.item()
              : T.tidy(() =>
                  v
                    .to({ dtype: p.dtype, device: p.device as T.Device })
                    .clone()
                    .keep(),
                );
        } else own[k] = v;
      }
      this.state.set(p, own);
    }
    sd.param_groups.forEach((sg, gi) => {
      const g = this.paramGroups[gi]! as unknown as Record<string, unknown>;
      for (const [k, torchName] of Object.entries(this.torchNames) as [string, string][]) {
        if (sg[torchName] !== undefined && sg[torchName] !== null) g[k] = sg[torchName];
      }
      if (typeof sg.initial_lr === 'number') g.initialLr = sg.initial_lr;
    });
  }

  /** Frees the optimizer's state tensors. */
  dispose(): void {
    for (const st of this.state.values()) for (const v of Object.values(st)) if (v instanceof T.Tensor) v.dispose();
    this.state.clear();
  }
}
