// Host batches onto a device the way PyTorch's fast input pipelines do: on CUDA the batch is copied into
// page-locked (pinned) memory and sent with a non-blocking copy, which the GPU runs on its stream ahead of
// the step's kernels while the host goes on to the next batch; channels_last when the model uses it.
import { deviceType, type Device } from './device.js';
import type { Tensor } from './tensor.js';

export interface ToDeviceOptions {
  /** Convert 4-d batches to channels_last (the model's memory format). */
  channelsLast?: boolean;
}

/** The batch on `device` (the tensor itself on the CPU unless channels_last is asked for). */
export function batchToDevice(x: Tensor, device: Device, o: ToDeviceOptions = {}): Tensor {
  let y = x;
  if (deviceType(device) === 'cuda') y = y.pinMemory().to({ device, nonBlocking: true });
  if (o.channelsLast && y.ndim === 4) y = y.contiguous('channelsLast');
  return y;
}
