// FLOPs of a model's forward, counted as multiply-accumulates (MACs) the way
// torchvision's model docs ("GFLOPS": ResNet-50 4.09) and timm ("GMACs") report
// them: every native conv2d, convTranspose2d, linear and matmul-family call of
// one eval-mode forward of a batch-1 input is observed and its MACs summed.
// Element-wise ops, normalisation and pooling are not counted (as there).
import * as T from '../tensor/index.js';
import { setCallHook, call, type Handle, type NativeArg, type CallHook } from '../tensor/native.js';
import { namedArgs, type OpName } from '../tensor/ops.js';
import type { Module } from '../nn/module.js';

export interface FlopsCount {
  /** Multiply-accumulates of one forward (batch 1). */
  macs: number;
  /** MACs per counted op name (conv2d, linear, matmul, ...). */
  byOp: Record<string, number>;
}

const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

/** MACs of one native call from its argument and result shapes; 0 for ops that are not counted. */
function macsOf(op: OpName, args: readonly NativeArg[], result: unknown, shape: (h: Handle) => number[]): number {
  switch (op) {
    case 'conv2d': {
      // out = N*Cout*Ho*Wo; each = (Cin/groups)*kh*kw MACs
      const a = namedArgs(op, args);
      return numel(shape(result as Handle)) * numel(shape(a.weight).slice(1));
    }
    case 'convTranspose2d': {
      // each input element scatters into (Cout/groups)*kh*kw outputs
      const a = namedArgs(op, args);
      return numel(shape(a.input)) * numel(shape(a.weight).slice(1));
    }
    case 'linear':
      return numel(shape(result as Handle)) * shape(namedArgs(op, args).weight).at(-1)!;
    case 'matmul':
    case 'mm':
    case 'bmm':
      return numel(shape(result as Handle)) * shape(namedArgs(op, args).self).at(-1)!;
    default:
      return 0;
  }
}

/**
 * Counts the MACs of model.forward on a zero input [1, ...inputSize] (default
 * 3x224x224) in eval mode without gradients; the model's mode is restored.
 */
export function countFlops(model: Module, inputSize: readonly [number, number, number] = [3, 224, 224]): FlopsCount {
  const byOp: Record<string, number> = {};
  let macs = 0;
  let inside = false;
  const shape = (h: Handle): number[] => call('shape', h);
  const hook: CallHook = (op, args, result) => {
    if (inside) return;
    inside = true;
    try {
      const n = macsOf(op, args, result, shape);
      if (n > 0) {
        macs += n;
        byOp[op] = (byOp[op] ?? 0) + n;
      }
    } finally {
      inside = false;
    }
  };
  const wasTraining = model.training;
  model.eval();
  const prev = setCallHook(hook);
  try {
    T.tidy(() =>
      T.noGrad(() => {
        model.forward(T.zeros([1, ...inputSize]));
      }),
    );
  } finally {
    setCallHook(prev);
    model.train(wasTraining);
  }
  return { macs, byOp };
}
