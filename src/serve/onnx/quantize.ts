// Static int8 quantization of a traced graph, as onnxruntime runs it fast:
// BatchNorm folded into the convolution before it (without this the QDQ graph
// gives no speed: the convolution and BN cannot fuse once quantized), then QDQ
// pairs (QuantizeLinear -> DequantizeLinear) around every convolution: int8
// weights per output channel (symmetric), int32 biases at the input scale times
// the weight scale, uint8 activations per tensor (asymmetric) from calibrated
// ranges. onnxruntime fuses DQ -> Conv [-> Relu] -> Q into one integer conv
// (u8 x s8 is the VNNI instruction's form). Linear layers (Gemm/MatMul) stay
// float: the classifier is a tiny share of the work and keeps the logits exact.
import type { GraphBuilder, OnnxNode } from './graph.js';

/** How activation ranges are calibrated (calibrate.ts). */
export const CALIBRATION_METHODS = ['percentile', 'minmax', 'mse', 'entropy'] as const;
export type CalibrationMethod = (typeof CALIBRATION_METHODS)[number];
/** What export --int8 accepts: a method, or 'auto' (each method tried; the int8 graph closest to float kept). */
export const CALIBRATION_CHOICES = ['auto', ...CALIBRATION_METHODS] as const;
export type CalibrationChoice = (typeof CALIBRATION_CHOICES)[number];

/** A calibration batch: `n` images, float32 NCHW through the evaluation pre-processing. */
export interface CalibrationBatch {
  data: Float32Array;
  n: number;
}

/** A tensor's calibrated range. */
export interface Range {
  min: number;
  max: number;
}

const attrF = (n: OnnxNode, name: string, dflt: number): number => {
  const a = n.attribute?.find((x) => x.name === name);
  return a?.f ?? dflt;
};

function consumersOf(nodes: readonly OnnxNode[]): Map<string, OnnxNode[]> {
  const m = new Map<string, OnnxNode[]>();
  for (const n of nodes)
    for (const i of n.input ?? []) {
      if (!i) continue;
      const l = m.get(i);
      if (l) l.push(n);
      else m.set(i, [n]);
    }
  return m;
}

function producersOf(nodes: readonly OnnxNode[]): Map<string, OnnxNode> {
  const m = new Map<string, OnnxNode>();
  for (const n of nodes) for (const o of n.output ?? []) m.set(o, n);
  return m;
}

const floats = (g: GraphBuilder, name: string | undefined): Float32Array | undefined => {
  const t = name ? g.initializerOf(name) : undefined;
  return t && t.data instanceof Float32Array ? t.data : undefined;
};

/**
 * Folds every BatchNormalization that reads a Conv's output alone into that Conv (new weight and bias
 * initializers; a weight shared by several convs, as in test-time views, is folded once per BN).
 * Returns how many were folded. `outputs`: graph outputs, never folded away.
 */
export function foldBatchNorm(g: GraphBuilder, outputs: ReadonlySet<string> = new Set()): number {
  const nodes = [...g.nodeList];
  const consumers = consumersOf(nodes);
  const producers = producersOf(nodes);
  const dropped = new Set<OnnxNode>();
  const done = new Map<string, [string, string]>();
  let folded = 0;
  for (const bn of nodes) {
    if (bn.opType !== 'BatchNormalization') continue;
    const x = bn.input![0]!;
    const conv = producers.get(x);
    if (conv?.opType !== 'Conv' || consumers.get(x)?.length !== 1 || outputs.has(x)) continue;
    const [wName, bName] = [conv.input![1]!, conv.input![2]];
    const w = g.initializerOf(wName);
    const [scale, beta, mean, variance] = bn.input!.slice(1, 5).map((n) => floats(g, n));
    if (!w || !(w.data instanceof Float32Array) || !scale || !beta || !mean || !variance) continue;
    const bias = bName ? floats(g, bName) : undefined;
    if (bName && !bias) continue;
    const key = [wName, bName ?? '', ...bn.input!.slice(1)].join('|');
    let names = done.get(key);
    if (!names) {
      const eps = attrF(bn, 'epsilon', 1e-5);
      const cout = w.dims[0]!;
      const per = w.data.length / cout;
      const nw = new Float32Array(w.data.length);
      const nb = new Float32Array(cout);
      for (let c = 0; c < cout; c++) {
        // float64 arithmetic, one rounding to float32 at the end
        const f = scale[c]! / Math.sqrt(variance[c]! + eps);
        for (let j = 0; j < per; j++) nw[c * per + j] = w.data[c * per + j]! * f;
        nb[c] = ((bias ? bias[c]! : 0) - mean[c]!) * f + beta[c]!;
      }
      names = [
        g.initializer(g.fresh(`${wName}.bnfold`), w.dims, nw),
        g.initializer(g.fresh(`${wName}.bnfold_bias`), [cout], nb),
      ];
      done.set(key, names);
    }
    conv.input = [conv.input![0]!, names[0], names[1]];
    conv.output = [...bn.output!];
    dropped.add(bn);
    folded++;
  }
  g.setNodes(nodes.filter((n) => !dropped.has(n)));
  return folded;
}

/** What quantizeGraph will quantize: the activation tensors whose ranges calibration must measure. */
export interface QuantPlan {
  /** Conv nodes that become integer convolutions. */
  convs: OnnxNode[];
  /** Activation tensors that get a QDQ pair (conv inputs, and conv outputs, after a following Relu). */
  tensors: string[];
  /** Those among `tensors` that are Relu outputs (their range starts at 0, so the Relu folds into Q). */
  reluOutputs: Set<string>;
}

/** Plans the quantization of every Conv whose weight is an initializer. */
export function planQuantization(g: GraphBuilder, outputs: ReadonlySet<string> = new Set()): QuantPlan {
  const nodes = g.nodeList;
  const consumers = consumersOf(nodes);
  // Tensors computed from globally pooled ones alone (squeeze-and-excitation's 1 x 1 convs and their
  // activations): a negligible share of the work, and quantizing them per tensor costs accuracy.
  const pooled = new Set<string>();
  for (const n of nodes) {
    const acts = (n.input ?? []).filter((i) => i && !g.hasInitializer(i));
    if (
      n.opType === 'GlobalAveragePool' ||
      n.opType === 'GlobalMaxPool' ||
      (acts.length && acts.every((i) => pooled.has(i)))
    )
      for (const o of n.output ?? []) pooled.add(o);
  }
  const convs = nodes.filter(
    (n) =>
      n.opType === 'Conv' && g.initializerOf(n.input![1]!)?.data instanceof Float32Array && !pooled.has(n.input![0]!),
  );
  const tensors = new Set<string>();
  const reluOutputs = new Set<string>();
  for (const c of convs) {
    tensors.add(c.input![0]!);
    const y = c.output![0]!;
    const next = consumers.get(y);
    // Conv -> Relu -> Q: onnxruntime drops the Relu when Q's zero point is its lowest value.
    if (next?.length === 1 && next[0]!.opType === 'Relu' && !outputs.has(y)) {
      const r = next[0]!.output![0]!;
      tensors.add(r);
      reluOutputs.add(r);
    } else tensors.add(y);
  }
  for (const t of outputs) tensors.delete(t);
  return { convs, tensors: [...tensors], reluOutputs };
}

/** uint8 asymmetric quantization of a range that always contains 0 (so 0 is exact: padding). */
export function activationQParams(r: Range, relu = false): { scale: number; zeroPoint: number } {
  const lo = relu ? 0 : Math.min(r.min, 0);
  const hi = Math.max(r.max, 0);
  if (!(hi > lo)) return { scale: 1, zeroPoint: relu ? 0 : 0 };
  const scale = Math.fround((hi - lo) / 255);
  const zeroPoint = Math.min(255, Math.max(0, Math.round(-lo / scale)));
  return { scale, zeroPoint };
}

/** Symmetric int8 weights per output channel (axis 0): q in [-127, 127]. */
export function quantizeWeightsPerChannel(w: Float32Array, cout: number): { q: Int8Array; scales: Float32Array } {
  const per = w.length / cout;
  const q = new Int8Array(w.length);
  const scales = new Float32Array(cout);
  for (let c = 0; c < cout; c++) {
    let m = 0;
    for (let j = 0; j < per; j++) m = Math.max(m, Math.abs(w[c * per + j]!));
    const s = m > 0 ? Math.fround(m / 127) : 1;
    scales[c] = s;
    for (let j = 0; j < per; j++) q[c * per + j] = Math.max(-127, Math.min(127, Math.round(w[c * per + j]! / s)));
  }
  return { q, scales };
}

export interface QuantizeStats {
  convs: number;
  tensors: number;
}

/**
 * Inserts the QDQ pairs of `plan` with the calibrated `ranges` (every planned tensor needs one) and
 * replaces each planned conv's weight and bias by their quantized initializers behind DequantizeLinear.
 */
export function quantizeGraph(g: GraphBuilder, plan: QuantPlan, ranges: ReadonlyMap<string, Range>): QuantizeStats {
  const params = new Map<string, { scale: number; zeroPoint: number; s: string; z: string }>();
  for (const t of plan.tensors) {
    const r = ranges.get(t);
    if (!r) throw new Error(`int8 export: no calibrated range for tensor '${t}'`);
    const p = activationQParams(r, plan.reluOutputs.has(t));
    params.set(t, {
      ...p,
      s: g.initializer(g.fresh(`${t}.scale`), [], Float32Array.of(p.scale)),
      z: g.initializer(g.fresh(`${t}.zero_point`), [], Uint8Array.of(p.zeroPoint)),
    });
  }
  const out: OnnxNode[] = [];
  const dq = new Map<string, string>(); // tensor -> its dequantized name
  const dqOf = new Map<string, string>(); // dequantized name -> tensor
  const qdq = (t: string): OnnxNode[] => {
    const p = params.get(t)!;
    const q = g.fresh(`${t}.q`);
    const d = g.fresh(`${t}.dq`);
    dq.set(t, d);
    dqOf.set(d, t);
    return [
      { opType: 'QuantizeLinear', input: [t, p.s, p.z], output: [q], name: g.fresh('n_QuantizeLinear'), attribute: [] },
      {
        opType: 'DequantizeLinear',
        input: [q, p.s, p.z],
        output: [d],
        name: g.fresh('n_DequantizeLinear'),
        attribute: [],
      },
    ];
  };
  const weightDq = new Map<string, { name: string; scales: Float32Array }>();
  const biasDq = new Map<string, string>();
  const convSet = new Set(plan.convs);
  // The graph input is quantized before any node.
  const produced = new Set(g.nodeList.flatMap((n) => n.output ?? []));
  for (const t of plan.tensors) if (!produced.has(t)) out.push(...qdq(t));
  for (const n of g.nodeList) {
    n.input = (n.input ?? []).map((i) => dq.get(i) ?? i);
    if (convSet.has(n)) {
      const x = n.input[0]!;
      const xt = dqOf.get(x);
      if (xt === undefined) throw new Error(`int8 export: conv ${n.name} input '${x}' is not quantized`);
      const wName = n.input[1]!;
      let w = weightDq.get(wName);
      if (!w) {
        const init = g.initializerOf(wName)!;
        const cout = init.dims[0]!;
        const { q, scales } = quantizeWeightsPerChannel(init.data as Float32Array, cout);
        const qn = g.initializer(g.fresh(`${wName}.int8`), init.dims, q);
        const sn = g.initializer(g.fresh(`${wName}.scale`), [cout], scales);
        const zn = g.initializer(g.fresh(`${wName}.zero_point`), [cout], new Int8Array(cout));
        const name = g.fresh(`${wName}.dq`);
        out.push({
          opType: 'DequantizeLinear',
          input: [qn, sn, zn],
          output: [name],
          name: g.fresh('n_DequantizeLinear'),
          attribute: [{ name: 'axis', type: 2, i: 0 }],
        });
        w = { name, scales };
        weightDq.set(wName, w);
      }
      const inputs = [x, w.name];
      const bName = n.input[2];
      if (bName) {
        const sx = params.get(xt)!.scale;
        const key = `${bName}|${sx}|${wName}`;
        let bd = biasDq.get(key);
        if (!bd) {
          const b = g.initializerOf(bName);
          if (!b || !(b.data instanceof Float32Array))
            throw new Error(`int8 export: conv ${n.name} bias '${bName}' is not a float initializer`);
          const cout = b.data.length;
          const scales = new Float32Array(cout);
          const q = new Int32Array(cout);
          for (let c = 0; c < cout; c++) {
            scales[c] = Math.fround(sx * w.scales[c]!);
            q[c] = Math.round(b.data[c]! / scales[c]!);
          }
          bd = g.fresh(`${bName}.dq`);
          out.push({
            opType: 'DequantizeLinear',
            input: [
              g.initializer(g.fresh(`${bName}.int32`), [cout], q),
              g.initializer(g.fresh(`${bName}.scale`), [cout], scales),
              g.initializer(g.fresh(`${bName}.zero_point`), [cout], new Int32Array(cout)),
            ],
            output: [bd],
            name: g.fresh('n_DequantizeLinear'),
            attribute: [{ name: 'axis', type: 2, i: 0 }],
          });
          biasDq.set(key, bd);
        }
        inputs.push(bd);
      }
      n.input = inputs;
    }
    out.push(n);
    for (const o of n.output ?? []) if (params.has(o)) out.push(...qdq(o));
  }
  g.setNodes(out);
  return { convs: plan.convs.length, tensors: plan.tensors.length };
}
