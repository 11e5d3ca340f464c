// Per-parser fuzz counts and their table: no imports, so the runner (scripts/fuzz/run.mjs) can print the table
// without loading the parsers and libtorch into its own process.
export interface ParserStats {
  parser: string;
  inputs: number;
  accepted: number;
  /** Rejected with the parser's own error class, naming the file. */
  named: number;
  /** Any other error, or an accepted input that breaks the parser's promises: a finding. */
  other: number;
  /** Filled in by the runner (scripts/fuzz/run.mjs): processes that died, sanitizer reports. */
  crashes: number;
  sanitizerReports: number;
  seconds: number;
  /** The first findings: input index, error class and message (the input is saved beside). */
  findings: { index: number; error: string; message: string }[];
}

export function formatStats(rows: readonly ParserStats[]): string {
  const head = [
    'parser',
    'inputs',
    'accepted',
    'rejected-named',
    'other-errors',
    'crashes',
    'sanitizer-reports',
    'seconds',
  ];
  const lines = rows.map((r) =>
    [r.parser, r.inputs, r.accepted, r.named, r.other, r.crashes, r.sanitizerReports, r.seconds.toFixed(0)].map(String),
  );
  const widths = head.map((h, k) => Math.max(h.length, ...lines.map((l) => l[k]!.length)));
  return [head, ...lines].map((l) => l.map((c, k) => c.padStart(widths[k]!)).join('  ')).join('\n');
}
