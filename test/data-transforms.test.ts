/**
 * Transforms: deterministic ones against torchvision 0.14 + PIL on real grocery-store images; random
 * ones for reproducibility and for the statistics of their definitions.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import sharp from 'sharp';
import {
  decodeImage,
  parseCsv,
  letterbox,
  resize,
  centerCrop,
  hflipInPlace,
  processFile,
  planRandomErasing,
  planCutout,
  planRandAugment,
  parseRandAugment,
  planRandomResizedCrop,
  finishSample,
  validatePipeline,
  type PipelineConfig,
  type RgbImage,
} from '../src/data/index.js';
import { dctScale } from '../src/data/pil-pixels.js';
import { Rng, deriveSeed } from '../src/util/rng.js';
import { AUGMENT, recipeEval, recipeTrain } from './helpers/recipe.js';
import { GROCERY, diffStats, runTransformOracle, tmpDir, groceryAvailable } from './data-helpers.js';

const IMAGES = [
  'dataset/train/Fruit/Apple/Golden-Delicious/Golden-Delicious_001.jpg', // 348x348
];

async function pickImages(): Promise<string[]> {
  assert.ok(groceryAvailable(), `grocery-store dataset not found at ${GROCERY}`);
  const out = IMAGES.map((p) => join(GROCERY, p));
  // One portrait and one landscape image (348x464, 464x348) from the train list, found by header.
  const lines = parseCsv((await import('node:fs')).readFileSync(join(GROCERY, 'dataset', 'train.txt'), 'utf8'));
  let portrait = '',
    landscape = '';
  for (const l of lines) {
    const p = join(GROCERY, 'dataset', l[0]!.trim());
    const m = await sharp(p).metadata();
    if (!portrait && m.height! > m.width!) portrait = p;
    if (!landscape && m.width! > m.height!) landscape = p;
    if (portrait && landscape) break;
  }
  assert.ok(portrait && landscape, 'need portrait and landscape images in grocery-store train split');
  // An odd-sized PNG made here (odd padding offsets, upscaling path).
  const dir = tmpDir('odd');
  const odd = join(dir, 'odd.png');
  await sharp(portrait).extract({ left: 3, top: 5, width: 171, height: 233 }).png().toFile(odd);
  // A large JPEG (>= 2x the 256 target) so fastDecode really uses libvips shrink-on-load.
  const big = join(dir, 'big.jpg');
  await sharp(landscape).resize(1100, 820).jpeg({ quality: 92 }).toFile(big);
  return [...out, portrait, landscape, odd, big];
}

test('deterministic transforms match torchvision + PIL', async (t) => {
  const images = await pickImages();
  const oracle = runTransformOracle(images);
  const get = (i: number, n: string) => {
    const o = oracle.find((x) => x.index === i && x.name === n);
    assert.ok(o, `oracle output ${i}.${n} missing`);
    return o!;
  };
  for (let i = 0; i < images.length; i++) {
    const img = await decodeImage(images[i]!);
    const dec = get(i, 'decode');
    assert.deepEqual([img.height, img.width, 3], dec.shape);
    // Same libjpeg-turbo family, same IDCT: decoding must agree (tolerance 1 level for rounding).
    const d0 = diffStats(img.data, dec.data, 1);
    assert.ok(d0.maxAbs <= 1 && d0.meanAbs < 0.01, `decode differs from PIL on ${images[i]}: ${JSON.stringify(d0)}`);
    // Compare on PIL's decoded pixels so only the transform is tested.
    const pil: RgbImage = { data: new Uint8Array(dec.data as Uint8Array), width: img.width, height: img.height };

    const lb = letterbox(pil, 256);
    const lbo = get(i, 'letterbox');
    assert.deepEqual([lb.height, lb.width, 3], lbo.shape);
    const dl = diffStats(lb.data, lbo.data);
    assert.equal(dl.maxAbs, 0, `letterbox not bit-exact vs PIL: ${JSON.stringify(dl)}`);

    const rs = centerCrop(resize(pil, 256), 224, 224);
    const rso = get(i, 'resize');
    assert.deepEqual([rs.height, rs.width, 3], rso.shape);
    assert.equal(diffStats(rs.data, rso.data).maxAbs, 0, 'Resize(256)+CenterCrop(224) not bit-exact vs PIL');

    const sq = resize(pil, [200, 160]);
    assert.equal(diffStats(sq.data, get(i, 'squash').data).maxAbs, 0, 'squash resize not bit-exact vs PIL');

    // Bicubic (PIL's a = -0.5 filter): weights whose data config asks for it are evaluated with it.
    // uint8 results within 1 level of PIL (fixed-point rounding), mostly equal; bilinear is the negative
    // control: it must be clearly further from PIL's bicubic than that.
    const bicubic: [string, RgbImage, RgbImage][] = [
      ['letterbox', letterbox(pil, 256, [0, 0, 0], 'bicubic'), letterbox(pil, 256)],
      ['resize', centerCrop(resize(pil, 256, 'shorter', 'bicubic'), 224, 224), centerCrop(resize(pil, 256), 224, 224)],
      ['squash', resize(pil, [200, 160], 'squash', 'bicubic'), resize(pil, [200, 160])],
    ];
    for (const [name, ours, bilinear] of bicubic) {
      const o = get(i, `${name}_bicubic`);
      assert.deepEqual([ours.height, ours.width, 3], o.shape);
      const d = diffStats(ours.data, o.data, 0);
      assert.ok(d.maxAbs <= 1 && d.fracOver < 0.01, `${name} bicubic vs PIL (image ${i}): ${JSON.stringify(d)}`);
      const neg = diffStats(bilinear.data, o.data, 0);
      t.diagnostic(
        `image ${i} ${name} bicubic vs PIL: maxAbs=${d.maxAbs} fracOver0=${d.fracOver.toFixed(5)}; bilinear: maxAbs=${neg.maxAbs}`,
      );
      assert.ok(
        neg.maxAbs > 1,
        `negative control: bilinear ${name} should differ from PIL bicubic (image ${i}): ${JSON.stringify(neg)}`,
      );
    }
    // The run's eval pipeline with a pretrained config's crop_mode 'center' + bicubic, from the file,
    // vs torchvision in normalised units: float32 rounding plus at most one decode level (1/255/std ~ 0.02).
    const evc = await processFile(images[i]!, recipeEval({ input: { resize: 'center', interpolation: 'bicubic' } }), 0);
    const evco = get(i, 'eval_center_bicubic');
    assert.deepEqual([3, evc.height, evc.width], evco.shape);
    const dc = diffStats(evc.data, evco.data, 1e-5);
    assert.ok(
      dc.maxAbs <= 0.021 && dc.meanAbs < 1e-3,
      `center/bicubic eval pipeline vs torchvision: ${JSON.stringify(dc)}`,
    );

    const fl = hflipInPlace({ ...pil, data: new Uint8Array(pil.data) });
    assert.equal(diffStats(fl.data, get(i, 'hflip').data).maxAbs, 0, 'hflip differs');

    // Full eval pipeline from the file (our decoder): float32 after normalize, tolerance 1e-5 plus
    // whatever decoding differs (<= 1 level = 1/255/std ~ 0.02).
    const ev = await processFile(images[i]!, recipeEval(), 0);
    const evo = get(i, 'eval');
    assert.deepEqual([3, ev.height, ev.width], evo.shape);
    const de = diffStats(ev.data, evo.data, 1e-5);
    assert.ok(de.maxAbs <= 0.021 && de.meanAbs < 1e-3, `eval pipeline vs torchvision: ${JSON.stringify(de)}`);

    // Fast decode (libvips letterbox while decoding): within a few levels, stated tolerance.
    const fast = await processFile(images[i]!, recipeEval({}, true), 0);
    const dfst = diffStats(fast.data, evo.data);
    t.diagnostic(
      `image ${i}: fastDecode eval vs torchvision meanAbs=${dfst.meanAbs.toFixed(4)} maxAbs=${dfst.maxAbs.toFixed(3)} (normalised units)`,
    );
    // Stated tolerance for libvips resizing (shrink-on-load, sub-pixel placement of the padding differs):
    // mean |diff| < 0.08 after normalising, about 4 levels of 255; measured 0.06 on the 1100x820 JPEG.
    assert.ok(dfst.meanAbs < 0.08, `fastDecode eval too far from torchvision: ${JSON.stringify(dfst)}`);
  }
});

test('random transforms: same seed, same output; other seed, other output', async () => {
  const img = join(GROCERY, IMAGES[0]!);
  for (const augment of ['none', 'autoaugment', 'randaugment'] as const) {
    const cfg = recipeTrain({ augment: { autoAugment: AUGMENT[augment] } });
    const a = await processFile(img, cfg, deriveSeed(7, 0, 3));
    const b = await processFile(img, cfg, deriveSeed(7, 0, 3));
    const c = await processFile(img, cfg, deriveSeed(7, 1, 3));
    assert.deepEqual([a.width, a.height], [224, 224]);
    assert.equal(diffStats(a.data, b.data).maxAbs, 0, `${augment}: same seed gave different output`);
    assert.ok(diffStats(a.data, c.data).maxAbs > 0, `${augment}: different seeds gave the same output`);
  }
  // uint8 output with erasing: also reproducible and the right layout.
  const cfg: PipelineConfig = {
    ops: [
      { op: 'letterbox', size: 64 },
      { op: 'normalize', mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
      { op: 'randomErasing', p: 1, mode: 'pixel' },
    ],
    output: 'uint8',
  };
  const u1 = await processFile(img, cfg, 11);
  const u2 = await processFile(img, cfg, 11);
  assert.ok(u1.data instanceof Uint8Array && u1.data.length === 64 * 64 * 3);
  assert.equal(diffStats(u1.data, u2.data).maxAbs, 0);
});

test('RandomResizedCrop boxes follow scale and ratio ranges', () => {
  const rng = new Rng(1);
  let minS = 1,
    maxS = 0,
    minR = 99,
    maxR = 0;
  for (let i = 0; i < 20000; i++) {
    const b = planRandomResizedCrop(rng, 300, 400);
    assert.ok(b.x >= 0 && b.y >= 0 && b.x + b.w <= 300 && b.y + b.h <= 400);
    const s = (b.w * b.h) / (300 * 400),
      r = b.w / b.h;
    minS = Math.min(minS, s);
    maxS = Math.max(maxS, s);
    minR = Math.min(minR, r);
    maxR = Math.max(maxR, r);
  }
  // Rounding w and h to integers moves the bounds slightly.
  assert.ok(minS > 0.075 && minS < 0.09, `min area fraction ${minS}`);
  assert.ok(maxS > 0.95 && maxS <= 1, `max area fraction ${maxS}`);
  assert.ok(minR > 0.73 && minR < 0.76 && maxR > 1.31 && maxR < 1.36, `ratio range ${minR}..${maxR}`);
});

test('Random Erasing: probability, area and aspect ranges (timm semantics)', () => {
  const rng = new Rng(2);
  const N = 20000,
    H = 224,
    W = 224;
  let erased = 0;
  const areas: number[] = [];
  let minR = 99,
    maxR = 0;
  for (let i = 0; i < N; i++) {
    const p = planRandomErasing(rng, { p: 0.25, scale: [0.02, 1 / 3], ratio: [0.3, 1 / 0.3] }, H, W);
    if (p.rects.length) erased++;
    for (const r of p.rects) {
      assert.ok(r.top >= 0 && r.left >= 0 && r.top + r.h <= H && r.left + r.w <= W);
      areas.push((r.h * r.w) / (H * W));
      minR = Math.min(minR, r.h / r.w);
      maxR = Math.max(maxR, r.h / r.w);
    }
  }
  const rate = erased / N;
  assert.ok(Math.abs(rate - 0.25) < 0.015, `erasing rate ${rate}, expected 0.25`);
  assert.ok(
    Math.min(...areas) >= 0.018 && Math.max(...areas) <= 0.34,
    `area range ${Math.min(...areas)}..${Math.max(...areas)}`,
  );
  const mean = areas.reduce((a, b) => a + b, 0) / areas.length;
  // Uniform on [0.02, 1/3] has mean 0.177; large, very elongated draws are rejected, lowering it a bit.
  assert.ok(mean > 0.15 && mean < 0.18, `mean erased area ${mean}`);
  assert.ok(minR < 0.35 && maxR > 2.8 && minR >= 0.28 && maxR <= 3.6, `aspect range ${minR}..${maxR}`);
  // Cutout: squares of side <= length, clipped at the borders, centre uniform.
  const rects = Array.from({ length: 5000 }, () => planCutout(rng, 14, 1, H, W)[0]!);
  assert.ok(rects.every((r) => r.h <= 14 && r.w <= 14 && r.top >= 0 && r.left + r.w <= W));
  const full = rects.filter((r) => r.h === 14 && r.w === 14).length / rects.length;
  assert.ok(Math.abs(full - ((224 - 14) / 224) ** 2) < 0.03, `fraction of unclipped cutout squares ${full}`);
});

test('RandAugment rand-m9-mstd0.5-inc1: op probability and magnitude noise', () => {
  const cfg = parseRandAugment('rand-m9-mstd0.5-inc1');
  assert.deepEqual(cfg, { magnitude: 9, numLayers: 2, magnitudeStd: 0.5, magnitudeMax: 10, increasing: true });
  assert.throws(() => parseRandAugment('rand-x9'), /unknown section 'x'/);
  const rng = new Rng(3);
  const mags: number[] = [];
  let ops = 0,
    applied = 0;
  const names = new Set<string>();
  for (let i = 0; i < 20000; i++) {
    for (const s of planRandAugment(rng, cfg, [224, 224])) {
      ops++;
      names.add(s.name);
      if (s.applied) {
        applied++;
        mags.push(s.magnitude);
      }
    }
  }
  assert.equal(ops, 40000);
  assert.equal(names.size, 15);
  assert.ok(names.has('PosterizeIncreasing') && !names.has('Posterize'));
  assert.ok(Math.abs(applied / ops - 0.5) < 0.01, `apply rate ${applied / ops}`);
  const mean = mags.reduce((a, b) => a + b, 0) / mags.length;
  const sd = Math.sqrt(mags.reduce((a, b) => a + (b - mean) ** 2, 0) / mags.length);
  assert.ok(mags.every((m) => m >= 0 && m <= 10));
  assert.ok(Math.abs(mean - 9) < 0.02, `magnitude mean ${mean}`);
  assert.ok(sd > 0.46 && sd < 0.51, `magnitude std ${sd} (0.5, slightly less after clipping at 10)`);
});

test('pipeline config validation names the op and field', () => {
  assert.throws(
    () => validatePipeline({ ops: [{ op: 'hflip', p: 2 }] }),
    /Expected a probability in \[0, 1\] for pipeline\.ops\[0\]\.p but received 2/,
  );
  assert.throws(() => validatePipeline({ ops: [{ op: 'cutout', length: 14 }] }), /put a 'normalize' op before them/);
  assert.throws(
    () => validatePipeline({ ops: [{ op: 'normalize', mean: [0, 0, 0], std: [1, 1, 1] }, { op: 'hflip' }] }),
    /must come before 'normalize'/,
  );
  assert.throws(() => validatePipeline({ ops: [{ op: 'blur' } as never] }), /known op/);
  // JSON round trip keeps behaviour: the config is plain data.
  const cfg = recipeTrain({ augment: { autoAugment: AUGMENT.randaugment } });
  const back = JSON.parse(JSON.stringify(cfg)) as PipelineConfig;
  validatePipeline(back);
  const img: RgbImage = { data: new Uint8Array(300 * 200 * 3).map((_, i) => (i * 7) & 255), width: 300, height: 200 };
  const a = finishSample(img, cfg, new Rng(5), 0),
    b = finishSample(img, back, new Rng(5), 0);
  assert.equal(diffStats(a.data, b.data).maxAbs, 0);
  writeFileSync(join(tmpDir('cfg'), 'pipeline.json'), JSON.stringify(back));
});

test('fused letterbox + RandomResizedCrop stays close to the literal two-step path', async () => {
  const images = await pickImages();
  for (const p of images.slice(1, 4)) {
    // portrait, landscape, odd: the crop often covers padding
    const img = await decodeImage(p);
    const base: PipelineConfig = {
      ops: [
        { op: 'letterbox', size: 224 },
        { op: 'randomResizedCrop', size: 224, scale: [0.08, 1] },
      ],
      output: 'uint8',
    };
    let meanSum = 0;
    for (let s = 0; s < 12; s++) {
      const fused = finishSample(img, base, new Rng(s), 0);
      const exact = finishSample(img, { ...base, exact: true }, new Rng(s), 0);
      assert.deepEqual([fused.width, fused.height], [224, 224]);
      meanSum += diffStats(fused.data, exact.data).meanAbs;
    }
    // Same crop box; one interpolation instead of two differs by a few levels on average.
    assert.ok(meanSum / 12 < 4, `fused vs two-step mean abs diff ${meanSum / 12} levels on ${p}`);
  }
});

test('fast decoding of a random crop keeps a reducing gap: training pixels stay close to full decoding', async (t) => {
  // DCT reduction to just the output size softened training crops (about 0.9 levels mean |diff| from
  // full decoding at 64 px) and cost accuracy (docs/speed.md); with the default gap of 2 the filter
  // does the last 2x. The literal, fully decoded path is the reference; gap 1 is the negative control.
  assert.equal(dctScale(348, 348, 64, 64), 4);
  assert.equal(dctScale(348, 348, 64, 64, 2), 2);
  assert.equal(dctScale(348, 348, 64, 64, 3), 1);
  const images = (await pickImages()).filter((p) => p.endsWith('.jpg'));
  const ops: PipelineConfig['ops'] = [{ op: 'letterbox' }, { op: 'randomResizedCrop', size: 64, scale: [0.08, 1] }];
  const samples = images.flatMap((p) => Array.from({ length: 24 }, (_, seed) => ({ p, seed })));
  const reference = await Promise.all(
    samples.map(({ p, seed }) => processFile(p, { ops, output: 'uint8', exact: true }, seed)),
  );
  const meanAbs = async (cfg: PipelineConfig): Promise<number> => {
    let sum = 0;
    for (const [i, { p, seed }] of samples.entries())
      sum += diffStats((await processFile(p, { ...cfg, output: 'uint8' }, seed)).data, reference[i]!.data).meanAbs;
    return sum / samples.length;
  };
  const byDefault = await meanAbs({ ops, fastDecode: true });
  const gap1 = await meanAbs({ ops, fastDecode: true, reducingGap: 1 });
  t.diagnostic(`mean |diff| from full decoding: default gap ${byDefault.toFixed(3)}, gap 1 ${gap1.toFixed(3)} levels`);
  assert.ok(byDefault < 0.45, `default reducing gap: mean |diff| from full decoding ${byDefault.toFixed(3)} levels`);
  assert.ok(gap1 > 0.45, `negative control: gap 1 should be further from full decoding, got ${gap1.toFixed(3)}`);
  assert.throws(() => validatePipeline({ ops, reducingGap: 0.5 }), /pipeline\.reducingGap/);
});

test('a flip deferred into normalisation equals flipping first', () => {
  const img: RgbImage = {
    data: new Uint8Array(37 * 23 * 3).map((_, i) => (i * 31 + (i >> 5)) & 255),
    width: 37,
    height: 23,
  };
  const norm = { op: 'normalize', mean: [0.4, 0.5, 0.6], std: [0.2, 0.3, 0.25] } as const;
  const jitter = { op: 'colorJitter', brightness: 0.4, contrast: 0.4, saturation: 0.4 } as const;
  const deferred = finishSample(
    img,
    { ops: [{ op: 'hflip', p: 1 }, jitter, { ...norm, mean: [...norm.mean], std: [...norm.std] }] },
    new Rng(9),
    0,
  );
  const flipped = hflipInPlace({ ...img, data: new Uint8Array(img.data) });
  const rng = new Rng(9);
  rng.random(); // the flip's draw
  const direct = finishSample(
    flipped,
    { ops: [jitter, { ...norm, mean: [...norm.mean], std: [...norm.std] }] },
    rng,
    0,
  );
  assert.equal(diffStats(deferred.data, direct.data).maxAbs, 0);
});
