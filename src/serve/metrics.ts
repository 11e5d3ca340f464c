// Prometheus text exposition (format 0.0.4) for the server: counters,
// gauges and cumulative histograms, hand-written (a handful of series).

type Labels = Record<string, string>;

function labelText(l: Labels): string {
  const parts = Object.entries(l).map(
    ([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`,
  );
  return parts.length ? `{${parts.join(',')}}` : '';
}

abstract class Metric {
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge' | 'histogram',
  ) {}
  abstract lines(): string[];
  header(): string[] {
    return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`];
  }
}

export class Counter extends Metric {
  private readonly values = new Map<string, { labels: Labels; v: number }>();
  constructor(name: string, help: string) {
    super(name, help, 'counter');
  }
  inc(labels: Labels = {}, by = 1): void {
    const k = labelText(labels);
    const e = this.values.get(k);
    if (e) e.v += by;
    else this.values.set(k, { labels, v: by });
  }
  get(labels: Labels = {}): number {
    return this.values.get(labelText(labels))?.v ?? 0;
  }
  lines(): string[] {
    return [...this.values.values()].map((e) => `${this.name}${labelText(e.labels)} ${e.v}`);
  }
}

export class Gauge extends Metric {
  constructor(
    name: string,
    help: string,
    private readonly read: () => number,
  ) {
    super(name, help, 'gauge');
  }
  lines(): string[] {
    return [`${this.name} ${this.read()}`];
  }
}

export class Histogram extends Metric {
  private readonly series = new Map<string, { labels: Labels; counts: number[]; sum: number; n: number }>();
  constructor(
    name: string,
    help: string,
    readonly buckets: readonly number[],
  ) {
    super(name, help, 'histogram');
  }
  observe(value: number, labels: Labels = {}): void {
    const k = labelText(labels);
    let s = this.series.get(k);
    if (!s) {
      s = { labels, counts: this.buckets.map(() => 0), sum: 0, n: 0 };
      this.series.set(k, s);
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) s.counts[i]!++;
    s.sum += value;
    s.n++;
  }
  lines(): string[] {
    const out: string[] = [];
    for (const s of this.series.values()) {
      this.buckets.forEach((b, i) =>
        out.push(`${this.name}_bucket${labelText({ ...s.labels, le: String(b) })} ${s.counts[i]}`),
      );
      out.push(`${this.name}_bucket${labelText({ ...s.labels, le: '+Inf' })} ${s.n}`);
      out.push(`${this.name}_sum${labelText(s.labels)} ${s.sum}`);
      out.push(`${this.name}_count${labelText(s.labels)} ${s.n}`);
    }
    return out;
  }
}

const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The server's metrics. */
export class ServeMetrics {
  readonly requests = new Counter('goodsrec_http_requests_total', 'HTTP requests by route and status code.');
  readonly errors = new Counter('goodsrec_errors_total', 'Error answers by error code.');
  readonly images = new Counter('goodsrec_images_predicted_total', 'Images classified.');
  readonly requestSeconds = new Histogram('goodsrec_request_duration_seconds', 'POST /v1/predict latency.', SECONDS);
  readonly preprocessSeconds = new Histogram(
    'goodsrec_preprocess_duration_seconds',
    'Decode + eval pipeline time per image.',
    SECONDS,
  );
  readonly inferenceSeconds = new Histogram(
    'goodsrec_inference_duration_seconds',
    'onnxruntime run time per batch.',
    SECONDS,
  );
  readonly batchSize = new Histogram(
    'goodsrec_inference_batch_size',
    'Images per onnxruntime run (micro-batching).',
    [1, 2, 4, 8, 16, 32, 64],
  );
  private readonly all: Metric[];

  constructor(queueLength: () => number) {
    this.all = [
      this.requests,
      this.errors,
      this.images,
      this.requestSeconds,
      this.preprocessSeconds,
      this.inferenceSeconds,
      this.batchSize,
      new Gauge('goodsrec_queue_length', 'Images waiting for inference.', queueLength),
      new Gauge('process_resident_memory_bytes', 'Resident set size.', () => process.memoryUsage.rss()),
    ];
  }

  text(): string {
    return this.all.flatMap((m) => [...m.header(), ...m.lines()]).join('\n') + '\n';
  }
}
