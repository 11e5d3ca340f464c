// goodsrec predict: top-k products for photos.
import { defineCommand } from 'citty';
import { loadRecognizer, expandImagePaths, predictFiles, disposeRecognizer } from '../../eval/predictor.js';
import { parseTta } from '../../eval/evaluate.js';
import { fail } from '../errors.js';
import type { Device } from '../../tensor/index.js';

export default defineCommand({
  meta: { name: 'predict', description: 'Top-k classes with probabilities for images or folders of images.' },
  args: {
    model: { type: 'positional', description: 'run folder (its best checkpoint), checkpoint folder, or ensemble file (goodsrec ensemble --save)', required: true },
    top: { type: 'string', description: 'how many classes per image', default: '5' },
    tta: { type: 'string', description: "test-time views, comma-separated: flip, zoom, zoomflip" },
    'tta-mean': { type: 'string', description: "average the views' 'logits' (default) or 'probs'" },
    device: { type: 'string', description: "'cpu', 'cuda', 'cuda:N'", default: 'cpu' },
    json: { type: 'boolean', description: 'print JSON instead of a table' },
    gallery: { type: 'string', description: 'answer by nearest neighbours in this gallery (goodsrec gallery build)' },
  },
  async run({ args }) {
    try {
      const images = args._.slice(1);
      if (images.length === 0) throw new Error('no images given: goodsrec predict <run> <image|folder...>');
      const paths = expandImagePaths(images);
      const r = loadRecognizer(args.model, { device: args.device as Device, allowEnsemble: true });
      const { tta, ttaMean } = parseTta(args.tta, args['tta-mean']);
      if (args.gallery) {
        const { predictCommandWithGallery } = await import('./gallery.js');
        try { await predictCommandWithGallery(r, args.gallery, paths, { top: Number(args.top), json: Boolean(args.json), tta }); } finally { disposeRecognizer(r); }
        return;
      }
      const preds = await predictFiles(r, paths, { topK: Number(args.top), tta, ...(args['tta-mean'] ? { ttaMean } : {}) });
      if (args.json) console.log(JSON.stringify(preds, null, 2));
      else {
        for (const p of preds) {
          console.log(p.path);
          if (p.error) console.log(`  error: ${p.error}`);
          for (const t of p.top) console.log(`  ${(100 * t.probability).toFixed(1).padStart(5)}%  ${t.class}`);
        }
      }
      if (preds.some((p) => p.error)) process.exitCode = 2;
      disposeRecognizer(r);
    } catch (e) {
      if (process.env.GOODSREC_DEBUG) console.error(e);
      fail((e as Error).message);
    }
  },
});
