// Micro-batching: concurrent requests' images wait a few milliseconds (or
// until a batch is full) and go through onnxruntime together; one run at a
// time, so images that arrive during a run form the next batch.
import { ServeError } from './errors.js';

export interface BatcherOptions {
  /** Images per run at most. */
  maxBatch: number;
  /** How long the first waiting image waits for company (ms). */
  maxDelayMs: number;
  /** Waiting images at most; beyond, enqueue fails with QUEUE_FULL. */
  maxQueue: number;
  /** Floats per image (C*H*W). */
  itemSize: number;
  /** Runs a batch [n, ...] and returns n rows of outputs, concatenated. */
  run: (input: Float32Array, n: number) => Promise<Float32Array>;
  /** Called after every run (metrics). */
  onBatch?: (n: number, seconds: number) => void;
}

interface Pending {
  data: Float32Array;
  resolve: (row: Float32Array) => void;
  reject: (e: unknown) => void;
}

export class MicroBatcher {
  private readonly queue: Pending[] = [];
  private running = false;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly o: BatcherOptions) {}

  get queueLength(): number {
    return this.queue.length;
  }

  /** Queues one image; resolves with its output row. */
  predict(data: Float32Array): Promise<Float32Array> {
    if (this.closed) return Promise.reject(new ServeError('SHUTTING_DOWN', 'the server is shutting down'));
    if (data.length !== this.o.itemSize)
      return Promise.reject(new Error(`batcher: expected ${this.o.itemSize} floats, got ${data.length}`));
    if (this.queue.length >= this.o.maxQueue) {
      return Promise.reject(
        new ServeError(
          'QUEUE_FULL',
          `${this.queue.length} images are already waiting (limit ${this.o.maxQueue}); retry later`,
        ),
      );
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ data, resolve, reject });
      this.schedule();
    });
  }

  /** Queues several images at once (all or none, so a request never half-fits the queue). */
  predictMany(items: readonly Float32Array[]): Promise<Float32Array[]> {
    if (!this.closed && this.queue.length + items.length > this.o.maxQueue) {
      return Promise.reject(
        new ServeError(
          'QUEUE_FULL',
          `${this.queue.length} images are already waiting (limit ${this.o.maxQueue}); retry later`,
        ),
      );
    }
    return Promise.all(items.map((d) => this.predict(d)));
  }

  private schedule(): void {
    if (this.running) return;
    if (this.queue.length >= this.o.maxBatch) {
      this.clearTimer();
      void this.flush();
      return;
    }
    this.timer ??= setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, this.o.maxDelayMs);
  }

  private clearTimer(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private async flush(): Promise<void> {
    if (this.running || this.queue.length === 0) {
      this.notifyIdle();
      return;
    }
    this.running = true;
    const batch = this.queue.splice(0, this.o.maxBatch);
    const n = batch.length;
    const input = new Float32Array(n * this.o.itemSize);
    batch.forEach((p, i) => input.set(p.data, i * this.o.itemSize));
    const t0 = performance.now();
    try {
      const out = await this.o.run(input, n);
      const row = out.length / n;
      batch.forEach((p, i) => p.resolve(out.slice(i * row, (i + 1) * row)));
    } catch (e) {
      for (const p of batch) p.reject(e);
    } finally {
      this.o.onBatch?.(n, (performance.now() - t0) / 1000);
      this.running = false;
    }
    // Whatever arrived during the run goes next, without the extra delay.
    if (this.queue.length) void this.flush();
    else this.notifyIdle();
  }

  private notifyIdle(): void {
    if (this.running || this.queue.length) return;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  /** Stops taking images and resolves once everything queued has run. */
  async drain(): Promise<void> {
    this.closed = true;
    if (!this.running && this.queue.length === 0) return;
    const idle = new Promise<void>((r) => this.idleWaiters.push(r));
    if (!this.running) {
      this.clearTimer();
      void this.flush();
    }
    await idle;
  }
}
