// Download progress on stderr: a redrawn bar on a terminal, a line per quarter otherwise.
export interface ByteProgress {
  update(done: number): void;
  end(): void;
}

const mib = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`;

export function byteProgress(
  label: string,
  total: number | null,
  start = 0,
  stream: NodeJS.WriteStream = process.stderr,
): ByteProgress {
  const tty = stream.isTTY === true;
  const t0 = Date.now();
  let lastDraw = 0;
  let lastQuarter = -1;
  let done = start;
  const line = (): string => {
    const secs = Math.max((Date.now() - t0) / 1000, 1e-3);
    const rate = `${mib((done - start) / secs)}/s`;
    if (!total) return `${label}: ${mib(done)} ${rate}`;
    const f = Math.min(1, done / total);
    const w = 24;
    const bar = '#'.repeat(Math.round(f * w)).padEnd(w, '.');
    return `${label}: [${bar}] ${(100 * f).toFixed(0).padStart(3)}% ${mib(done)}/${mib(total)} ${rate}`;
  };
  return {
    update(n) {
      done = n;
      if (tty) {
        if (Date.now() - lastDraw < 100) return;
        lastDraw = Date.now();
        stream.write(`\r${line()}\x1b[K`);
      } else if (total) {
        const q = Math.floor((4 * done) / total);
        if (q > lastQuarter && q < 4) {
          lastQuarter = q;
          stream.write(`${line()}\n`);
        }
      }
    },
    end() {
      stream.write(tty ? `\r${line()}\x1b[K\n` : `${line()}\n`);
    },
  };
}
