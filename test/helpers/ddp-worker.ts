// One rank of the data-parallel parity test (test/dist-parity.test.ts), started with torchrun's
// environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT). Same model, data, sharding and optimizer
// as test/oracle/ddp_oracle.py. Usage: node ddp-worker.js <dir> <steps> <mode>
//   mode 'ddp': DataParallel as the trainer uses it (all-reduce overlapped with backward, small buckets so
//   there are several); 'ddp-post': all buckets after backward; 'nosync': no gradient averaging;
//   'sum': gradients summed instead of averaged (the two negative controls); 'syncbn': as 'ddp' with the
//   BatchNorm layers converted to SyncBatchNorm.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as T from '../../src/tensor/index.js';
import {
  BatchNorm2d,
  Conv2d,
  Linear,
  ReLU,
  AdaptiveAvgPool2d,
  Flatten,
  Sequential,
  readStateDict,
  saveWeights,
} from '../../src/nn/index.js';
import { SGD } from '../../src/optim/index.js';
import { shardOrder } from '../../src/data/shard.js';
import { distEnvFromProcess } from '../../src/distributed/env.js';
import { DataParallel } from '../../src/distributed/data-parallel.js';
import { convertSyncBatchNorm } from '../../src/distributed/sync-batchnorm.js';

type Mode = 'ddp' | 'ddp-post' | 'nosync' | 'sum' | 'syncbn';
const [dir, stepsArg, mode] = process.argv.slice(2) as [string, string, Mode];
const steps = Number(stepsArg);
const env = distEnvFromProcess();
if (!env) throw new Error('ddp-worker: WORLD_SIZE is not set');
T.setNumThreads(1);

const model = new Sequential(
  new Conv2d(3, 8, 3, { padding: 1, bias: false }),
  new BatchNorm2d(8),
  new ReLU(),
  new Conv2d(8, 16, 3, { stride: 2, padding: 1 }),
  new BatchNorm2d(16),
  new ReLU(),
  new AdaptiveAvgPool2d(1),
  new Flatten(),
  new Linear(16, 5),
);
model.to('float64');
const init = readStateDict(join(dir, 'init.safetensors'));
// Rank 1 starts from other weights: the broadcast from rank 0 must replace them.
if (env.rank !== 0)
  T.noGrad(() => {
    for (const t of init.values()) if (T.isFloating(t.dtype)) t.add_(1);
  });
model.loadStateDict(init);
for (const t of init.values()) t.dispose();

const data = readStateDict(join(dir, 'data.safetensors'));
const x = data.get('x')!;
const y = data.get('y')!;
const pg = T.ProcessGroup.init({
  masterAddr: env.masterAddr,
  masterPort: env.masterPort,
  rank: env.rank,
  worldSize: env.worldSize,
  timeoutMs: env.timeoutMs,
});
const overlapped = mode === 'ddp' || mode === 'syncbn';
if (mode === 'syncbn' && convertSyncBatchNorm(model, pg) !== 2) throw new Error('ddp-worker: expected 2 BatchNorm');
const smallBuckets = { bucketCapMB: 0.004, firstBucketCapMB: 0.001 };
const dp = new DataParallel(pg, model, overlapped ? smallBuckets : { overlap: false });
dp.broadcastState();
const opt = new SGD(model.parameters(), { lr: 0.1, momentum: 0.9, weightDecay: 1e-4 });
const n = y.shape[0]!;
const order = shardOrder(
  Int32Array.from({ length: n }, (_, i) => i),
  env,
  true,
);
const per = Math.floor(order.length / steps);
const losses: number[] = [];
let early = 0;
model.train();
for (let s = 0; s < steps; s++) {
  dp.beforeForward();
  if (overlapped) dp.beforeBackward();
  const loss = T.tidy(() => {
    const idx = T.tensor(Array.from(order.subarray(s * per, (s + 1) * per)), [per]).long();
    const l = T.F.crossEntropy(model.forward(x.indexSelect(0, idx)), y.indexSelect(0, idx));
    opt.zeroGrad();
    l.backward();
    return l.item();
  });
  if (overlapped || mode === 'ddp-post') dp.averageGradients();
  else if (mode === 'sum')
    T.tidy(() =>
      pg.allreduceBuckets(
        model
          .parameters()
          .reverse()
          .map((p) => p.grad!),
        dp.buckets,
        1,
      ),
    );
  early = Math.max(early, dp.lastEarlyBuckets);
  opt.step();
  losses.push(loss);
}
saveWeights(model, join(dir, `goodsrec-${mode}-rank${env.rank}.safetensors`));
writeFileSync(
  join(dir, `goodsrec-${mode}-rank${env.rank}.json`),
  JSON.stringify({ losses, buckets: dp.buckets, bytes: dp.bytesPerStep, early }),
);
pg.destroy();
