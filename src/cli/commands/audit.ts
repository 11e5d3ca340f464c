// goodsrec audit: likely wrong labels, duplicates across classes and splits, look-alike classes. Reads the
// dataset, writes its findings elsewhere (audit.html, suggestions.csv, lookalikes.csv, audit.json).
import { basename, isAbsolute, join, relative, resolve } from 'node:path';
import { statSync } from 'node:fs';
import { resolveDevice } from '../../tensor/index.js';
import { defineCliCommand, deviceOption, maxPixelsOption } from '../options.js';
import { EXIT, UsageError } from '../errors.js';

const inside = (dir: string, p: string): boolean => {
  const rel = relative(dir, p);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
};

export default defineCliCommand({
  name: 'audit',
  description:
    'Audit a dataset with a trained run: likely wrong labels (confident learning on out-of-sample scores), ' +
    'duplicates across classes and splits, look-alike class pairs. The dataset is only read.',
  positionals: {
    run: { description: 'run folder (its best checkpoint) or checkpoint folder', required: true, exists: 'any' },
  },
  options: {
    data: { type: 'path', exists: 'any', required: true, description: 'dataset (any layout goodsrec reads)' },
    split: {
      type: 'string',
      pattern: /^[^,]+(,[^,]+)*$/,
      expected: 'split names, comma-separated',
      description: 'split(s) to audit (default: all)',
    },
    out: { type: 'path', description: 'output folder (default: ./audit-<run name>)' },
    scores: {
      type: 'enum',
      values: ['knn', 'model'],
      default: 'knn',
      description:
        "out-of-sample scores: 'knn' (leave-one-out neighbours in the run's embedding) or 'model' (the classifier; out-of-sample only on photos it did not train on)",
    },
    neighbours: { type: 'integer', min: 1, default: 10, description: 'knn: neighbours that vote' },
    temperature: {
      type: 'number',
      above: 0,
      default: 0.07,
      description: 'knn: vote weights exp(similarity / temperature)',
    },
    'duplicate-bits': {
      type: 'integer',
      min: 0,
      max: 64,
      default: 4,
      description: 'near duplicates: difference hashes (64 bits) differing in at most this many bits',
    },
    pairs: { type: 'integer', min: 0, default: 20, description: 'look-alike class pairs to list' },
    show: { type: 'integer', min: 0, default: 200, description: 'suspects shown with photos on the page' },
    device: deviceOption,
    'max-pixels': maxPixelsOption,
  },
  async run({ options: o, args }) {
    const { loadDataset, selectSplits } = await import('../../data/index.js');
    const { loadRecognizer, disposeRecognizer } = await import('../../eval/predictor.js');
    const { auditDataset } = await import('../../audit/audit.js');
    const { renderAuditHtml } = await import('../../audit/audit-html.js');
    const { writeAuditFiles } = await import('../../audit/audit-files.js');
    const { readRunInfo } = await import('../../run/run-folder.js');
    let ds = loadDataset(o.data);
    if (o.split) {
      const want = o.split.split(',').map((s) => s.trim());
      ds = selectSplits(ds, want);
      if (!ds.samples.length) throw new UsageError(`--split: dataset ${o.data} has no photos in '${o.split}'`);
    }
    const out = resolve(o.out ?? `audit-${basename(resolve(args.run))}`);
    const dataPath = resolve(o.data);
    const samplePaths = new Set(ds.samples.map((s) => resolve(ds.root, s.path)));
    if ((statSync(dataPath).isDirectory() && inside(dataPath, out)) || [...samplePaths].some((p) => inside(out, p)))
      throw new UsageError(
        `--out ${out}: inside the dataset; goodsrec never writes into a dataset: choose a folder elsewhere`,
      );
    for (const f of ['audit.json', 'suggestions.csv', 'lookalikes.csv', 'audit.html'])
      if (join(out, f) === dataPath) throw new UsageError(`--out ${out}: would overwrite the dataset file ${dataPath}`);

    const r = loadRecognizer(args.run, { device: resolveDevice(o.device), maxPixels: o['max-pixels'] });
    try {
      if (o.scores === 'model' && r.runDir) {
        const { config } = readRunInfo(r.runDir);
        if (resolve(config.data.root) === dataPath && ds.samples.some((s) => s.split === config.data.trainSplit))
          console.warn(
            `warning: --scores model on split '${config.data.trainSplit}', which ${r.runDir} trained on: its probabilities ` +
              'there are in-sample (a memorised wrong label looks right); --scores knn is out-of-sample',
          );
      }
      const tty = process.stderr.isTTY;
      const a = await auditDataset(r, ds, {
        scores: o.scores,
        neighbours: o.neighbours,
        temperature: o.temperature,
        duplicateBits: o['duplicate-bits'],
        pairs: o.pairs,
        maxPixels: o['max-pixels'],
        dataName: dataPath,
        onProgress: (stage, d, t) => {
          if (tty) process.stderr.write(`\r${stage} ${d}/${t}${d === t ? '\n' : ''}`);
        },
      });
      const html = await renderAuditHtml(a, { suspects: o.show });
      const files = writeAuditFiles(out, a, html);
      const n = a.labels.photos.length;
      const method =
        a.scores.method === 'knn'
          ? `leave-one-out k-NN, k ${a.scores.neighbours}, temperature ${a.scores.temperature}`
          : 'the classifier';
      console.log(`audited ${n} photos (${a.splits.join(', ')}) of ${dataPath} with ${r.modelName} (${method})`);
      console.log(
        `likely wrong labels: ${a.labels.flagged} flagged (${((100 * a.labels.flagged) / n).toFixed(1)} %); ` +
          `confident learning estimates ${a.labels.estimatedErrors.toFixed(0)}`,
      );
      console.log(
        `duplicates: ${a.duplicates.exact.length} exact copies across splits or labels, ${a.duplicates.nearTotal} near ` +
          `(<= ${a.duplicates.bits} bits) across classes or splits`,
      );
      for (const l of a.lookalikes.slice(0, 5))
        console.log(
          `look-alike: ${l.a} <-> ${l.b}: ${l.aAsB} + ${l.bAsA} confused, centroid cosine ${l.centroidSimilarity.toFixed(3)}`,
        );
      for (const b of a.badFiles) console.log(`skipped ${b.path}: ${b.message}`);
      console.log(
        `written: ${files.html}\n         ${files.csv}\n         ${files.lookalikes}\n         ${files.json}`,
      );
      return a.badFiles.length || ds.skipped?.length ? EXIT.partial : EXIT.ok;
    } finally {
      disposeRecognizer(r);
    }
  },
});
