// goodsrec fixres: re-train only the classifier at the test resolution (frozen trunk, BN in eval mode).
import { defineCommand } from 'citty';
import { availableParallelism } from 'node:os';
import * as T from '../../tensor/index.js';
import { fixres } from '../../train/fixres.js';
import { fail } from '../errors.js';

const pct = (v: number): string => `${(100 * v).toFixed(2)}%`;

/** Parses a positive number option; a clear error otherwise. */
function num(name: string, v: string | undefined, int = false): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || (int && !Number.isInteger(n))) throw new Error(`--${name}: expected ${int ? 'an integer' : 'a number'} >= 0 but received '${v}'`);
  return n;
}

export default defineCommand({
  meta: { name: 'fixres', description: 'FixRes: fine-tune only the classifier at the test resolution (frozen trunk, BatchNorm in eval mode); --sizes sweeps resolutions.' },
  args: {
    run: { type: 'positional', description: 'run folder (its best checkpoint) or checkpoint folder', required: true },
    size: { type: 'string', description: 'test resolution' },
    sizes: { type: 'string', description: 'comma-separated resolutions to compare, e.g. 224,256,280,320 (the best is saved)' },
    epochs: { type: 'string', description: 'classifier epochs at each size (0 = evaluate only)', default: '5' },
    lr: { type: 'string', description: 'SGD learning rate (cosine to lr/1000)', default: '0.001' },
    'batch-size': { type: 'string', description: 'batch size', default: '64' },
    'weight-decay': { type: 'string', description: "weight decay (default: the run's)" },
    'class-balanced': { type: 'boolean', description: 'class-balanced sampling (decoupled classifier re-training for the long tail)' },
    flip: { type: 'boolean', description: 'also train on horizontally flipped images' },
    'only-fine-tuned': { type: 'boolean', description: 'pick among fine-tuned classifiers only (default: also each size without fine-tuning)' },
    data: { type: 'string', description: "dataset folder (default: the run's)" },
    'train-split': { type: 'string', description: "split to train the classifier on (default: the run's)" },
    'val-split': { type: 'string', description: "split that picks the size (default: the run's validation split)" },
    seed: { type: 'string', description: "random seed (default: the run's)" },
    device: { type: 'string', description: "'cpu', 'cuda', 'cuda:N'", default: 'cpu' },
    threads: { type: 'string', description: 'CPU threads (0 = all)', default: '0' },
    workers: { type: 'string', description: 'decode workers (default: automatic)' },
    out: { type: 'string', description: 'output run folder (default <run>/fixres-<size>)' },
    json: { type: 'boolean', description: 'print the result as JSON' },
  },
  async run({ args }) {
    try {
      const sizes = args.sizes ? args.sizes.split(',').map((s) => num('sizes', s.trim(), true)!) : args.size ? [num('size', args.size, true)!] : [];
      if (sizes.length === 0) throw new Error('give the test resolution: --size 280, or --sizes 224,256,280,320');
      const threads = num('threads', args.threads, true)!;
      T.setNumThreads(threads > 0 ? threads : availableParallelism());
      const seed = num('seed', args.seed, true);
      const wd = num('weight-decay', args['weight-decay']);
      const workers = num('workers', args.workers, true);
      const res = await fixres({
        run: args.run, sizes, epochs: num('epochs', args.epochs, true)!, lr: num('lr', args.lr)!, batchSize: num('batch-size', args['batch-size'], true)!,
        classBalanced: !!args['class-balanced'], flip: !!args.flip, candidates: args['only-fine-tuned'] ? 'fine-tuned' : 'all', device: args.device as T.Device,
        ...(wd !== undefined ? { weightDecay: wd } : {}), ...(seed !== undefined ? { seed } : {}), ...(workers !== undefined ? { workers } : {}),
        ...(args.data ? { data: args.data } : {}), ...(args['train-split'] ? { trainSplit: args['train-split'] } : {}),
        ...(args['val-split'] !== undefined ? { valSplit: args['val-split'] } : {}), ...(args.out ? { out: args.out } : {}),
        onLog: (l) => { if (!args.json) console.error(l); },
      });
      if (args.json) { console.log(JSON.stringify(res, null, 2)); return; }
      console.log('size   before    after');
      for (const s of res.sizes) console.log(`${String(s.size).padEnd(5)}  ${pct(s.before.top1).padStart(7)}  ${s.after ? pct(s.after.top1).padStart(7) : '      -'}`);
      console.log(`best: ${res.best.size} px, top-1 ${pct(res.best.top1)}${res.best.fineTuned ? ' (classifier fine-tuned)' : ''}`);
      console.log(`trained: ${res.trained.join(', ')}`);
      console.log(`run folder: ${res.runDir}`);
    } catch (e) {
      if (process.env.GOODSREC_DEBUG) console.error(e);
      fail((e as Error).message);
    }
  },
});
