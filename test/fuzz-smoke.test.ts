// A short run of the fuzzer (test/fuzz; the full run under sanitizers is `npm run fuzz`): every parser gets
// a few hundred to a few thousand mutated inputs (seed 13, no sanitizers) and must accept each or refuse it
// with its named error naming the file. GOODSREC_FUZZ_SMOKE=N sets the inputs per parser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { formatStats, fuzzInput, runCampaign, type ParserStats } from './fuzz/campaign.js';
import { allTargets } from './fuzz/targets.js';

const dir = mkdtempSync(join(tmpdir(), 'goodsrec-fuzz-smoke-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
sharp.cache(false);

// Images cost about 10x a text file: fewer of them.
const COUNTS: Record<string, number> = { jpeg: 400, png: 400, safetensors: 1000, pth: 1000 };
const override = Number(process.env['GOODSREC_FUZZ_SMOKE'] ?? 0);
const rows: ParserStats[] = [];

for (const t of allTargets()) {
  test(`fuzz smoke: ${t.name}`, async () => {
    const count = override || (COUNTS[t.name] ?? 2000);
    const s = await runCampaign(t, { seed: 13, start: 0, count, dir });
    rows.push(s);
    assert.equal(s.inputs, count);
    assert.deepEqual(s.findings, [], `${t.name}: inputs that were neither accepted nor refused with a named error`);
    // Both outcomes occur: the mutations reach past the first check, and not everything is refused.
    assert.ok(s.accepted > 0 && s.named > 0, JSON.stringify(s));
  });
}

test('fuzz smoke: inputs are reproducible from (seed, parser, index), and a wrong error counts as a finding', async () => {
  const t = allTargets().find((x) => x.name === 'manifest-json')!;
  assert.deepEqual(fuzzInput(t, 13, 7).bytes, fuzzInput(t, 13, 7).bytes);
  assert.notDeepEqual(fuzzInput(t, 13, 7).bytes, fuzzInput(t, 14, 7).bytes);
  // Negative control: a parser that throws a TypeError (a bad assumption) is reported, not counted as refused.
  const broken = {
    ...t,
    name: 'broken',
    run: (path: string) => {
      if (path.length) throw new TypeError('x is undefined');
    },
  };
  const s = await runCampaign(broken, { seed: 13, start: 0, count: 5, dir });
  assert.equal(s.other, 5);
  assert.equal(s.named, 0);
  writeFileSync(join(dir, 'summary.txt'), formatStats(rows));
  console.log(formatStats(rows));
});
