// goodsrec gallery: enrol products by photos (embedding search) instead of retraining.
import { defineCommand } from 'citty';
import { basename, dirname, resolve } from 'node:path';
import { skippedReport, type WalkResult } from '../../data/walk.js';
import { resolveDevice } from '../../tensor/index.js';
import { defineCliCommand, deviceOption, maxPixelsOption } from '../options.js';
import { EXIT, UsageError } from '../errors.js';

/** The photos of a walk, with the skipped entries reported on stderr. */
function photosOf(w: WalkResult): string[] {
  if (w.skipped.length) console.error(skippedReport(w.skipped));
  return w.files;
}

const progress =
  (what: string) =>
  (done: number, total: number): void => {
    if (process.stderr.isTTY) process.stderr.write(`\r${what} ${done}/${total}${done === total ? '\n' : ''}`);
  };

const build = defineCliCommand({
  name: 'gallery build',
  description: 'Embed every photo of a dataset split into a new gallery file.',
  positionals: {
    model: { description: 'run folder (its best checkpoint) or checkpoint folder', required: true, exists: 'any' },
  },
  options: {
    data: { type: 'path', exists: 'any', required: true, description: 'dataset folder (any layout goodsrec reads)' },
    split: {
      type: 'string',
      default: 'train',
      pattern: /^[^,]+(,[^,]+)*$/,
      expected: 'split names, comma-separated',
      description: 'split(s) to enrol',
    },
    out: { type: 'path', required: true, description: 'gallery file to write (e.g. shop.gallery)' },
    k: { type: 'integer', min: 1, default: 5, description: 'neighbours that vote' },
    'approximate-from': {
      type: 'integer',
      min: 1,
      default: 50000,
      description: 'photos from which search uses an HNSW graph (kept next to the gallery) instead of exact search',
    },
    vectors: {
      type: 'enum',
      values: ['f32', 'f16', 'i8'],
      default: 'f32',
      description:
        'precision of the stored vectors (file and search index): f16 halves them, i8 (one scale per vector) quarters them; docs/gallery.md',
    },
    refine: {
      type: 'boolean',
      description:
        'with --vectors f16|i8: also keep the f32 vectors in the file (not in memory) to re-rank search candidates exactly',
    },
    device: deviceOption,
    'max-pixels': maxPixelsOption,
  },
  async run({ options: o, args }) {
    const { loadRecognizer, disposeRecognizer } = await import('../../eval/predictor.js');
    const { loadDataset, selectSplits } = await import('../../data/index.js');
    const { buildGallery } = await import('../../gallery/session.js');
    const { galleryClasses } = await import('../../gallery/format.js');
    const { saveGallery } = await import('../../gallery/session.js');
    if (o.refine && o.vectors === 'f32')
      throw new UsageError('--refine keeps f32 rows beside f16/i8 ones; with --vectors f32 the rows are already exact');
    const ds = selectSplits(
      loadDataset(o.data),
      o.split.split(',').map((x) => x.trim()),
    );
    if (!ds.samples.length) throw new Error(`dataset ${o.data}: split '${o.split}' has no photos`);
    const r = loadRecognizer(args.model, { device: resolveDevice(o.device), maxPixels: o['max-pixels'] });
    try {
      const { gallery, badFiles } = await buildGallery(r, ds, {
        k: o.k,
        vectors: o.vectors,
        ...(o.refine ? { refine: true } : {}),
        onBatch: progress('embedding'),
      });
      gallery.meta.search = { approximateFrom: o['approximate-from'] };
      saveGallery(resolve(o.out), gallery, (m) => console.log(m));
      for (const b of badFiles) console.log(`skipped ${b.path}: ${b.message}`);
      console.log(
        `${resolve(o.out)}: ${gallery.meta.entries.length} photos of ${galleryClasses(gallery).length} classes, ` +
          `${gallery.meta.dim}-d ${gallery.meta.model.embedding} embeddings of ${r.modelName} ` +
          `(${o.vectors} vectors${gallery.meta.refine ? ', f32 refine rows in the file' : ''})`,
      );
      return badFiles.length || ds.skipped?.length ? EXIT.partial : EXIT.ok;
    } finally {
      disposeRecognizer(r);
    }
  },
});

const add = defineCliCommand({
  name: 'gallery add',
  description: 'Enrol photos of a product (a class the model may never have seen).',
  positionals: {
    gallery: { description: 'gallery file', required: true, exists: 'file' },
    photos: { description: 'photos or folders of photos of the product', required: true, variadic: true },
  },
  options: {
    class: { type: 'string', required: true, description: 'product (class) name' },
    model: {
      type: 'path',
      exists: 'any',
      description: 'run/checkpoint (default: the one the gallery was built with; must be the same weights)',
    },
    device: deviceOption,
    'max-pixels': maxPixelsOption,
  },
  async run({ options: o, args }) {
    const photos = args.photos;
    const { loadRecognizer, disposeRecognizer, expandImagePaths } = await import('../../eval/predictor.js');
    const { readGallery } = await import('../../gallery/format.js');
    const { enrolPhotos, checkGalleryModel, saveGallery } = await import('../../gallery/session.js');
    const path = resolve(args.gallery);
    const g = readGallery(path);
    const walk = expandImagePaths(photos);
    const paths = photosOf(walk);
    const r = loadRecognizer(o.model ?? g.meta.model.checkpoint, {
      device: resolveDevice(o.device),
      maxPixels: o['max-pixels'],
    });
    try {
      checkGalleryModel(g, r, path);
      const res = await enrolPhotos(r, g, o.class, paths);
      saveGallery(path, res.gallery, (m) => console.log(m));
      for (const e of res.errors) console.log(`skipped ${e.path}: ${e.error}`);
      console.log(
        `${path}: enrolled ${res.added} photo(s) of '${o.class}' (${res.gallery.meta.entries.length} photos in all)`,
      );
      const { checkNewClass, newClassWarnings } = await import('../../gallery/lookalikes.js');
      const check = checkNewClass(g, res.gallery.embeddings.subarray(g.embeddings.length), o.class);
      for (const w of newClassWarnings(check, o.class)) console.warn(`warning: ${w}`);
      return res.errors.length || walk.skipped.length ? EXIT.partial : EXIT.ok;
    } finally {
      disposeRecognizer(r);
    }
  },
});

const remove = defineCliCommand({
  name: 'gallery remove',
  description: 'Remove every photo of a class from a gallery.',
  positionals: { gallery: { description: 'gallery file', required: true, exists: 'file' } },
  options: { class: { type: 'string', required: true, description: 'product (class) name' } },
  async run({ options: o, args }) {
    const { readGallery, filterGallery, galleryClasses } = await import('../../gallery/format.js');
    const { saveGallery } = await import('../../gallery/session.js');
    const path = resolve(args.gallery);
    const g = readGallery(path);
    if (!galleryClasses(g).includes(o.class))
      throw new Error(`${path}: no class '${o.class}' (goodsrec gallery list shows them)`);
    const next = filterGallery(g, (e) => e.class !== o.class);
    saveGallery(path, next, (m) => console.log(m));
    console.log(`${path}: removed ${g.meta.entries.length - next.meta.entries.length} photo(s) of '${o.class}'`);
  },
});

const convert = defineCliCommand({
  name: 'gallery convert',
  description: 'Rewrite a gallery with its vectors in another precision (no photo is embedded again).',
  positionals: { gallery: { description: 'gallery file', required: true, exists: 'file' } },
  options: {
    vectors: {
      type: 'enum',
      values: ['f32', 'f16', 'i8'],
      required: true,
      description: 'precision to store the vectors in (docs/gallery.md, "Vector precision")',
    },
    refine: {
      type: 'boolean',
      description:
        'f16/i8: keep (--refine) or drop (--no-refine) the f32 vectors in the file that re-rank search candidates (default: as the gallery has)',
    },
    out: { type: 'path', description: 'write the converted gallery here (default: over the gallery)' },
  },
  async run({ options: o, args }) {
    const { readGallery, galleryPrecision, withPrecision } = await import('../../gallery/format.js');
    const { saveGallery } = await import('../../gallery/session.js');
    if (o.refine && o.vectors === 'f32')
      throw new UsageError('--refine keeps f32 rows beside f16/i8 ones; with --vectors f32 the rows are already exact');
    const path = resolve(args.gallery);
    const g = readGallery(path);
    const from = galleryPrecision(g);
    const out = resolve(o.out ?? path);
    const next = saveGallery(out, withPrecision(g, o.vectors, o.refine), (m) => console.log(m));
    const tag = (p: string, refine: boolean): string => `${p}${refine ? '+refine' : ''}`;
    console.log(
      `${out}: ${g.meta.entries.length} vectors ${tag(from, !!g.meta.refine)} -> ${tag(o.vectors, !!next.meta.refine)}`,
    );
    if (from !== 'f32' && o.vectors === 'f32' && !g.meta.refine)
      console.warn(`warning: the f32 rows are the decoded ${from} ones: the precision ${from} dropped is not restored`);
  },
});

const list = defineCliCommand({
  name: 'gallery list',
  description: 'Classes of a gallery with their photo counts, model and threshold.',
  positionals: { gallery: { description: 'gallery file', required: true, exists: 'file' } },
  options: {
    json: { type: 'boolean', description: 'print JSON' },
    lookalikes: {
      type: 'boolean',
      description: 'list the closest class pairs (look-alike products) instead of the classes',
    },
    pairs: { type: 'integer', min: 1, default: 10, description: 'with --lookalikes: pairs to list' },
  },
  async run({ options: o, args }) {
    const { readGallery, galleryClasses } = await import('../../gallery/format.js');
    const g = readGallery(resolve(args.gallery));
    if (o.lookalikes) {
      const { lookalikeReport, lookalikeReportText } = await import('../../gallery/lookalikes.js');
      const report = lookalikeReport(g, o.pairs);
      console.log(o.json ? JSON.stringify(report, null, 2) : lookalikeReportText(report));
      return;
    }
    const counts = galleryClasses(g).map((c) => ({
      class: c,
      photos: g.meta.entries.filter((e) => e.class === c).length,
    }));
    const m = g.meta;
    if (o.json) {
      console.log(
        JSON.stringify(
          {
            model: m.model,
            dim: m.dim,
            vectors: m.vectors ?? 'f32',
            refine: m.refine ?? null,
            k: m.k,
            threshold: m.threshold,
            calibration: m.calibration ?? null,
            photos: m.entries.length,
            classes: counts,
          },
          null,
          2,
        ),
      );
      return;
    }
    console.log(
      `model ${m.model.name} (${m.model.checkpoint}, weights sha256 ${m.model.hash.slice(0, 12)}), ${m.dim}-d ${m.model.embedding} embeddings, ${m.vectors ?? 'f32'} vectors${m.refine ? ' (f32 refine rows in the file)' : ''}`,
    );
    console.log(
      `k ${m.k}, threshold ${m.threshold ?? 'none (never answers unknown)'}` +
        (m.calibration
          ? ` (calibrated for FAR ${m.calibration.targetFar}: FAR ${m.calibration.far.toFixed(4)}, TAR ${m.calibration.tar.toFixed(4)}, AUROC ${m.calibration.auroc.toFixed(4)})`
          : ''),
    );
    for (const c of counts) console.log(`${String(c.photos).padStart(6)}  ${c.class}`);
    console.log(`${m.entries.length} photos, ${counts.length} classes`);
  },
});

const calibrate = defineCliCommand({
  name: 'gallery calibrate',
  description: 'Pick the "unknown product" threshold for a target false-accept rate on held-out photos.',
  positionals: { gallery: { description: 'gallery file', required: true, exists: 'file' } },
  options: {
    known: {
      type: 'path',
      exists: 'dir',
      required: true,
      description: 'folder of photos of enrolled classes, in <class>/ subfolders',
    },
    unknown: {
      type: 'path',
      exists: 'dir',
      required: true,
      description: 'folder of photos of products not in the gallery',
    },
    far: {
      type: 'number',
      min: 0,
      below: 1,
      default: 0.01,
      description: 'target false-accept rate (unknown photos accepted as some product)',
    },
    model: { type: 'path', exists: 'any', description: 'run/checkpoint (default: the one the gallery was built with)' },
    device: deviceOption,
    'max-pixels': maxPixelsOption,
  },
  async run({ options: o, args }) {
    const far = o.far;
    const { loadRecognizer, disposeRecognizer, expandImagePaths } = await import('../../eval/predictor.js');
    const { readGallery, writeGallery } = await import('../../gallery/format.js');
    const { checkGalleryModel, predictWithGallery } = await import('../../gallery/session.js');
    const { auroc, thresholdForFar } = await import('../../gallery/recognize.js');
    const { openMatcher } = await import('../../gallery/session.js');
    const path = resolve(args.gallery);
    const g = readGallery(path);
    const knownPaths = photosOf(expandImagePaths([o.known]));
    const unknownPaths = photosOf(expandImagePaths([o.unknown]));
    if (!knownPaths.length || !unknownPaths.length)
      throw new UsageError(`--${knownPaths.length ? 'unknown' : 'known'}: no photos found`);
    const r = loadRecognizer(o.model ?? g.meta.model.checkpoint, {
      device: resolveDevice(o.device),
      maxPixels: o['max-pixels'],
    });
    const m = openMatcher(g, path, { device: r.device });
    try {
      checkGalleryModel(g, r, path);
      const enrolled = new Set(m.classes);
      const known = (await predictWithGallery(r, m, knownPaths)).filter((p) => !p.error);
      const strangers = known.filter((p) => !enrolled.has(basename(dirname(p.path))));
      if (strangers.length)
        throw new Error(
          `--known: ${strangers[0]!.path} is in folder '${basename(dirname(strangers[0]!.path))}', which is not a class of the gallery`,
        );
      const unknown = (await predictWithGallery(r, m, unknownPaths)).filter((p) => !p.error);
      const ks = known.map((p) => p.similarity);
      const us = unknown.map((p) => p.similarity);
      const t = thresholdForFar(ks, us, far);
      const correct = known.filter(
        (p) => p.top[0]?.class === basename(dirname(p.path)) && p.similarity >= t.threshold,
      ).length;
      const calibration = {
        threshold: t.threshold,
        targetFar: far,
        far: t.far,
        tar: t.tar,
        auroc: auroc(ks, us),
        known: ks.length,
        unknown: us.length,
        at: new Date().toISOString(),
      };
      writeGallery(path, { ...g, meta: { ...g.meta, threshold: t.threshold, calibration } });
      console.log(
        `threshold ${t.threshold.toFixed(6)} for FAR <= ${far}: FAR ${t.far.toFixed(4)} on ${us.length} unknown, ` +
          `TAR ${t.tar.toFixed(4)} and accepted-and-right ${(correct / ks.length).toFixed(4)} on ${ks.length} known, AUROC ${calibration.auroc.toFixed(4)}`,
      );
      console.log(`written: ${path}`);
    } finally {
      m.dispose();
      disposeRecognizer(r);
    }
  },
});

export default defineCommand({
  meta: {
    name: 'gallery',
    description:
      'Product gallery: enrol products from a few photos, recognise by nearest neighbours, reject unknown ones.',
  },
  subCommands: { build, add, remove, list, calibrate, convert },
});

/** `goodsrec predict RUN --gallery G photos...`: nearest-neighbour answers instead of the classifier's. */
export async function predictCommandWithGallery(
  r: import('../../eval/predictor.js').LoadedRecognizer,
  galleryPath: string,
  paths: readonly string[],
  o: { top: number; json: boolean; tta: import('../../eval/evaluate.js').TtaView[] },
): Promise<number> {
  const { readGallery } = await import('../../gallery/format.js');
  const { checkGalleryModel, predictWithGallery, openMatcher } = await import('../../gallery/session.js');
  const g = readGallery(resolve(galleryPath));
  checkGalleryModel(g, r, resolve(galleryPath));
  const m = openMatcher(g, resolve(galleryPath), { device: r.device, log: (s) => console.error(s) });
  try {
    const preds = (await predictWithGallery(r, m, paths, { tta: o.tta })).map((p) => ({
      ...p,
      top: p.top.slice(0, o.top),
      neighbours: p.neighbours.slice(0, o.top),
    }));
    if (o.json) console.log(JSON.stringify(preds, null, 2));
    else {
      for (const p of preds) {
        console.log(p.path);
        if (p.error) {
          console.log(`  error: ${p.error}`);
          continue;
        }
        console.log(
          p.unknown
            ? `  unknown product (best match ${p.similarity.toFixed(3)} < threshold ${g.meta.threshold})`
            : `  ${p.class}`,
        );
        for (const t of p.top)
          console.log(`  ${t.similarity.toFixed(3).padStart(7)}  ${t.class}  (votes ${t.votes.toFixed(2)})`);
      }
    }
    return preds.filter((p) => p.error).length;
  } finally {
    m.dispose();
  }
}

/** `goodsrec eval RUN --gallery G`: the split scored by the gallery; returns what eval writes as JSON. */
export async function evalCommandWithGallery(
  r: import('../../eval/predictor.js').LoadedRecognizer,
  galleryPath: string,
  ds: import('../../data/index.js').Dataset,
  o: { tta: import('../../eval/evaluate.js').TtaView[] },
): Promise<{ result: import('../../gallery/session.js').GalleryEvalResult; summary: string }> {
  const { readGallery } = await import('../../gallery/format.js');
  const { checkGalleryModel, evaluateWithGallery, openMatcher } = await import('../../gallery/session.js');
  const g = readGallery(resolve(galleryPath));
  checkGalleryModel(g, r, resolve(galleryPath));
  const m = openMatcher(g, resolve(galleryPath), { device: r.device, log: (s) => console.error(s) });
  try {
    const res = await evaluateWithGallery(r, m, ds, { tta: o.tta, onBatch: progress('evaluating') });
    const f = (x: number): string => (Number.isNaN(x) ? 'n/a' : x.toFixed(4));
    const summary = [
      `gallery ${resolve(galleryPath)}: ${m.classes.length} classes, ${g.meta.entries.length} photos, k ${g.meta.k}, threshold ${g.meta.threshold ?? 'none'}`,
      `${res.samples} photos: ${res.known} of enrolled classes, ${res.unknown} of other classes`,
      `top-1 (enrolled classes) ${f(res.top1)}   accepted-and-right ${f(res.acceptedCorrect)}   unknown rejected ${f(res.unknownRejected)}   AUROC ${f(res.auroc)}`,
    ].join('\n');
    return { result: res, summary };
  } finally {
    m.dispose();
  }
}
