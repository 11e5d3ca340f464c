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

/** A batch taken from the host side and the tensors it became on the device. */
export interface Prefetched<B, D> {
  batch: B;
  onDevice: D;
}

/**
 * A prefetch of one batch onto the device (as the input prefetchers of PyTorch's fast training loops): the
 * step calls `fetch()` for the next batch after queueing its own forward and backward and before it waits for
 * its loss, so the next batch is pinned and its non-blocking copy issued while the device still works on the
 * current step. On the CPU the copy is a plain tensor (the same code path, nothing to overlap). `move` turns a
 * host batch into kept device tensors; the caller disposes them after their step, and calls `close()` when it
 * stops early (the source's return(), e.g. a loader's workers).
 */
export class DevicePrefetcher<B, D> {
  private done = false;

  constructor(
    private readonly source: AsyncIterator<B>,
    private readonly move: (b: B) => D,
  ) {}

  /** The next batch, moved onto the device (its copy issued now), or null when the source is exhausted. */
  async fetch(): Promise<Prefetched<B, D> | null> {
    if (this.done) return null;
    const r = await this.source.next();
    if (r.done) {
      this.done = true;
      return null;
    }
    return { batch: r.value, onDevice: this.move(r.value) };
  }

  /** Stops the source early (a stop request, an error); harmless after it ended. */
  async close(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.source.return?.();
  }
}
