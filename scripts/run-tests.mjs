#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) with node's test runner.
// GOODSREC_TEST_FILTER=substring limits the files.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const filter = process.env.GOODSREC_TEST_FILTER ?? '';
const files = walk('dist/test')
  .filter((f) => f.includes(filter))
  .sort();
if (files.length === 0) {
  console.error(`no test files found under dist/test matching '${filter}'`);
  process.exit(1);
}
// The spec reporter's summary is echoed as a plain 'N passed, N failed' line
// as the very last line, which any CI understands.
const child = spawn(process.execPath, ['--test', '--test-reporter=spec', ...files], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
let pass = 0,
  fail = 0,
  skipped = 0,
  tail = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  const text = tail + chunk.toString('utf8');
  const lines = text.split('\n');
  tail = lines.pop() ?? '';
  for (const line of lines) {
    const m = line.match(/^\S*\s*(pass|fail|skipped) (\d+)$/u);
    if (m) {
      if (m[1] === 'pass') pass = +m[2];
      else if (m[1] === 'fail') fail = +m[2];
      else skipped = +m[2];
    }
  }
});
child.on('close', (code) => {
  console.log(`${pass} passed, ${fail} failed${skipped ? `, ${skipped} skipped` : ''}`);
  process.exit(code ?? 1);
});
