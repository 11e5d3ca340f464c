// npm run demo: the main job on the embedded sample (6 packaged products from
// the Grocery Store dataset): train a recognizer from scratch on the CPU,
// evaluate it on the held-out photos, and predict one photo. Each step is the
// CLI command a user would type, printed before it runs.
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { readFileSync } from 'node:fs';

const root = resolve(import.meta.dirname, '..', '..');
const cli = join(root, 'dist', 'src', 'cli', 'main.js');
const sample = 'examples/grocery-sample';
const runName = `demo-${new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15)}`;
const runDir = join('runs', runName);

function step(title: string, args: string[]): void {
  console.log(`\n== ${title}\n$ goodsrec ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`demo: '${args[0]}' failed with exit code ${r.status}`);
    process.exit(r.status ?? 1);
  }
}

const t0 = Date.now();
step('train ResNet-18 from scratch with the recipe (96 px, 15 epochs)', [
  'train',
  '--data',
  sample,
  '--model',
  'resnet18',
  '--size',
  '96',
  '--batch-size',
  '16',
  '--epochs',
  '15',
  '--lr',
  '0.4',
  '--set',
  'schedule.warmupEpochs=1',
  '--set',
  'schedule.perIteration=true',
  '--set',
  'augment.cutout=6',
  '--set',
  'checkpointEvery=5',
  '--out',
  'runs',
  '--name',
  runName,
]);
step('evaluate on the held-out test photos (with flip TTA)', ['eval', runDir, '--split', 'test', '--tta', 'flip']);
step('predict one photo', [
  'predict',
  runDir,
  join(sample, 'test', 'Oatly-Oat-Milk', 'Oatly-Oat-Milk_003.jpg'),
  '--top',
  '3',
]);

const ev = JSON.parse(readFileSync(join(root, runDir, 'eval-test.json'), 'utf8')) as {
  metrics: { top1: number; samples: number };
};
console.log(
  `\ndemo done in ${((Date.now() - t0) / 60000).toFixed(1)} min: test top-1 ${(100 * ev.metrics.top1).toFixed(1)}% on ${ev.metrics.samples} photos`,
);
console.log(`outputs: ${join(root, runDir)} (config, classes, metrics.jsonl, checkpoints/, eval-test.json)`);
