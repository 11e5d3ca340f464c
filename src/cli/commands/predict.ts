// goodsrec predict: top-k products for photos.
import {
  loadRecognizer,
  expandImagePaths,
  predictFiles,
  disposeRecognizer,
  skippedPredictions,
} from '../../eval/predictor.js';
import { TTA_MEANS, TTA_VIEWS } from '../../eval/evaluate.js';
import { skippedReport } from '../../data/walk.js';
import { resolveDevice } from '../../tensor/index.js';
import { defineCliCommand, deviceOption, maxPixelsOption } from '../options.js';
import { EXIT } from '../errors.js';

export default defineCliCommand({
  name: 'predict',
  description: 'Top-k classes with probabilities for images or folders of images.',
  positionals: {
    model: {
      description: 'run folder (its best checkpoint), checkpoint folder, or ensemble file (goodsrec ensemble --save)',
      required: true,
      exists: 'any',
    },
    images: { description: 'image files or folders of images', required: true, variadic: true },
  },
  options: {
    top: { type: 'integer', min: 1, default: 5, description: 'how many classes per image' },
    tta: { type: 'list', of: { type: 'enum', values: TTA_VIEWS }, description: 'test-time views' },
    'tta-mean': {
      type: 'enum',
      values: TTA_MEANS,
      description: "average the views' logits (default) or probabilities",
    },
    device: deviceOption,
    'max-pixels': maxPixelsOption,
    json: { type: 'boolean', description: 'print JSON instead of a table' },
    gallery: {
      type: 'path',
      exists: 'file',
      description: 'answer by nearest neighbours in this gallery (goodsrec gallery build)',
    },
  },
  async run({ options: o, args }) {
    const inputs = expandImagePaths(args.images);
    // Bad inputs are reported up front (stderr) and again in the results, with the files that failed to decode.
    if (inputs.skipped.length) console.error(skippedReport(inputs.skipped));
    const r = loadRecognizer(args.model, {
      device: resolveDevice(o.device),
      maxPixels: o['max-pixels'],
      allowEnsemble: true,
    });
    try {
      if (o.gallery) {
        const { predictCommandWithGallery } = await import('./gallery.js');
        const failed = await predictCommandWithGallery(r, o.gallery, inputs.files, {
          top: o.top,
          json: o.json,
          tta: o.tta ?? [],
        });
        return failed || inputs.skipped.length ? EXIT.partial : EXIT.ok;
      }
      const preds = await predictFiles(r, inputs.files, {
        topK: o.top,
        tta: o.tta ?? [],
        ...(o['tta-mean'] ? { ttaMean: o['tta-mean'] } : {}),
      });
      const all = [...preds, ...skippedPredictions(inputs)];
      if (o.json) console.log(JSON.stringify(all, null, 2));
      else {
        for (const p of all) {
          console.log(p.path);
          if (p.error) console.log(`  error: ${p.error}`);
          for (const t of p.top) console.log(`  ${(100 * t.probability).toFixed(1).padStart(5)}%  ${t.class}`);
        }
      }
      const failed = all.filter((p) => p.error).length;
      if (failed)
        console.error(`${failed} of ${all.length} input(s) could not be predicted (exit code ${EXIT.partial})`);
      return failed ? EXIT.partial : EXIT.ok;
    } finally {
      disposeRecognizer(r);
    }
  },
});
