// goodsrec average: a checkpoint whose weights are the mean of a run's last k checkpoints.
import { defineCommand } from 'citty';
import { averageCheckpoints } from '../../eval/ensemble.js';
import { fail } from '../errors.js';

export default defineCommand({
  meta: { name: 'average', description: "Average the weights of a run's last k checkpoints into a new checkpoint (checkpoints/avg-last<k>)." },
  args: {
    run: { type: 'positional', description: 'run folder', required: true },
    last: { type: 'string', description: 'how many of the newest checkpoints', default: '3' },
    name: { type: 'string', description: 'name of the new checkpoint folder (default avg-last<k>)' },
  },
  async run({ args }) {
    try {
      const k = Number(args.last);
      const r = await averageCheckpoints(args.run, k, args.name ?? `avg-last${k}`);
      console.log(`averaged ${r.from.length} checkpoint(s): ${r.from.map((f) => f.split('/').pop()).join(', ')}`);
      console.log(`written: ${r.dir} (goodsrec eval ${r.dir})`);
    } catch (e) {
      if (process.env.GOODSREC_DEBUG) console.error(e);
      fail((e as Error).message);
    }
  },
});
