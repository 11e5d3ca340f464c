// goodsrec fixres: re-train only the classifier at the test resolution (frozen trunk, BN in eval mode).
import { availableParallelism } from 'node:os';
import * as T from '../../tensor/index.js';
import { fixres } from '../../train/fixres.js';
import { defineCliCommand, deviceOption } from '../options.js';
import { UsageError } from '../errors.js';

const pct = (v: number): string => `${(100 * v).toFixed(2)}%`;

export default defineCliCommand({
  name: 'fixres',
  description:
    'FixRes: fine-tune only the classifier at the test resolution (frozen trunk, BatchNorm in eval mode); ' +
    '--sizes sweeps resolutions.',
  positionals: {
    run: { description: 'run folder (its best checkpoint) or checkpoint folder', required: true, exists: 'any' },
  },
  options: {
    size: { type: 'integer', min: 16, description: 'test resolution' },
    sizes: {
      type: 'list',
      of: { type: 'integer', min: 16 },
      description: 'resolutions to compare, e.g. 224,256,280,320 (the best is saved)',
    },
    epochs: { type: 'integer', min: 0, default: 5, description: 'classifier epochs at each size (0 = evaluate only)' },
    lr: { type: 'number', above: 0, default: 0.001, description: 'SGD learning rate (cosine to lr/1000)' },
    'batch-size': { type: 'integer', min: 1, default: 64, description: 'batch size' },
    'weight-decay': { type: 'number', min: 0, description: "weight decay (default: the run's)" },
    'class-balanced': {
      type: 'boolean',
      description: 'class-balanced sampling (decoupled classifier re-training for the long tail)',
    },
    flip: { type: 'boolean', description: 'also train on horizontally flipped images' },
    'only-fine-tuned': {
      type: 'boolean',
      description: 'pick among fine-tuned classifiers only (default: also each size without fine-tuning)',
    },
    data: { type: 'path', exists: 'any', description: "dataset folder (default: the run's)" },
    'train-split': { type: 'string', description: "split to train the classifier on (default: the run's)" },
    'val-split': { type: 'string', description: "split that picks the size (default: the run's validation split)" },
    seed: { type: 'integer', min: 0, description: "random seed (default: the run's)" },
    device: deviceOption,
    threads: { type: 'integer', min: 0, default: 0, description: 'CPU threads (0 = all)' },
    workers: { type: 'integer', min: 0, description: 'decode workers (default: automatic)' },
    out: { type: 'path', description: 'output run folder (default <run>/fixres-<size>)' },
    json: { type: 'boolean', description: 'print the result as JSON' },
  },
  async run({ options: o, args }) {
    const sizes = o.sizes ?? (o.size !== undefined ? [o.size] : []);
    if (sizes.length === 0) throw new UsageError('give the test resolution: --size 280, or --sizes 224,256,280,320');
    if (o.size !== undefined && o.sizes) throw new UsageError('give --size or --sizes, not both');
    T.setNumThreads(o.threads > 0 ? o.threads : availableParallelism());
    const res = await fixres({
      run: args.run,
      sizes,
      epochs: o.epochs,
      lr: o.lr,
      batchSize: o['batch-size'],
      classBalanced: o['class-balanced'],
      flip: o.flip,
      candidates: o['only-fine-tuned'] ? 'fine-tuned' : 'all',
      device: T.resolveDevice(o.device),
      ...(o['weight-decay'] !== undefined ? { weightDecay: o['weight-decay'] } : {}),
      ...(o.seed !== undefined ? { seed: o.seed } : {}),
      ...(o.workers !== undefined ? { workers: o.workers } : {}),
      ...(o.data ? { data: o.data } : {}),
      ...(o['train-split'] ? { trainSplit: o['train-split'] } : {}),
      ...(o['val-split'] !== undefined ? { valSplit: o['val-split'] } : {}),
      ...(o.out ? { out: o.out } : {}),
      onLog: (l) => {
        if (!o.json) console.error(l);
      },
    });
    if (o.json) {
      console.log(JSON.stringify(res, null, 2));
      return;
    }
    console.log('size   before    after');
    for (const s of res.sizes) {
      console.log(
        `${String(s.size).padEnd(5)}  ${pct(s.before.top1).padStart(7)}  ${s.after ? pct(s.after.top1).padStart(7) : '      -'}`,
      );
    }
    console.log(
      `best: ${res.best.size} px, top-1 ${pct(res.best.top1)}${res.best.fineTuned ? ' (classifier fine-tuned)' : ''}`,
    );
    console.log(`trained: ${res.trained.join(', ')}`);
    console.log(`run folder: ${res.runDir}`);
  },
});
