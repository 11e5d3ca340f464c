// Op parity on a device without PyTorch: each case of op-cases.ts runs twice on the same inputs and
// cotangents, once on `device` in the case's dtypes and once on the CPU with every floating input in float64,
// and the device's outputs and input gradients must be within the case's bound of the float64 ones (the
// bounds of the PyTorch oracle; b is the float64 value). Used by bench/device-check.ts (CUDA against the CPU;
// the rehearsal runs the same code with device = 'cpu') and by test/tensor-device.test.ts.
import * as T from '../../src/tensor/index.js';
import {
  baseShapeOf,
  compareValues,
  F32_TOL,
  generate,
  values,
  type OpCase,
  type Tolerance,
  type Values,
} from './op-oracle.js';

/**
 * cuDNN convolutions on CUDA may run in TF32 (10-bit mantissa; libtorch's default, as PyTorch's
 * torch.backends.cudnn.allow_tf32): two TF32 ulps relative for the cases that convolve.
 */
export const TF32_TOL: Tolerance = { rtol: 2e-3, atol: 2e-3 };

export interface DeviceCaseResult {
  name: string;
  /** Null when within the bound; else what differs (or what raised). */
  problem: string | null;
  /** Largest |a - b| / (|b| + max(1, max|b|)) over outputs and gradients: how close, for the record. */
  maxRelError: number;
}

interface Side {
  outputs: Values[];
  grads: (Values | null)[];
}

function onCpu(t: T.Tensor): Values {
  return values(t.device === 'cpu' ? t : t.to('cpu'));
}

/** Forward + backward of one case on leaves already on their device and dtype; cotangents moved likewise. */
function runSide(
  c: OpCase,
  leaves: T.Tensor[],
  cots: T.Tensor[] | null,
  autocast: T.AutocastDevice | null,
): {
  side: Side;
  outs: T.Tensor[];
} {
  const views = leaves.map((base, i) => {
    const s = c.inputs[i]!;
    return s.layout === 'T' ? base.transpose(-1, -2) : s.layout === 'slice' ? base.slice(-1, 0, undefined, 2) : base;
  });
  const raw = autocast ? T.autocast(autocast, () => c.js(views), T.autocastDtype(autocast)) : c.js(views);
  const outs = Array.isArray(raw) ? raw : [raw];
  let loss: T.Tensor | undefined;
  outs.forEach((o, i) => {
    const cot = cots?.[i];
    if (!o.requiresGrad || !cot) return;
    const term = o.mul(cot.to({ dtype: o.dtype, device: o.device as T.Device })).sum();
    loss = loss ? loss.add(term.to({ dtype: 'float64' })) : term.to({ dtype: 'float64' });
  });
  if (loss) loss.backward();
  return {
    side: { outputs: outs.map(onCpu), grads: leaves.map((l) => (l.grad ? onCpu(l.grad) : null)) },
    outs,
  };
}

function maxRel(a: Values, b: Values): number {
  let maxAbs = 0;
  for (const v of b.values) maxAbs = Math.max(maxAbs, Math.abs(v));
  let r = 0;
  for (let i = 0; i < Math.min(a.values.length, b.values.length); i++) {
    const d = Math.abs(a.values[i]! - b.values[i]!);
    if (!Number.isNaN(d)) r = Math.max(r, d / (Math.abs(b.values[i]!) + Math.max(1, maxAbs)));
  }
  return r;
}

/** Runs every case on `device` and on the CPU in float64; one result per case, in order. */
export function runOnDevice(cases: readonly OpCase[], device: T.Device, seed = 1234): DeviceCaseResult[] {
  T.manualSeed(seed);
  const cuda = T.isCuda(device);
  return cases.map((c) =>
    T.tidy(() => {
      // Inputs drawn on the CPU (the same numbers whatever the device), then copied as they are.
      const bases = c.inputs.map((s) => {
        const b = generate(s, baseShapeOf(s));
        return s.layout === 'cl' ? b.contiguous('channelsLast') : b;
      });
      const grad = c.inputs.map((s, i) => s.grad ?? T.isFloating(bases[i]!.dtype));
      const leaf = (t: T.Tensor, i: number): T.Tensor => (grad[i] ? t.setRequiresGrad(true) : t);
      try {
        const dev = runSide(
          c,
          bases.map((b, i) => leaf(b.to({ device, copy: true }), i)),
          null,
          c.autocast ? T.deviceType(device) : null,
        );
        const cots = dev.outs.map((o) => (o.requiresGrad ? T.randn(o.shape) : T.zeros([0])));
        // The device side again with cotangents (the first pass only fixed the output shapes).
        const devSide = runSide(
          c,
          bases.map((b, i) => leaf(b.to({ device, copy: true }), i)),
          cots,
          c.autocast ? T.deviceType(device) : null,
        ).side;
        const ref = runSide(
          c,
          bases.map((b, i) => leaf(T.isFloating(b.dtype) ? b.to({ dtype: 'float64' }) : b.clone(), i)),
          cots,
          null,
        ).side;
        let tol = c.tol ?? F32_TOL;
        if (cuda && /conv/.test(c.name))
          tol = { rtol: Math.max(tol.rtol, TF32_TOL.rtol), atol: Math.max(tol.atol, TF32_TOL.atol) };
        const problems: string[] = [];
        let worst = 0;
        const cmp = (what: string, a: Values, b: Values): void => {
          const exact = !T.isFloating(a.dtype as T.DType);
          // The reference ran in float64: compare values, not dtypes.
          const m = compareValues(what, a, { ...b, dtype: a.dtype }, tol, exact);
          if (m) problems.push(m);
          worst = Math.max(worst, maxRel(a, b));
        };
        if (devSide.outputs.length !== ref.outputs.length)
          problems.push(`${devSide.outputs.length} outputs on ${device}, ${ref.outputs.length} in float64`);
        devSide.outputs.forEach((o, i) => cmp(`output ${i}`, o, ref.outputs[i]!));
        devSide.grads.forEach((g, i) => {
          const r = ref.grads[i] ?? null;
          if ((g === null) !== (r === null)) problems.push(`grad of input ${i}: present on one side only`);
          else if (g && r) cmp(`grad of input ${i}`, g, r);
        });
        return { name: c.name, problem: problems.length ? problems.join('; ') : null, maxRelError: worst };
      } catch (e) {
        return { name: c.name, problem: `raised: ${(e as Error).message.split('\n')[0]}`, maxRelError: Number.NaN };
      }
    }),
  );
}
