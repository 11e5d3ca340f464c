// goodsrec models: the registered architectures with their parameter counts and FLOPs.
import { listModels, createModel, getModelCfg } from '../../models/index.js';
import { countFlops } from '../../models/flops.js';
import { defineCliCommand } from '../options.js';

export default defineCliCommand({
  name: 'models',
  description:
    'List the registered models with parameters (at 1000 classes), GFLOPs (multiply-adds) at 224x224 and default input size.',
  options: {
    json: { type: 'boolean', description: 'print JSON' },
    flops: {
      type: 'boolean',
      default: true,
      description: 'count FLOPs at 224 (one forward per model; --no-flops skips it)',
    },
    filter: { type: 'string', description: "only names matching this glob ('resnet*')" },
  },
  run({ options: args }) {
    const rows = listModels(args.filter || undefined).map((name) => {
      const m = createModel(name, { numClasses: 1000, log: null });
      try {
        const params = m.numParameters();
        const gflops = args.flops ? countFlops(m, [3, 224, 224]).macs / 1e9 : null;
        const cfg = getModelCfg(name);
        return { name, params, gflops224: gflops, inputSize: cfg.inputSize };
      } finally {
        m.dispose();
      }
    });
    if (args.json) {
      console.log(JSON.stringify(rows, null, 2));
      return;
    }
    const w = Math.max(...rows.map((r) => r.name.length));
    for (const r of rows) {
      const flops = r.gflops224 === null ? '' : `  ${r.gflops224.toFixed(2).padStart(6)} GFLOPs@224`;
      console.log(
        `${r.name.padEnd(w)}  ${(r.params / 1e6).toFixed(2).padStart(7)} M params${flops}  input ${r.inputSize.join('x')}`,
      );
    }
  },
});
