// Progress output for long jobs: a live bar on a terminal, plain periodic
// lines otherwise (logs, CI), so piped output stays readable.
import cliProgress from 'cli-progress';

export interface StepProgress {
  epoch: number;
  epochs: number;
  step: number;
  steps: number;
  loss: number;
  lr: number;
  imagesPerSec: number;
}

function fmtEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600),
    m = Math.floor((s % 3600) / 60),
    r = s % 60;
  return h ? `${h}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(r).padStart(2, '0')}s` : `${r}s`;
}

export class ProgressReporter {
  private bar: cliProgress.SingleBar | undefined;
  private lastPlain = 0;
  private readonly tty: boolean;
  private readonly started = Date.now();

  constructor(
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly plainEveryMs = 10_000,
  ) {
    this.tty = Boolean(out.isTTY) && process.env.CI === undefined;
  }

  update(p: StepProgress, totalSteps: number, stepsDone: number): void {
    const elapsed = (Date.now() - this.started) / 1000;
    const eta = stepsDone > 0 ? (elapsed / stepsDone) * (totalSteps - stepsDone) : NaN;
    const payload = {
      ep: `${p.epoch + 1}/${p.epochs}`,
      loss: p.loss.toFixed(4),
      lr: p.lr.toPrecision(3),
      ips: p.imagesPerSec.toFixed(1),
      eta2: fmtEta(eta),
    };
    if (this.tty) {
      if (!this.bar) {
        this.bar = new cliProgress.SingleBar(
          {
            format: 'epoch {ep} |{bar}| {value}/{total} | {ips} img/s | loss {loss} | lr {lr} | ETA {eta2}',
            stream: this.out,
            hideCursor: true,
            clearOnComplete: false,
          },
          cliProgress.Presets.shades_classic,
        );
        this.bar.start(p.steps, p.step, payload);
      }
      this.bar.setTotal(p.steps);
      this.bar.update(p.step, payload);
      return;
    }
    const now = Date.now();
    if (now - this.lastPlain >= this.plainEveryMs || p.step === p.steps) {
      this.lastPlain = now;
      this.out.write(
        `epoch ${payload.ep} step ${p.step}/${p.steps} | ${payload.ips} img/s | loss ${payload.loss} | lr ${payload.lr} | ETA ${payload.eta2}\n`,
      );
    }
  }

  /** Prints a line without breaking the bar. */
  log(line: string): void {
    if (this.bar) {
      this.bar.stop();
      this.bar = undefined;
    }
    this.out.write(line + '\n');
  }

  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}
