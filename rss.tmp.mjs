import { DataLoader, readManifestDataset, selectSplits, recipeTrainPipeline } from './dist/src/data/index.js';
const ds = selectSplits(readManifestDataset('/work/shared/datasets/grocery-store'), 'train');
const l = new DataLoader({ dataset: ds, pipeline: { ...recipeTrainPipeline({ size: 224 }), fastDecode: true }, batchSize: 64, workers: 2, reuseBuffers: process.env.REUSE === '1' });
for (let e = 0; e < 5; e++) { const t = performance.now(); let n = 0; for await (const b of l) n += b.shape[0];
  console.log(`epoch ${e}: ${(n / ((performance.now() - t) / 1000)).toFixed(0)} img/s, rss ${(process.memoryUsage().rss / 2**20).toFixed(0)} MiB`); }
await l.close();
