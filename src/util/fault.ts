// Test-only fault injection for the crash-consistency checks (scripts/crash-consistency.mjs):
// GOODSREC_FAULT=<kind>:<n>:<phase> makes the process SIGKILL itself at <phase> of its n-th
// atomic write of that kind, so the windows inside a write are hit deterministically.
//   file: partial (temp file cut to half its bytes), before-rename (temp complete and fsynced),
//         after-rename (renamed, folder not yet fsynced)
//   dir:  before-rename (temp folder complete), swapped (an existing folder moved aside, the new
//         one not yet in place), after-rename
// Unset (always, outside tests) it costs one comparison per write.
import { ftruncateSync, fstatSync } from 'node:fs';

export type FaultKind = 'file' | 'dir';
const PHASES: Record<FaultKind, readonly string[]> = {
  file: ['partial', 'before-rename', 'after-rename'],
  dir: ['before-rename', 'swapped', 'after-rename'],
};

interface Fault {
  kind: FaultKind;
  n: number;
  phase: string;
}

function parse(text: string | undefined): Fault | null {
  if (!text) return null;
  const m = /^(file|dir):([1-9]\d*):([a-z-]+)$/.exec(text);
  const kind = m?.[1] as FaultKind | undefined;
  if (!m || !kind || !PHASES[kind].includes(m[3]!)) {
    throw new Error(
      `GOODSREC_FAULT: expected file:<n>:${PHASES.file.join('|')} or dir:<n>:${PHASES.dir.join('|')}, got '${text}'`,
    );
  }
  return { kind, n: Number(m[2]), phase: m[3]! };
}

const fault = parse(process.env.GOODSREC_FAULT);
const counts: Record<FaultKind, number> = { file: 0, dir: 0 };

/** Numbers this process's atomic writes of one kind (1, 2, ...); 0 when no fault is set. */
export function faultWriteNumber(kind: FaultKind): number {
  return fault ? ++counts[kind] : 0;
}

/** SIGKILLs the process when (kind, n, phase) is the configured fault; `fd` is cut to half for 'partial'. */
export function faultPoint(kind: FaultKind, n: number, phase: string, fd?: number): void {
  if (!fault || fault.kind !== kind || fault.n !== n || fault.phase !== phase) return;
  if (fd !== undefined && phase === 'partial') ftruncateSync(fd, Math.floor(fstatSync(fd).size / 2));
  process.kill(process.pid, 'SIGKILL');
}
