// Conv2d with torch.nn.Conv2d's parameters, names and default initialisation.
import * as T from '../../tensor/index.js';
import { Module } from '../module.js';
import { defaultLayerInit } from '../init.js';

type Pair = number | [number, number];
export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
  bias?: boolean;
}

function pair(v: Pair): [number, number] {
  return typeof v === 'number' ? [v, v] : v;
}

export class Conv2d extends Module {
  declare readonly weight: T.Tensor;
  declare readonly bias: T.Tensor | null;
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly dilation: [number, number];
  readonly groups: number;

  constructor(inChannels: number, outChannels: number, kernelSize: Pair, o: Conv2dOptions = {}) {
    super();
    const groups = o.groups ?? 1;
    for (const [v, what] of [
      [inChannels, 'inChannels'],
      [outChannels, 'outChannels'],
      [groups, 'groups'],
    ] as const) {
      if (!Number.isInteger(v) || v < 1)
        throw new RangeError(`Expected a positive integer for Conv2d ${what} but received ${v}`);
    }
    if (inChannels % groups || outChannels % groups) {
      throw new RangeError(
        `Error in Conv2d: inChannels (${inChannels}) and outChannels (${outChannels}) must be divisible by groups (${groups})`,
      );
    }
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernelSize = pair(kernelSize);
    this.stride = pair(o.stride ?? 1);
    this.padding = pair(o.padding ?? 0);
    this.dilation = pair(o.dilation ?? 1);
    this.groups = groups;
    const w = this.registerParameter('weight', T.empty([outChannels, inChannels / groups, ...this.kernelSize]));
    const b = this.registerParameter('bias', (o.bias ?? true) ? T.empty([outChannels]) : null);
    defaultLayerInit(w, b);
  }

  override forward(x: T.Tensor): T.Tensor {
    return T.F.conv2d(x, this.weight, this.bias, {
      stride: this.stride,
      padding: this.padding,
      dilation: this.dilation,
      groups: this.groups,
    });
  }
}
