// goodsrec models: the registered architectures with their parameter counts.
import { defineCommand } from 'citty';
import { listModels, createModel, getModelCfg } from '../../models/index.js';

export default defineCommand({
  meta: { name: 'models', description: 'List the registered models with parameters (at 1000 classes) and default input size.' },
  args: { json: { type: 'boolean', description: 'print JSON' } },
  run({ args }) {
    const rows = listModels().map((name) => {
      const m = createModel(name, { numClasses: 1000, log: null });
      const params = m.numParameters();
      m.dispose();
      const cfg = getModelCfg(name);
      return { name, params, inputSize: cfg.inputSize };
    });
    if (args.json) { console.log(JSON.stringify(rows, null, 2)); return; }
    const w = Math.max(...rows.map((r) => r.name.length));
    for (const r of rows) console.log(`${r.name.padEnd(w)}  ${(r.params / 1e6).toFixed(2).padStart(7)} M params  input ${r.inputSize.join('x')}`);
  },
});
