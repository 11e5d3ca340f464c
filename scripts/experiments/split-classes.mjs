#!/usr/bin/env node
// Splits the Grocery Store dataset's 81 fine classes into two disjoint sets for the transfer and gallery
// experiments (docs/finetune.md, docs/gallery.md) and writes goodsrec JSON manifests with absolute paths
// (the dataset itself is only read). Deterministic: a seeded shuffle (mulberry32) within each top-level
// group (Fruit / Packages / Vegetables), so A and B both mix packaged and fresh products.
//   node scripts/experiments/split-classes.mjs [grocery-store] [outdir] [seed]
// A: 55 classes (pretraining / embedding training). B: 26 classes, of which Be (16) are enrolled in the
// gallery, Bc (5) are the "unknown" photos for threshold calibration and Bu (5) are never seen anywhere
// (the open-set test). Writes A.json, B.json, all.json, open-test.json, split.json and the calibration
// folders calib/known/<class>/ and calib/unknown/ (symlinks).
import { readFileSync, writeFileSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { join, resolve, basename } from 'node:path';

const src = resolve(process.argv[2] ?? '../shared/datasets/grocery-store');
const out = resolve(process.argv[3] ?? '/tmp/exp/split');
const seed = Number(process.argv[4] ?? 17);
const nB = 26;
const nBc = 5;
const nBu = 5;

function mulberry32(a) {
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rnd = mulberry32(seed);
const shuffle = (xs) => {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
};

const ds = join(src, 'dataset');
const rows = readFileSync(join(ds, 'classes.csv'), 'utf8')
  .trim()
  .split('\n')
  .slice(1)
  .map((l) => l.split(','));
const classes = rows.map((r) => ({ name: r[0], id: Number(r[1]), group: r[4].split('/')[2] }));
const byId = new Map(classes.map((c) => [c.id, c]));
const samples = [];
for (const split of ['train', 'val', 'test']) {
  for (const line of readFileSync(join(ds, `${split}.txt`), 'utf8')
    .trim()
    .split('\n')) {
    const [p, fine] = line.split(',').map((s) => s.trim());
    samples.push({ path: join(ds, p), class: byId.get(Number(fine)).name, split });
  }
}

// B takes each group's share of 26, rounded; the last group absorbs rounding.
const groups = [...new Set(classes.map((c) => c.group))].sort();
const B = [];
groups.forEach((g, i) => {
  const members = shuffle(
    classes
      .filter((c) => c.group === g)
      .map((c) => c.name)
      .sort(),
  );
  const k = i === groups.length - 1 ? nB - B.length : Math.round((members.length * nB) / classes.length);
  B.push(...members.slice(0, k));
});
const inB = new Set(B);
const A = classes
  .map((c) => c.name)
  .filter((c) => !inB.has(c))
  .sort();
const Bs = shuffle([...B].sort());
const Bc = Bs.slice(0, nBc).sort();
const Bu = Bs.slice(nBc, nBc + nBu).sort();
const Be = Bs.slice(nBc + nBu).sort();

// Enrolment photos: 5 per Be class from its train split (seeded); the 1-photo gallery uses the first of them.
const enrol = {};
for (const c of Be)
  enrol[c] = shuffle(
    samples
      .filter((s) => s.class === c && s.split === 'train')
      .map((s) => s.path)
      .sort(),
  ).slice(0, 5);

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const manifest = (name, keep, splits = ['train', 'val', 'test']) =>
  writeFileSync(
    join(out, name),
    JSON.stringify(
      {
        samples: samples.filter((s) => keep.has(s.class) && splits.includes(s.split)),
      },
      null,
      1,
    ),
  );
manifest('A.json', new Set(A));
manifest('B.json', new Set(B));
manifest('all.json', new Set(classes.map((c) => c.name)));
manifest('open-test.json', new Set([...A, ...Be, ...Bu]), ['test']);
writeFileSync(join(out, 'split.json'), JSON.stringify({ seed, A, B, Be, Bc, Bu, enrol }, null, 1));

// Calibration: known = val photos of the gallery's classes (A + Be); unknown = train+val photos of Bc.
const link = (s, dir) => {
  mkdirSync(dir, { recursive: true });
  symlinkSync(s.path, join(dir, `${s.split}-${basename(s.path)}`));
};
for (const s of samples) {
  if (s.split === 'val' && (A.includes(s.class) || Be.includes(s.class))) link(s, join(out, 'calib', 'known', s.class));
  if (s.split !== 'test' && Bc.includes(s.class)) link(s, join(out, 'calib', 'unknown'));
}
const count = (set, split) => samples.filter((s) => set.includes(s.class) && s.split === split).length;
console.log(
  `seed ${seed}: A ${A.length} classes (${count(A, 'train')} train / ${count(A, 'test')} test photos), ` +
    `B ${B.length} (${count(B, 'train')} / ${count(B, 'test')}): Be ${Be.length}, Bc ${Bc.length}, Bu ${Bu.length}`,
);
console.log(`B  = ${B.sort().join(' ')}`);
console.log(`Bc = ${Bc.join(' ')}\nBu = ${Bu.join(' ')}`);
console.log(`written: ${out}`);
