// How the CLI reports a user-facing failure: the message and a hint, no stack
// trace (set GOODSREC_DEBUG=1 for one), exit code 1.
export function fail(message: string, hint?: string): void {
  console.error(`goodsrec: ${message}`);
  if (hint) console.error(`  ${hint}`);
  process.exitCode = 1;
}
