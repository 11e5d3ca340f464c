// The compiled `goodsrec` command run as a child process, for end-to-end tests.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../fixres-helpers.js';

const cli = join(repoRoot, 'dist', 'src', 'cli', 'main.js');

/** Runs `goodsrec ARGS...` to completion (CI=1: no progress bars). */
export function runCli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, CI: '1' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
