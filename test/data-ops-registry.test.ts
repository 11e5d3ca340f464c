// The transform op registry (src/data/ops/): every op allowed at eval time can be run by the browser
// page, and its browser version gives the server's tensor bit for bit; the page's module graph has no
// import a browser cannot follow; the pipeline validator dispatches through the registry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { finishSample, validatePipeline, type PipelineConfig, type RgbImage } from '../src/data/index.js';
import { OP_LIST, findOp, registryProblems, type OpName, type TransformOp } from '../src/data/ops/registry.js';
import type { OpSpec, OpOptions } from '../src/data/ops/op.js';
import { evalTensor } from '../src/serve/web-preprocess.js';
import { webModuleGraph } from '../src/serve/web-modules.js';
import { Rng } from '../src/util/rng.js';

const NORMALIZE: TransformOp = { op: 'normalize', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

/** Options that exercise each eval op (a new eval op must add its own here: the first test asks for it). */
const EVAL_EXAMPLES: Partial<Record<OpName, TransformOp[]>> = {
  letterbox: [
    { op: 'letterbox', size: 40, fill: [10, 200, 30] },
    { op: 'letterbox', size: 29, interpolation: 'bicubic' },
    { op: 'letterbox' },
  ],
  resize: [
    { op: 'resize', size: 20 },
    { op: 'resize', size: 31, mode: 'squash', interpolation: 'bicubic' },
    { op: 'resize', size: [17, 45] },
  ],
  centerCrop: [
    { op: 'centerCrop', size: 21 },
    { op: 'centerCrop', size: [60, 13] },
  ],
  normalize: [NORMALIZE],
};

/** A 53 x 37 image whose pixels vary in every channel (odd sizes: odd padding and crop offsets). */
function pattern(): RgbImage {
  const rng = new Rng(11);
  const width = 53,
    height = 37;
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (((i * 37) % 251) + rng.int(0, 5)) & 255;
  return { data, width, height };
}

/** The server's float32 tensor for `ops` (+ normalize) on `img`. */
function serverTensor(img: RgbImage, ops: TransformOp[]): Float32Array {
  const cfg: PipelineConfig = { ops: ops.at(-1)?.op === 'normalize' ? ops : [...ops, NORMALIZE] };
  const out = finishSample(img, cfg, new Rng(1), 0);
  assert.ok(out.data instanceof Float32Array);
  return out.data;
}

/** The page's float32 tensor for the same pipeline. */
function pageTensor(img: RgbImage, ops: TransformOp[]): Float32Array {
  const cfg: PipelineConfig = { ops: ops.at(-1)?.op === 'normalize' ? ops : [...ops, NORMALIZE] };
  return evalTensor(img, cfg, { jpeg: false, orientation: 1 });
}

/** Largest absolute difference (infinite when the lengths differ). */
function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('the registry: names unique, one normalize, and every eval-time op runnable by the browser page', () => {
  assert.ok(OP_LIST.length >= 11, `expected the 11 ops of the recipe, got ${OP_LIST.length}`);
  assert.deepEqual(registryProblems(OP_LIST), []);
  for (const s of OP_LIST) {
    assert.equal(findOp(s.name), s, `findOp('${s.name}')`);
    if (s.eval) {
      assert.notEqual(s.browser, 'server-only', `${s.name}: eval-time op without a browser implementation`);
      assert.ok(EVAL_EXAMPLES[s.name]?.length, `${s.name}: eval-time op without examples in this test`);
    }
  }
  assert.equal(findOp('toString'), undefined, 'only registered names are ops');
});

test('negative control: a synthetic eval-time op without a browser implementation fails the registry check', () => {
  const letterbox = findOp('letterbox') as OpSpec<OpOptions>;
  const sharpen: OpSpec<OpOptions> = { ...letterbox, name: 'sharpen', browser: 'server-only' };
  const problems = registryProblems([...OP_LIST, sharpen]);
  assert.equal(problems.length, 1, problems.join('\n'));
  assert.match(problems[0]!, /'sharpen' is allowed at eval time but is server-only/);
  // The other ways an eval-time op would break the page are caught too.
  const random: OpSpec<OpOptions> = { ...letterbox, name: 'jitter', deterministic: false };
  const late: OpSpec<OpOptions> = { ...letterbox, name: 'late', stage: 'normalized' };
  assert.deepEqual(
    registryProblems([...OP_LIST, random, late, letterbox as OpSpec<OpOptions>]).map((p) => p.split(' ')[0]),
    ["'jitter'", "'late'", "'letterbox'"],
  );
  // A train-only op may well be server-only.
  assert.deepEqual(registryProblems([...OP_LIST, { ...sharpen, eval: false }]), []);
});

test("every eval-time op's browser version gives the server's tensor bit for bit", () => {
  const img = pattern();
  for (const s of OP_LIST.filter((x) => x.eval)) {
    for (const o of EVAL_EXAMPLES[s.name] ?? []) {
      const server = serverTensor(img, [o]);
      const page = pageTensor(img, [o]);
      assert.equal(maxAbsDiff(server, page), 0, `${JSON.stringify(o)}: page differs from the server`);
    }
  }
  // Chained, as evalPipeline builds them.
  const chain: TransformOp[] = [
    { op: 'letterbox', size: 48, fill: 'black' },
    { op: 'centerCrop', size: 42 },
    NORMALIZE,
  ];
  assert.equal(maxAbsDiff(serverTensor(img, chain), pageTensor(img, chain)), 0);
  // Negative control: the same comparison sees a one-level change of the fill colour.
  const other = serverTensor(img, [{ op: 'letterbox', size: 40, fill: [10, 201, 30] }]);
  const d = maxAbsDiff(other, pageTensor(img, [{ op: 'letterbox', size: 40, fill: [10, 200, 30] }]));
  assert.ok(d > 0 && Number.isFinite(d), `a different fill must show (max diff ${d})`);
});

test('the page refuses ops that are not evaluation ops, naming them', () => {
  const img = pattern();
  for (const s of OP_LIST.filter((x) => !x.eval && x.stage === 'pixels')) {
    const o = { op: s.name } as TransformOp;
    assert.throws(() => pageTensor(img, [o]), new RegExp(`op '${s.name}' is not part of an evaluation pipeline`));
  }
});

test('validatePipeline dispatches through the registry: order, unknown ops and eval pipelines', () => {
  const known = OP_LIST.map((s) => s.name).join(', ');
  assert.throws(() => validatePipeline({ ops: [{ op: 'blur' } as never] }), new RegExp(`a known op \\(${known}\\)`));
  // Ops after normalize must be of the 'normalized' stage; those must follow a normalize.
  assert.throws(
    () => validatePipeline({ ops: [{ op: 'cutout', length: 4 }, NORMALIZE] }),
    /pipeline\.ops\[0\]: cutout and randomErasing act on normalised data/,
  );
  assert.throws(
    () => validatePipeline({ ops: [NORMALIZE, { op: 'resize', size: 8 }] }),
    /must come before 'normalize'/,
  );
  validatePipeline({ ops: [NORMALIZE, { op: 'cutout', length: 4 }] });
  // An evaluation pipeline takes only eval-time ops.
  const evalOps: PipelineConfig = { ops: [{ op: 'resize', size: 8 }, { op: 'centerCrop', size: 8 }, NORMALIZE] };
  validatePipeline(evalOps, { eval: true });
  assert.throws(
    () => validatePipeline({ ops: [{ op: 'hflip' }, NORMALIZE] }, { eval: true }),
    /pipeline\.ops\[0\]: 'hflip' has no place in an evaluation pipeline \(its ops: letterbox, resize, centerCrop and normalize\)/,
  );
  // Each op's own field check runs.
  for (const [o, field] of [
    [{ op: 'letterbox', size: 0 }, 'size'],
    [{ op: 'randomResizedCrop', size: 8, scale: [0, 1] }, 'scale'],
    [{ op: 'colorJitter', hue: 0.6 }, 'hue'],
    [{ op: 'randAugment' }, 'config'],
  ] as const) {
    assert.throws(
      () => validatePipeline({ ops: [o as TransformOp] }),
      new RegExp(`for pipeline\\.ops\\[0\\]\\.${field} `),
    );
  }
});

test("the page's module graph (web-preprocess.js and what it imports) has only imports a browser can follow", () => {
  const g = webModuleGraph();
  assert.deepEqual(g.unreachable, []);
  for (const m of ['serve/web-preprocess.js', 'data/ops/registry.js', 'data/decode-plan.js', 'data/pil-pixels.js'])
    assert.ok(g.modules.has(m), `${m} is served to the page`);
  // Every op file is in the graph (the registry imports them all).
  const opFiles = [...g.modules].filter((m) => m.startsWith('data/ops/'));
  assert.ok(opFiles.length >= OP_LIST.length, `op files served: ${opFiles.join(', ')}`);
  assert.ok(!g.modules.has('data/native-image.js') && !g.modules.has('data/image.js'));
});

test('negative control: a module graph with a Node import, a package and a file outside is reported', () => {
  const dir = mkdtempSync(join(tmpdir(), 'goodsrec-web-modules-'));
  try {
    mkdirSync(join(dir, 'serve'));
    mkdirSync(join(dir, 'data'));
    writeFileSync(
      join(dir, 'serve', 'web-preprocess.js'),
      "import { a } from '../data/a.js';\nexport * from './b.js';\nexport const x = 'c';\n",
    );
    writeFileSync(join(dir, 'data', 'a.js'), "import { readFileSync } from 'node:fs';\nexport const a = 1;\n");
    writeFileSync(
      join(dir, 'serve', 'b.js'),
      "import sharp from 'sharp';\nimport {\n  q,\n  r,\n} from '../../outside.js';\nimport './missing.js';\n",
    );
    const g = webModuleGraph(dir);
    assert.deepEqual([...g.modules].sort(), ['data/a.js', 'serve/b.js', 'serve/web-preprocess.js']);
    assert.deepEqual(g.unreachable.map((u) => `${u.from} ${u.specifier}`).sort(), [
      'data/a.js node:fs',
      'serve/b.js ../../outside.js',
      'serve/b.js sharp',
      'serve/missing.js serve/missing.js',
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
