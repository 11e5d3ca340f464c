// goodsrec average: a checkpoint whose weights are the mean of a run's last k checkpoints.
import { averageCheckpoints } from '../../run/average.js';
import { defineCliCommand } from '../options.js';

export default defineCliCommand({
  name: 'average',
  description: "Average the weights of a run's last k checkpoints into a new checkpoint (checkpoints/avg-last<k>).",
  positionals: { run: { description: 'run folder', required: true, exists: 'dir' } },
  options: {
    last: { type: 'integer', min: 1, default: 3, description: 'how many of the newest checkpoints' },
    name: {
      type: 'string',
      pattern: /^[^/\\]+$/,
      expected: 'a folder name (no slashes)',
      description: 'name of the new checkpoint folder (default avg-last<k>)',
    },
  },
  async run({ options: o, args }) {
    const r = await averageCheckpoints(args.run, o.last, o.name ?? `avg-last${o.last}`);
    console.log(`averaged ${r.from.length} checkpoint(s): ${r.from.map((f) => f.split('/').pop()).join(', ')}`);
    console.log(`written: ${r.dir} (goodsrec eval ${r.dir})`);
  },
});
