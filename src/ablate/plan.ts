// The plan of an ablation: which cells (a base config plus one factor's value, or a full grid), which
// trainings they need (cells whose training configs resolve to the same config share one), and the jobs
// (train, then evaluate) per seed. Pure: nothing here runs or reads a run folder.
import { ConfigError, loadConfigFile, parseOverride, resolveConfig, type ConfigLayer } from '../run/config.js';

/**
 * Keys that change only the evaluation, so such a cell shares the training of the cell without them:
 * `eval.size` (test resolution, e.g. FixRes's larger test size), `eval.tta` (test-time views, '+'-joined:
 * `flip`, `flip+zoom`), `eval.ensemble` (the mean of this cell's run and the same seed's run of the cell
 * with these training overrides, '+'-joined: `model.name=resnet34`; or `seed+K`: of this cell's run and its
 * own training's run K seeds on, wrapping round, which costs no training).
 */
export const EVAL_KEYS = ['eval.size', 'eval.tta', 'eval.ensemble'] as const;
export type EvalKey = (typeof EVAL_KEYS)[number];
const isEvalKey = (k: string): k is EvalKey => (EVAL_KEYS as readonly string[]).includes(k);

export interface AblateSpec {
  /** Base config file (YAML or JSON), as `goodsrec train --config`. */
  config?: string;
  /** Base overrides, as `goodsrec train --set key=value`. */
  set: readonly string[];
  /** Factors: `key=a,b,c` (commas inside [] or {} do not split). */
  vary: readonly string[];
  /** Extra cells with several overrides: `k=v;k2=v2`. */
  cells?: readonly string[];
  /** The full product of the factors instead of one factor at a time. */
  grid?: boolean;
  /** Seeds 0..seeds-1. */
  seeds: number;
}

/** One training override or eval setting, as given: key and raw value. */
export type Setting = readonly [key: string, value: string];

export interface EvalVariant {
  size?: number;
  tta?: string[];
  /** The training the ensemble partner's run comes from (its id). */
  ensembleWith?: string;
  /** The partner's seed is this many seeds on (modulo the number of seeds). */
  ensembleSeedOffset?: number;
}

export interface Cell {
  /** 'base' or the settings as `key=value` joined by '+': also its file name stem. */
  id: string;
  settings: Setting[];
  /** The id of the training whose run the cell evaluates. */
  training: string;
  eval: EvalVariant;
}

export interface Training {
  /** 'base' or its training overrides as `key=value` joined by '+'. */
  id: string;
  overrides: Setting[];
  /** Trained only as an ensemble partner (no cell of its own). */
  partnerOnly: boolean;
}

export interface Plan {
  cells: Cell[];
  trainings: Training[];
  seeds: number[];
}

/** Splits `a,b,[c,d]` at the commas outside brackets and braces. */
export function splitValues(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '[' || ch === '{') depth++;
    else if (ch === ']' || ch === '}') depth = Math.max(0, depth - 1);
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((v) => v.trim());
}

function keyValue(s: string, where: string): Setting {
  const eq = s.indexOf('=');
  if (eq <= 0 || eq === s.length - 1) throw new ConfigError(`${where} '${s}': expected key=value`);
  return [s.slice(0, eq).trim(), s.slice(eq + 1).trim()];
}

export interface Factor {
  key: string;
  values: string[];
}

/** The factors of the --vary options, in order; a key given twice gets the values of both. */
export function parseFactors(vary: readonly string[]): Factor[] {
  const factors: Factor[] = [];
  for (const v of vary) {
    const [key, raw] = keyValue(v, '--vary');
    const values = splitValues(raw);
    if (values.some((x) => x === '')) throw new ConfigError(`--vary '${v}': an empty value`);
    const f = factors.find((x) => x.key === key);
    if (f) f.values.push(...values.filter((x) => !f.values.includes(x)));
    else factors.push({ key, values: [...new Set(values)] });
  }
  return factors;
}

/** A file-name-safe id of settings: 'base' for none. */
export function settingsId(settings: readonly Setting[]): string {
  if (!settings.length) return 'base';
  return settings.map(([k, v]) => `${k}=${v}`.replace(/[^A-Za-z0-9._=+-]/g, '_')).join('+');
}

function evalVariant(
  settings: readonly Setting[],
  partnerId: (o: Setting[]) => string,
  ownTraining: string,
  seeds: number,
): EvalVariant {
  const e: EvalVariant = {};
  for (const [k, v] of settings) {
    if (k === 'eval.size') {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 16) throw new ConfigError(`eval.size=${v}: expected an integer >= 16`);
      e.size = n;
    } else if (k === 'eval.tta') {
      const views = v.split('+').filter(Boolean);
      if (!views.length || views.some((x) => !/^[a-z]+$/.test(x)))
        throw new ConfigError(`eval.tta=${v}: expected views joined by '+', e.g. flip or flip+zoom`);
      e.tta = views;
    } else if (k === 'eval.ensemble' && /^seed\+\d+$/.test(v)) {
      const offset = Number(v.slice(5));
      if (offset % seeds === 0)
        throw new ConfigError(`eval.ensemble=${v}: with ${seeds} seed(s) that is the run itself; use more seeds`);
      e.ensembleWith = ownTraining;
      e.ensembleSeedOffset = offset;
    } else if (k === 'eval.ensemble') {
      const partner = v.split('+').map((kv) => keyValue(kv, 'eval.ensemble'));
      if (partner.some(([pk]) => isEvalKey(pk)))
        throw new ConfigError(`eval.ensemble=${v}: the partner is a training (training options only)`);
      e.ensembleWith = partnerId(partner);
    }
  }
  return e;
}

/**
 * The cells and trainings of a spec. The base cell comes first; every training config is resolved here,
 * so a bad key or value fails before anything runs.
 */
export function makePlan(spec: AblateSpec): Plan {
  if (!Number.isInteger(spec.seeds) || spec.seeds < 1) throw new ConfigError(`--seeds: expected an integer >= 1`);
  const base: ConfigLayer[] = [];
  if (spec.config) base.push({ source: spec.config, values: loadConfigFile(spec.config) });
  for (const s of spec.set) base.push({ source: `--set ${s}`, values: parseOverride(s) });

  const factors = parseFactors(spec.vary);
  const cellSettings: Setting[][] = [[]];
  if (spec.grid && factors.length) {
    let product: Setting[][] = [[]];
    for (const f of factors) product = product.flatMap((p) => f.values.map((v) => [...p, [f.key, v] as const]));
    cellSettings.push(...product);
  } else for (const f of factors) for (const v of f.values) cellSettings.push([[f.key, v]]);
  for (const c of spec.cells ?? []) cellSettings.push(c.split(';').map((kv) => keyValue(kv.trim(), '--cell')));

  // Trainings keyed by their resolved config: cells that train the same thing share the run.
  const trainings: Training[] = [];
  const byConfig = new Map<string, Training>();
  const trainingOf = (overrides: Setting[], partnerOnly: boolean): string => {
    const layers = [
      ...base,
      ...overrides.map(([k, v]) => ({ source: `--vary ${k}=${v}`, values: parseOverride(`${k}=${v}`) })),
    ];
    const { seed: _seed, threads: _threads, ...config } = resolveConfig(layers);
    const key = JSON.stringify(config);
    let t = byConfig.get(key);
    if (!t) {
      t = { id: settingsId(overrides), overrides, partnerOnly };
      byConfig.set(key, t);
      trainings.push(t);
    } else if (!partnerOnly) t.partnerOnly = false;
    return t.id;
  };

  const cells: Cell[] = [];
  const ids = new Set<string>();
  for (const settings of cellSettings) {
    const keys = settings.map(([k]) => k);
    const twice = keys.find((k, i) => keys.indexOf(k) !== i);
    if (twice) throw new ConfigError(`cell ${settingsId(settings)}: '${twice}' is set twice`);
    const id = settingsId(settings);
    if (ids.has(id)) continue;
    ids.add(id);
    const overrides = settings.filter(([k]) => !isEvalKey(k));
    const training = trainingOf(overrides, false);
    const ev = evalVariant(
      settings.filter(([k]) => isEvalKey(k)),
      (partner) => trainingOf([...overrides.filter(([k]) => !partner.some(([pk]) => pk === k)), ...partner], true),
      training,
      spec.seeds,
    );
    cells.push({ id, settings, training, eval: ev });
  }
  // A partner added after the cell that named it is still trained before that cell's evaluation (jobs()).
  return { cells, trainings, seeds: Array.from({ length: spec.seeds }, (_, i) => i) };
}

export type Job =
  | { kind: 'train'; name: string; training: Training; seed: number }
  | { kind: 'eval'; name: string; cell: Cell; seed: number; needs: string[] };

/** A training's run folder name for a seed. */
export const runName = (training: string, seed: number): string => `${training}-s${seed}`;

/**
 * Every job, seed by seed (all cells of seed 0 first, so an ablation stopped early has whole seeds):
 * a seed's trainings, then its evaluations, each after the trainings it needs.
 */
export function jobs(plan: Plan): Job[] {
  const out: Job[] = [];
  for (const seed of plan.seeds) {
    for (const t of plan.trainings) out.push({ kind: 'train', name: runName(t.id, seed), training: t, seed });
    for (const c of plan.cells) {
      const needs = [runName(c.training, seed)];
      const partnerSeed = plan.seeds[(seed + (c.eval.ensembleSeedOffset ?? 0)) % plan.seeds.length]!;
      if (c.eval.ensembleWith) needs.push(runName(c.eval.ensembleWith, partnerSeed));
      out.push({ kind: 'eval', name: `${c.id}-s${seed}`, cell: c, seed, needs });
    }
  }
  return out;
}
