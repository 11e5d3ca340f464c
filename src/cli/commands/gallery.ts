// goodsrec gallery: enrol products by photos (embedding search) instead of retraining.
import { defineCommand } from 'citty';
import { basename, dirname, resolve } from 'node:path';
import { formatSkipped, type WalkResult } from '../../data/walk.js';
import { EXIT, UsageError } from '../errors.js';
import type { Device } from '../../tensor/index.js';

const device = { type: 'string', description: "'cpu', 'cuda', 'cuda:N'", default: 'cpu' } as const;

/** Runs a subcommand; failures reach the CLI's one error path (src/cli/main.ts), exit codes as EXIT. */
async function guard(fn: () => Promise<void | number>): Promise<void> {
  const code = await fn();
  if (typeof code === 'number' && code !== EXIT.ok) process.exitCode = code;
}

/** The photos of a walk, with the skipped entries reported on stderr. */
function photosOf(w: WalkResult): string[] {
  if (w.skipped.length) console.error([`skipping ${w.skipped.length} input(s):`, ...formatSkipped(w.skipped)].join('\n'));
  return w.files;
}

function positiveInt(v: string | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${what}: expected an integer >= 1 but received '${v}'`);
  return n;
}

const progress = (what: string) => (done: number, total: number): void => {
  if (process.stderr.isTTY) process.stderr.write(`\r${what} ${done}/${total}${done === total ? '\n' : ''}`);
};

const build = defineCommand({
  meta: { name: 'build', description: 'Embed every photo of a dataset split into a new gallery file.' },
  args: {
    model: { type: 'positional', description: 'run folder (its best checkpoint) or checkpoint folder', required: true },
    data: { type: 'string', description: 'dataset folder (any layout goodsrec reads)', required: true },
    split: { type: 'string', description: 'split(s) to enrol, comma-separated', default: 'train' },
    out: { type: 'string', description: 'gallery file to write (e.g. shop.gallery)', required: true },
    k: { type: 'string', description: 'neighbours that vote', default: '5' },
    'approximate-from': { type: 'string', description: 'photos from which search uses an HNSW graph (kept next to the gallery) instead of exact search', default: '50000' },
    device,
  },
  run: ({ args }) => guard(async () => {
    const { loadRecognizer, disposeRecognizer } = await import('../../eval/predictor.js');
    const { loadDataset, selectSplits } = await import('../../data/index.js');
    const { buildGallery } = await import('../../gallery/session.js');
    const { galleryClasses } = await import('../../gallery/format.js');
    const { saveGallery } = await import('../../gallery/session.js');
    const approximateFrom = positiveInt(args['approximate-from'], 'approximate-from')!;
    const ds = selectSplits(loadDataset(args.data), args.split.split(',').map((s) => s.trim()));
    if (!ds.samples.length) throw new Error(`dataset ${args.data}: split '${args.split}' has no photos`);
    const r = loadRecognizer(args.model, { device: args.device as Device });
    try {
      const { gallery, badFiles } = await buildGallery(r, ds, { k: positiveInt(args.k, 'k')!, onBatch: progress('embedding') });
      gallery.meta.search = { approximateFrom };
      saveGallery(resolve(args.out), gallery, (m) => console.log(m));
      for (const b of badFiles) console.log(`skipped ${b.path}: ${b.message}`);
      console.log(`${resolve(args.out)}: ${gallery.meta.entries.length} photos of ${galleryClasses(gallery).length} classes, ` +
        `${gallery.meta.dim}-d ${gallery.meta.model.embedding} embeddings of ${r.modelName}`);
    } finally {
      disposeRecognizer(r);
    }
  }),
});

const add = defineCommand({
  meta: { name: 'add', description: 'Enrol photos of a product (a class the model may never have seen).' },
  args: {
    gallery: { type: 'positional', description: 'gallery file', required: true },
    class: { type: 'string', description: 'product (class) name', required: true },
    model: { type: 'string', description: 'run/checkpoint (default: the one the gallery was built with; must be the same weights)' },
    device,
  },
  run: ({ args }) => guard(async () => {
    const photos = args._.slice(1);
    if (!photos.length) throw new UsageError('no photos given: goodsrec gallery add <gallery> --class NAME <photo|folder...>');
    const { loadRecognizer, disposeRecognizer, expandImagePaths } = await import('../../eval/predictor.js');
    const { readGallery } = await import('../../gallery/format.js');
    const { enrolPhotos, checkGalleryModel, saveGallery } = await import('../../gallery/session.js');
    const path = resolve(args.gallery);
    const g = readGallery(path);
    const walk = expandImagePaths(photos);
    const paths = photosOf(walk);
    const r = loadRecognizer(args.model ?? g.meta.model.checkpoint, { device: args.device as Device });
    try {
      checkGalleryModel(g, r, path);
      const res = await enrolPhotos(r, g, args.class, paths);
      saveGallery(path, res.gallery, (m) => console.log(m));
      for (const e of res.errors) console.log(`skipped ${e.path}: ${e.error}`);
      console.log(`${path}: enrolled ${res.added} photo(s) of '${args.class}' (${res.gallery.meta.entries.length} photos in all)`);
      return res.errors.length || walk.skipped.length ? EXIT.partial : EXIT.ok;
    } finally {
      disposeRecognizer(r);
    }
  }),
});

const remove = defineCommand({
  meta: { name: 'remove', description: 'Remove every photo of a class from a gallery.' },
  args: {
    gallery: { type: 'positional', description: 'gallery file', required: true },
    class: { type: 'string', description: 'product (class) name', required: true },
  },
  run: ({ args }) => guard(async () => {
    const { readGallery, filterGallery, galleryClasses } = await import('../../gallery/format.js');
    const { saveGallery } = await import('../../gallery/session.js');
    const path = resolve(args.gallery);
    const g = readGallery(path);
    if (!galleryClasses(g).includes(args.class)) throw new Error(`${path}: no class '${args.class}' (goodsrec gallery list shows them)`);
    const next = filterGallery(g, (e) => e.class !== args.class);
    saveGallery(path, next, (m) => console.log(m));
    console.log(`${path}: removed ${g.meta.entries.length - next.meta.entries.length} photo(s) of '${args.class}'`);
  }),
});

const list = defineCommand({
  meta: { name: 'list', description: 'Classes of a gallery with their photo counts, model and threshold.' },
  args: {
    gallery: { type: 'positional', description: 'gallery file', required: true },
    json: { type: 'boolean', description: 'print JSON' },
  },
  run: ({ args }) => guard(async () => {
    const { readGallery, galleryClasses } = await import('../../gallery/format.js');
    const g = readGallery(resolve(args.gallery));
    const counts = galleryClasses(g).map((c) => ({ class: c, photos: g.meta.entries.filter((e) => e.class === c).length }));
    const m = g.meta;
    if (args.json) {
      console.log(JSON.stringify({ model: m.model, dim: m.dim, k: m.k, threshold: m.threshold, calibration: m.calibration ?? null, photos: m.entries.length, classes: counts }, null, 2));
      return;
    }
    console.log(`model ${m.model.name} (${m.model.checkpoint}, weights sha256 ${m.model.hash.slice(0, 12)}), ${m.dim}-d ${m.model.embedding} embeddings`);
    console.log(`k ${m.k}, threshold ${m.threshold ?? 'none (never answers unknown)'}` +
      (m.calibration ? ` (calibrated for FAR ${m.calibration.targetFar}: FAR ${m.calibration.far.toFixed(4)}, TAR ${m.calibration.tar.toFixed(4)}, AUROC ${m.calibration.auroc.toFixed(4)})` : ''));
    for (const c of counts) console.log(`${String(c.photos).padStart(6)}  ${c.class}`);
    console.log(`${m.entries.length} photos, ${counts.length} classes`);
  }),
});

const calibrate = defineCommand({
  meta: { name: 'calibrate', description: 'Pick the "unknown product" threshold for a target false-accept rate on held-out photos.' },
  args: {
    gallery: { type: 'positional', description: 'gallery file', required: true },
    known: { type: 'string', description: 'folder of photos of enrolled classes, in <class>/ subfolders', required: true },
    unknown: { type: 'string', description: 'folder of photos of products not in the gallery', required: true },
    far: { type: 'string', description: 'target false-accept rate (unknown photos accepted as some product)', default: '0.01' },
    model: { type: 'string', description: 'run/checkpoint (default: the one the gallery was built with)' },
    device,
  },
  run: ({ args }) => guard(async () => {
    const far = Number(args.far);
    if (!(far >= 0 && far < 1)) throw new UsageError(`--far: expected a rate in [0, 1) but received '${args.far}'`);
    const { loadRecognizer, disposeRecognizer, expandImagePaths } = await import('../../eval/predictor.js');
    const { readGallery, writeGallery } = await import('../../gallery/format.js');
    const { checkGalleryModel, predictWithGallery } = await import('../../gallery/session.js');
    const { auroc, thresholdForFar } = await import('../../gallery/recognize.js');
    const { openMatcher } = await import('../../gallery/session.js');
    const path = resolve(args.gallery);
    const g = readGallery(path);
    const knownPaths = photosOf(expandImagePaths([args.known]));
    const unknownPaths = photosOf(expandImagePaths([args.unknown]));
    if (!knownPaths.length || !unknownPaths.length) throw new Error(`--${knownPaths.length ? 'unknown' : 'known'}: no photos found`);
    const r = loadRecognizer(args.model ?? g.meta.model.checkpoint, { device: args.device as Device });
    const m = openMatcher(g, path, { device: r.device });
    try {
      checkGalleryModel(g, r, path);
      const enrolled = new Set(m.classes);
      const known = (await predictWithGallery(r, m, knownPaths)).filter((p) => !p.error);
      const strangers = known.filter((p) => !enrolled.has(basename(dirname(p.path))));
      if (strangers.length) throw new Error(`--known: ${strangers[0]!.path} is in folder '${basename(dirname(strangers[0]!.path))}', which is not a class of the gallery`);
      const unknown = (await predictWithGallery(r, m, unknownPaths)).filter((p) => !p.error);
      const ks = known.map((p) => p.similarity); const us = unknown.map((p) => p.similarity);
      const t = thresholdForFar(ks, us, far);
      const correct = known.filter((p) => p.top[0]?.class === basename(dirname(p.path)) && p.similarity >= t.threshold).length;
      const calibration = { threshold: t.threshold, targetFar: far, far: t.far, tar: t.tar, auroc: auroc(ks, us), known: ks.length, unknown: us.length, at: new Date().toISOString() };
      writeGallery(path, { ...g, meta: { ...g.meta, threshold: t.threshold, calibration } });
      console.log(`threshold ${t.threshold.toFixed(6)} for FAR <= ${far}: FAR ${t.far.toFixed(4)} on ${us.length} unknown, ` +
        `TAR ${t.tar.toFixed(4)} and accepted-and-right ${(correct / ks.length).toFixed(4)} on ${ks.length} known, AUROC ${calibration.auroc.toFixed(4)}`);
      console.log(`written: ${path}`);
    } finally {
      m.dispose();
      disposeRecognizer(r);
    }
  }),
});

export default defineCommand({
  meta: { name: 'gallery', description: 'Product gallery: enrol products from a few photos, recognise by nearest neighbours, reject unknown ones.' },
  subCommands: { build, add, remove, list, calibrate },
});

/** `goodsrec predict RUN --gallery G photos...`: nearest-neighbour answers instead of the classifier's. */
export async function predictCommandWithGallery(
  r: import('../../eval/predictor.js').LoadedRecognizer, galleryPath: string, paths: readonly string[],
  o: { top: number; json: boolean; tta: import('../../eval/evaluate.js').TtaView[] },
): Promise<number> {
  const { readGallery } = await import('../../gallery/format.js');
  const { checkGalleryModel, predictWithGallery, openMatcher } = await import('../../gallery/session.js');
  const g = readGallery(resolve(galleryPath));
  checkGalleryModel(g, r, resolve(galleryPath));
  const m = openMatcher(g, resolve(galleryPath), { device: r.device, log: (s) => console.error(s) });
  try {
    const preds = (await predictWithGallery(r, m, paths, { tta: o.tta })).map((p) => ({ ...p, top: p.top.slice(0, o.top), neighbours: p.neighbours.slice(0, o.top) }));
    if (o.json) console.log(JSON.stringify(preds, null, 2));
    else {
      for (const p of preds) {
        console.log(p.path);
        if (p.error) { console.log(`  error: ${p.error}`); continue; }
        console.log(p.unknown ? `  unknown product (best match ${p.similarity.toFixed(3)} < threshold ${g.meta.threshold})` : `  ${p.class}`);
        for (const t of p.top) console.log(`  ${t.similarity.toFixed(3).padStart(7)}  ${t.class}  (votes ${t.votes.toFixed(2)})`);
      }
    }
    return preds.filter((p) => p.error).length;
  } finally {
    m.dispose();
  }
}

/** `goodsrec eval RUN --gallery G`: the split scored by the gallery; returns what eval writes as JSON. */
export async function evalCommandWithGallery(
  r: import('../../eval/predictor.js').LoadedRecognizer, galleryPath: string, ds: import('../../data/index.js').Dataset,
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
