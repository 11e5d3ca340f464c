#!/usr/bin/env node
// Rebuilds examples/grocery-sample from the Grocery Store dataset (MIT,
// Klasson et al., WACV 2019): a small folder-layout subset of packaged
// products for the demo and the integration tests. Files are copied unchanged.
//   node scripts/make-sample.mjs [path/to/grocery-store]
import { copyFileSync, mkdirSync, readdirSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const src = process.argv[2] ?? '../shared/datasets/grocery-store';
const out = 'examples/grocery-sample';
const classes = [
  'Juice/Bravo-Apple-Juice',
  'Milk/Arla-Standard-Milk',
  'Oat-Milk/Oatly-Oat-Milk',
  'Soy-Milk/Alpro-Fresh-Soy-Milk',
  'Yoghurt/Yoggi-Strawberry-Yoghurt',
  'Oatghurt/Oatly-Natural-Oatghurt',
];
const perSplit = { train: 24, test: 10 };

rmSync(out, { recursive: true, force: true });
const lines = [];
for (const [split, n] of Object.entries(perSplit)) {
  for (const c of classes) {
    const name = c.split('/')[1];
    const dir = join(src, 'dataset', split, 'Packages', c);
    const files = readdirSync(dir)
      .filter((f) => f.endsWith('.jpg'))
      .sort()
      .slice(0, n);
    mkdirSync(join(out, split, name), { recursive: true });
    for (const f of files) {
      copyFileSync(join(dir, f), join(out, split, name, f));
      lines.push(`${split}/${name}/${f} <- dataset/${split}/Packages/${c}/${f}`);
    }
  }
}
writeFileSync(join(out, 'SOURCES.txt'), lines.join('\n') + '\n');
copyFileSync(join(src, 'LICENSE'), join(out, 'LICENSE'));
writeFileSync(
  join(out, 'README.md'),
  `# Grocery Store sample

A small subset of the Grocery Store Dataset (Marcus Klasson, Cheng Zhang, Hedvig Kjellström:
"A Hierarchical Grocery Store Image Dataset with Visual and Semantic Labels", WACV 2019),
MIT licence (see LICENSE): ${classes.length} packaged products, ${perSplit.train} training and
${perSplit.test} test photos each, copied unchanged from the dataset's train and test splits
(SOURCES.txt lists every file's origin). Layout: \`<split>/<class>/<image>.jpg\`.

Rebuild with \`node scripts/make-sample.mjs ../shared/datasets/grocery-store\`.
`,
);
console.log(`wrote ${lines.length} images to ${out}`);
