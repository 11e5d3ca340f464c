// The CLI's one error path: exit codes, the usage error, and how a failure is printed
// (message and hint, no stack trace; GOODSREC_DEBUG=1 prints one).

/** Exit codes of every goodsrec command (also in README's "Exit codes"). */
export const EXIT = {
  ok: 0,
  /** The command failed at run time (a model that does not load, a disk that is full, ...). */
  failure: 1,
  /** Bad command line: unknown option, bad option value, missing argument. Nothing was done. */
  usage: 2,
  /** The command finished, but some inputs were skipped (bad files); they are listed. */
  partial: 3,
  /** Stopped by SIGINT/SIGTERM after saving its state (train). */
  interrupted: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A bad command line: reported with exit code 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Errors that mean "the command line or config was wrong" rather than "the work failed". */
function isUsage(e: Error): boolean {
  // DeviceError (src/tensor/device.ts): --device names a device this machine or build cannot use.
  return e instanceof UsageError || e.name === 'UsageError' || e.name === 'ConfigError' || e.name === 'DeviceError';
}

/** Prints a failure and sets the exit code: 2 for usage and config errors, 1 otherwise. */
export function reportError(e: unknown, command?: string): void {
  const err = e instanceof Error ? e : new Error(String(e));
  if (process.env.GOODSREC_DEBUG) console.error(err.stack ?? err);
  console.error(`goodsrec: ${err.message}`);
  const usage = isUsage(err);
  const hint =
    err instanceof UsageError && err.hint
      ? err.hint
      : usage && err.name !== 'DeviceError'
        ? `see goodsrec ${command ? command + ' ' : ''}--help`
        : undefined;
  if (hint) console.error(`  ${hint}`);
  process.exitCode = usage ? EXIT.usage : EXIT.failure;
}
