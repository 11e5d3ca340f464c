#!/usr/bin/env node
// Scores one gallery on the open-set protocol of docs/gallery.md from `goodsrec eval --gallery --out` JSON
// (run while the gallery has no threshold, so `predicted` is the vote's class for every photo) and the
// threshold `goodsrec gallery calibrate` chose. Groups come from split-classes.mjs's split.json:
// known = test photos of A (built from A's train split) and Be (enrolled with a few photos each);
// never-enrolled = test photos of Bu. Prints one JSON line.
//   node scripts/experiments/gallery-metrics.mjs SPLIT_JSON EVAL_JSON THRESHOLD [label]
import { readFileSync } from 'node:fs';
import { auroc } from '../../dist/src/gallery/recognize.js';

const [splitFile, evalFile, thresholdArg, label = ''] = process.argv.slice(2);
if (!splitFile || !evalFile || thresholdArg === undefined) {
  console.error('usage: gallery-metrics.mjs SPLIT_JSON EVAL_JSON THRESHOLD [label]');
  process.exit(2);
}
const split = JSON.parse(readFileSync(splitFile, 'utf8'));
const ev = JSON.parse(readFileSync(evalFile, 'utf8'));
if (ev.threshold !== null)
  throw new Error(`${evalFile}: evaluated with threshold ${ev.threshold}; evaluate before calibrating`);
const t = Number(thresholdArg);
if (!Number.isFinite(t)) throw new Error(`threshold '${thresholdArg}': not a number (calibrate the gallery first)`);
const group = (c) => (split.A.includes(c) ? 'A' : split.Be.includes(c) ? 'Be' : split.Bu.includes(c) ? 'Bu' : 'other');
const preds = ev.predictions.map((p) => ({ ...p, g: group(p.class) }));
if (preds.some((p) => p.g === 'other'))
  throw new Error(`${evalFile}: photos of classes outside A, Be and Bu (use open-test.json)`);
const of = (g) => preds.filter((p) => g.includes(p.g));
const rate = (xs, f) => (xs.length ? xs.filter(f).length / xs.length : NaN);

const sim = (xs) => xs.map((p) => p.similarity);
const known = of(['A', 'Be']);
const unknown = of(['Bu']);
const r4 = (x) => Math.round(x * 10000) / 10000;
console.log(
  JSON.stringify({
    label,
    photos: { A: of(['A']).length, Be: of(['Be']).length, Bu: unknown.length },
    top1A: r4(rate(of(['A']), (p) => p.predicted === p.class)),
    top1Be: r4(rate(of(['Be']), (p) => p.predicted === p.class)),
    top1Known: r4(rate(known, (p) => p.predicted === p.class)),
    aurocKnown: r4(auroc(sim(known), sim(unknown))),
    aurocA: r4(auroc(sim(of(['A'])), sim(unknown))),
    aurocBe: r4(auroc(sim(of(['Be'])), sim(unknown))),
    threshold: t,
    far: r4(rate(unknown, (p) => p.similarity >= t)),
    frr: r4(rate(known, (p) => p.similarity < t)),
    acceptedRight: r4(rate(known, (p) => p.similarity >= t && p.predicted === p.class)),
  }),
);
