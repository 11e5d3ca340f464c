#!/usr/bin/env node
// A synthetic retail dataset shaped like RP2K (issue 28, item 1), for measuring goodsrec at scale. Deterministic
// from --seed: the same arguments give the same folder tree, byte for byte.
//
//   node scripts/make-rp2k-like.mjs --scale 0.01|0.1|1 [--out DIR] [--classes 2388] [--test-per-class N]
//       [--seed 28] [--workers <cores>]
//
// Layout `OUT/all/{train,test}/<class>/<nnnnn>.jpg` (RP2K's) and `OUT/key.json`. Default OUT:
// /work/exp/rp2k/data-<scale>[-c<classes>] - never inside the repository.
//   - 2,388 classes (`--classes` for fewer) with Unicode names: CJK brands, full-width brackets and spaces,
//     Latin and accented names, one `others`. Names are unique and NFC.
//   - Long-tailed train counts at --scale 1: head 600, about 100 at the median, tail 10 photos (piecewise
//     log-linear over the class rank), about 300k train photos + 13 % test, about 340k in all. --scale
//     multiplies every count (at least 1 train and 1 test photo per class); --classes K samples the same
//     profile at K ranks and multiplies it by 2388/K, so the total stays --scale x 340k.
//     `--test-per-class N` makes the test split balanced (N per class) instead of proportional.
//   - Fine-grained families of 2-8 classes sharing a template (shape, body colour, aspect ratio 1:1 to 1:4,
//     label place) and differing in small details: a colour band, the label's stripes, the cap.
//   - Photos of 64-256 px (long side 96-256), background, position, scale, light and noise varied per photo.
//   - Planted faults, listed in key.json: exact duplicates (a test photo byte-identical to a train photo of
//     the same class, about 0.5 % of the test split) and about 1 % wrong labels (a photo rendered from
//     another class, mostly a sibling of its family, filed under this one).
// Resumable: a photo whose file exists is not rendered again (files are written to a temp name and renamed).
// Uses worker threads (one per core) and sharp for the JPEG encoding.
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

const RP2K_CLASSES = 2388;
const TEST_SHARE = 0.13;

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A 32-bit hash of a few integers (seeds per class and per photo, independent of the worker split). */
function hash(...xs) {
  let h = 0x811c9dc5;
  for (const x of xs) {
    h = Math.imul(h ^ (x >>> 0), 0x01000193);
    h ^= h >>> 13;
    h = Math.imul(h, 0x5bd1e995);
    h ^= h >>> 15;
  }
  return h >>> 0;
}

/** Train photos of the class at rank quantile q in [0, 1] at scale 1 (2,388 classes). */
function profile(q) {
  // Piecewise log-linear: 600 -> 300 over the top 5 %, 300 -> 100 to the median, 100 -> 10 to the tail.
  const seg = [
    [0, 600],
    [0.05, 300],
    [0.5, 100],
    [1, 10],
  ];
  for (let i = 1; i < seg.length; i++) {
    const [q0, c0] = seg[i - 1];
    const [q1, c1] = seg[i];
    if (q <= q1) return Math.exp(Math.log(c0) + ((q - q0) / (q1 - q0)) * (Math.log(c1) - Math.log(c0)));
  }
  return 10;
}

// ---------------------------------------------------------------------------------------------------------
// The plan: classes, families, counts, planted faults. Computed in the main thread only, cheap.

const CJK_POOL =
  '康师傅统一农夫山泉可口乐百事雪碧芬达王老吉加多宝娃哈哈旺仔牛奶蒙牛伊利光明三元达利园好丽友乐事薯片奥利奥饼干趣多多德芙巧克力士力架益达口香糖绿箭清风心相印维达纸巾洁柔舒肤佳沐浴露海飞丝洗发水飘柔潘婷高露洁牙膏黑人云南白药金龙鱼福临门鲁花花生油海天酱油老干妈辣椒酱李锦记蚝油太太乐鸡精红烧牛肉面老坛酸菜香辣味原味草莓香草柠檬苹果橙汁葡萄桃子菠萝西瓜哈密瓜蓝莓芒果椰子绿茶红茶乌龙冰糖雪梨酸梅汤凉茶矿泉水苏打气泡低糖无糖';
const LATIN_WORDS = [
  'Fresh',
  'Classic',
  'Crisp',
  'Golden',
  'Zero',
  'Light',
  'Royal',
  'Nordic',
  'Ärla',
  'Crème',
  'Délice',
  'Ñame',
  'Öko',
  'Süß',
];
const SIZES = ['330ml', '500ml', '550ml', '1.25L', '2L', '250g', '100g', '45g', '12包', '6罐', '24瓶', '家庭装'];
const PACKS = ['瓶装', '罐装', '袋装', '盒装', '桶装', '杯装'];
const SHAPES = ['bottle', 'can', 'box', 'bag'];
const PALETTE = [
  [220, 30, 40],
  [30, 120, 210],
  [40, 170, 70],
  [250, 200, 30],
  [240, 120, 20],
  [140, 60, 170],
  [20, 20, 20],
  [245, 245, 245],
  [0, 160, 170],
  [200, 80, 140],
];

function pick(r, xs) {
  return xs[Math.floor(r() * xs.length)];
}

function makePlan({ scale, classes: K, testPerClass, seed }) {
  const r = rng(hash(seed, 1));
  const cjk = [...CJK_POOL];
  // Families of 2-8 classes; each family is one brand and one template.
  const families = [];
  for (let n = 0; n < K; ) {
    const size = Math.min(K - n, 2 + Math.floor(r() * 7));
    const latin = r() < 0.15;
    const brand = latin
      ? `${pick(r, LATIN_WORDS)} ${pick(r, LATIN_WORDS)}`
      : Array.from({ length: 2 + Math.floor(r() * 3) }, () => pick(r, cjk)).join('');
    const shape = pick(r, SHAPES);
    // Aspect h/w from 1 (boxes, bags) to 4 (tall bottles, cans).
    const aspect = shape === 'bottle' ? 2 + r() * 2 : shape === 'can' ? 1.5 + r() * 1.5 : 1 + r() * 1.2;
    families.push({
      brand,
      shape,
      aspect,
      longSide: 96 + Math.floor(r() * 161),
      body: Math.floor(r() * PALETTE.length),
      labelTop: 0.3 + r() * 0.25,
      labelH: 0.25 + r() * 0.15,
      logo: Math.floor(r() * PALETTE.length),
      first: n,
      size,
    });
    n += size;
  }
  const names = new Set();
  const classes = [];
  families.forEach((f, fi) => {
    for (let j = 0; j < f.size; j++) {
      // Siblings differ in one or two small details: band colour, label stripes (bits), cap colour.
      const detail = {
        band: (f.body + 1 + ((j * 3) % (PALETTE.length - 1))) % PALETTE.length,
        bits: (hash(seed, fi, j) & 0x3f) | 1,
        cap: (j + fi) % PALETTE.length,
      };
      let name;
      do {
        const flavour = Array.from({ length: 1 + Math.floor(r() * 3) }, () => pick(r, cjk)).join('');
        const style = r();
        name =
          style < 0.5
            ? `${f.brand}${flavour}（${pick(r, PACKS)}）${pick(r, SIZES)}`
            : style < 0.8
              ? `${f.brand} ${flavour} ${pick(r, SIZES)}`
              : `${f.brand}-${flavour}味 ${pick(r, SIZES)}×${1 + Math.floor(r() * 24)}`;
        name = name.normalize('NFC');
      } while (names.has(name));
      names.add(name);
      classes.push({ name, family: fi, ...detail });
    }
  });
  classes[K - 1].name = 'others'; // RP2K has one catch-all class
  // Counts: the profile over a seeded order of the classes, so the tail is not one family or one letter.
  const order = Array.from({ length: K }, (_, i) => i);
  for (let i = K - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const mult = (scale * RP2K_CLASSES) / K;
  order.forEach((c, rank) => {
    const full = profile(K === 1 ? 0 : rank / (K - 1)) * mult;
    classes[c].train = Math.max(1, Math.round(full));
    classes[c].test = testPerClass ?? Math.max(1, Math.round(full * TEST_SHARE));
  });
  // Photos: [split, class, index, render-as class, render seed].
  const photos = [];
  const wrong = [];
  const dups = [];
  const rf = rng(hash(seed, 2));
  classes.forEach((c, ci) => {
    for (const split of ['train', 'test']) {
      for (let i = 0; i < c[split]; i++) {
        let as = ci;
        let pseed = hash(seed, ci, split === 'train' ? 0 : 1, i);
        const u = rf();
        if (u < 0.01) {
          // A wrong label: mostly a look-alike from the same family, otherwise any class.
          const fam = families[c.family];
          as =
            fam.size > 1 && rf() < 0.7
              ? fam.first + ((ci - fam.first + 1 + Math.floor(rf() * (fam.size - 1))) % fam.size)
              : Math.floor(rf() * K);
          if (as !== ci) wrong.push({ path: photoPath(split, c.name, i), label: c.name, truth: classes[as].name });
        } else if (split === 'test' && u < 0.015 && c.train > 0) {
          // An exact duplicate of one of this class's train photos: the same render seed gives the same bytes.
          const src = Math.floor(rf() * c.train);
          // This class's train photos are the c.train entries pushed just before its test photos.
          const srcPhoto = photos[photos.length - i - c.train + src];
          if (srcPhoto.as === ci) {
            pseed = srcPhoto.seed;
            dups.push({ test: photoPath(split, c.name, i), train: photoPath('train', c.name, src) });
          }
        }
        photos.push({ split, cls: ci, i, as, seed: pseed });
      }
    }
  });
  return { families, classes, photos, wrong, dups };
}

function photoPath(split, cls, i) {
  return `all/${split}/${cls}/${String(i).padStart(5, '0')}.jpg`;
}

// ---------------------------------------------------------------------------------------------------------
// Rendering: raw RGB drawn in JS, encoded by sharp.

function render(fam, cls, seed) {
  const r = rng(seed);
  const aspect = fam.aspect * (0.9 + r() * 0.2);
  const H = Math.round(fam.longSide * (0.9 + r() * 0.2));
  const W = Math.max(32, Math.round(H / Math.min(4, Math.max(1, aspect))));
  const px = new Uint8Array(W * H * 3);
  const light = 0.7 + r() * 0.5;
  const cast = [0.9 + r() * 0.2, 0.9 + r() * 0.2, 0.9 + r() * 0.2];
  const bg = [r() * 200 + 30, r() * 200 + 30, r() * 200 + 30];
  const bgGrad = r() * 60 - 30;
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) {
      const o = (y * W + x) * 3;
      const g = (bgGrad * y) / H;
      px[o] = bg[0] + g;
      px[o + 1] = bg[1] + g;
      px[o + 2] = bg[2] + g;
    }
  // The product: 75-95 % of the height, a little off-centre.
  const ph = H * (0.75 + r() * 0.2);
  const pw = Math.min(W * 0.95, ph / fam.aspect) * (0.9 + r() * 0.15);
  const x0 = (W - pw) / 2 + (r() - 0.5) * (W - pw) * 0.8;
  const y0 = (H - ph) / 2 + (r() - 0.5) * (H - ph) * 0.8;
  const rect = (fx0, fy0, fx1, fy1, col) => {
    const ax = Math.max(0, Math.round(x0 + fx0 * pw)),
      bx = Math.min(W, Math.round(x0 + fx1 * pw));
    const ay = Math.max(0, Math.round(y0 + fy0 * ph)),
      by = Math.min(H, Math.round(y0 + fy1 * ph));
    for (let y = ay; y < by; y++)
      for (let x = ax; x < bx; x++) {
        const o = (y * W + x) * 3;
        px[o] = col[0];
        px[o + 1] = col[1];
        px[o + 2] = col[2];
      }
  };
  const body = PALETTE[fam.body];
  if (fam.shape === 'bottle') {
    rect(0.35, 0, 0.65, 0.08, PALETTE[cls.cap]); // cap
    rect(0.3, 0.08, 0.7, 0.2, body); // neck
    rect(0, 0.2, 1, 1, body);
  } else if (fam.shape === 'can') {
    rect(0.05, 0, 0.95, 0.05, PALETTE[cls.cap]);
    rect(0, 0.05, 1, 1, body);
  } else {
    rect(0, 0, 1, 1, body);
    rect(0, 0, 1, 0.06, PALETTE[cls.cap]);
  }
  // The label with six stripes (the class's bits) and the family's logo block.
  const lt = fam.labelTop,
    lh = fam.labelH;
  rect(0.08, lt, 0.92, lt + lh, [235, 235, 225]);
  for (let b = 0; b < 6; b++)
    if ((cls.bits >> b) & 1) rect(0.12 + b * 0.13, lt + lh * 0.45, 0.2 + b * 0.13, lt + lh * 0.9, [30, 30, 30]);
  rect(0.3, lt + lh * 0.08, 0.7, lt + lh * 0.38, PALETTE[fam.logo]);
  rect(0, lt + lh + 0.04, 1, lt + lh + 0.1, PALETTE[cls.band]); // the colour band
  // Light, colour cast and sensor noise.
  let n = seed | 1;
  for (let o = 0; o < px.length; o += 3)
    for (let k = 0; k < 3; k++) {
      n ^= n << 13;
      n ^= n >>> 17;
      n ^= n << 5;
      const v = px[o + k] * light * cast[k] + ((n & 31) - 16);
      px[o + k] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  return { px, W, H };
}

async function workerMain() {
  const { default: sharp } = await import('sharp');
  sharp.concurrency(1);
  const { out, plan, from, to } = workerData;
  let done = 0,
    skipped = 0;
  for (let k = from; k < to; k++) {
    const p = plan.photos[k];
    const c = plan.classes[p.cls];
    const file = join(out, photoPath(p.split, c.name, p.i));
    if (existsSync(file)) {
      skipped++;
    } else {
      const as = plan.classes[p.as];
      const { px, W, H } = render(plan.families[as.family], as, p.seed);
      const buf = await sharp(px, { raw: { width: W, height: H, channels: 3 } })
        .jpeg({ quality: 85 })
        .toBuffer();
      const tmp = `${file}.tmp-${process.pid}`;
      writeFileSync(tmp, buf);
      renameSync(tmp, file);
      done++;
    }
    if ((done + skipped) % 500 === 0) parentPort.postMessage({ done, skipped, final: false });
  }
  parentPort.postMessage({ done, skipped, final: true });
}

async function main() {
  const { values: o } = parseArgs({
    options: {
      scale: { type: 'string', default: '0.01' },
      classes: { type: 'string', default: String(RP2K_CLASSES) },
      'test-per-class': { type: 'string' },
      seed: { type: 'string', default: '28' },
      out: { type: 'string' },
      workers: { type: 'string', default: String(availableParallelism()) },
    },
  });
  const scale = Number(o.scale);
  const K = Number(o.classes);
  const seed = Number(o.seed);
  const testPerClass = o['test-per-class'] === undefined ? undefined : Number(o['test-per-class']);
  if (!(scale > 0 && scale <= 1)) throw new Error(`--scale: expected a number in (0, 1] but received ${o.scale}`);
  if (!(Number.isInteger(K) && K >= 2 && K <= RP2K_CLASSES))
    throw new Error(`--classes: expected an integer in [2, ${RP2K_CLASSES}] but received ${o.classes}`);
  if (!Number.isInteger(seed)) throw new Error(`--seed: expected an integer but received ${o.seed}`);
  if (testPerClass !== undefined && !(Number.isInteger(testPerClass) && testPerClass >= 1))
    throw new Error(`--test-per-class: expected an integer >= 1 but received ${o['test-per-class']}`);
  const out =
    o.out ??
    `/work/exp/rp2k/data-${o.scale}${K === RP2K_CLASSES ? '' : `-c${K}`}${testPerClass ? `-t${testPerClass}` : ''}`;
  const t0 = Date.now();
  const plan = makePlan({ scale, classes: K, testPerClass, seed });
  for (const c of plan.classes)
    for (const split of ['train', 'test']) mkdirSync(join(out, 'all', split, c.name), { recursive: true });
  const counts = (split) => plan.classes.reduce((s, c) => s + c[split], 0);
  const key = {
    generator: 'scripts/make-rp2k-like.mjs',
    seed,
    scale,
    classes: K,
    photos: { train: counts('train'), test: counts('test') },
    trainCounts: Object.fromEntries(plan.classes.map((c) => [c.name, c.train])),
    families: plan.families.map((f) => plan.classes.slice(f.first, f.first + f.size).map((c) => c.name)),
    duplicates: plan.dups,
    wrongLabels: plan.wrong,
  };
  writeFileSync(join(out, 'key.json'), JSON.stringify(key, null, 1));
  const n = plan.photos.length;
  const W = Math.max(1, Math.min(Number(o.workers), n));
  console.log(
    `${out}: ${K} classes, ${key.photos.train} train + ${key.photos.test} test photos, ` +
      `${plan.dups.length} planted duplicates, ${plan.wrong.length} wrong labels; ${W} workers`,
  );
  const progress = new Array(W).fill(0);
  let last = 0;
  const results = await Promise.all(
    Array.from({ length: W }, (_, w) => {
      const from = Math.floor((n * w) / W),
        to = Math.floor((n * (w + 1)) / W);
      return new Promise((res, rej) => {
        const worker = new Worker(new URL(import.meta.url), { workerData: { out, plan, from, to } });
        worker.on('message', (m) => {
          progress[w] = m.done + m.skipped;
          const all = progress.reduce((a, b) => a + b, 0);
          if (Date.now() - last > 10_000) {
            last = Date.now();
            console.log(`  ${all}/${n} photos, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
          }
          if (m.final) res(m);
        });
        worker.on('error', rej);
        worker.on('exit', (code) => code !== 0 && rej(new Error(`worker ${w} exited with ${code}`)));
      });
    }),
  );
  const done = results.reduce((s, m) => s + m.done, 0),
    skipped = results.reduce((s, m) => s + m.skipped, 0);
  console.log(`done: ${done} written, ${skipped} already there, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

if (isMainThread) await main();
else await workerMain();
