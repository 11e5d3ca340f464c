// goodsrec train: the recipe end to end, configured by a YAML/JSON file and flags.
import { defineCommand } from 'citty';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { resolveConfig, loadConfigFile, parseOverride, configHelp, ConfigError, type TrainConfig } from '../../train/config.js';
import { ProgressReporter } from '../../train/progress.js';
import type { TrainWorkerData, TrainWorkerMessage } from '../../train/worker-entry.js';
import type { TrainResult } from '../../train/trainer.js';
import { fail } from '../errors.js';
import { launchRanks, stripLaunchFlags } from '../../distributed/launch.js';

const pct = (v: number): string => `${(100 * v).toFixed(2)}%`;

const command = defineCommand({
  meta: {
    name: 'train',
    description: 'Train a recognizer with the competition recipe (defaults <- --config file <- flags <- --set key=value).',
  },
  args: {
    config: { type: 'string', description: 'YAML or JSON config file' },
    data: { type: 'string', description: 'dataset folder (data.root)' },
    model: { type: 'string', description: 'model name (model.name)' },
    epochs: { type: 'string', description: 'epochs (schedule.epochs)' },
    'batch-size': { type: 'string', description: 'batch size' },
    lr: { type: 'string', description: 'learning rate at batch 128 (optim.lr)' },
    size: { type: 'string', description: 'input resolution (input.size)' },
    device: { type: 'string', description: "'auto', 'cpu', 'cuda', 'cuda:N'" },
    amp: { type: 'string', description: "mixed precision: 'auto', 'off', 'bf16', 'fp16'" },
    seed: { type: 'string', description: 'random seed' },
    out: { type: 'string', description: 'folder for run folders (default runs)' },
    name: { type: 'string', description: 'run folder name (default <model>-<time>)' },
    resume: { type: 'string', description: 'continue this run folder from its latest checkpoint' },
    set: { type: 'string', description: 'override any option, repeatable: --set optim.lr=0.05 (every option is listed below)' },
    'print-config': { type: 'boolean', description: 'print the resolved config as JSON and exit' },
    json: { type: 'boolean', description: 'print the result as JSON' },
    'nproc-per-node': { type: 'string', description: 'data-parallel: processes (ranks) on this machine; each gets cores/N threads' },
    nnodes: { type: 'string', description: 'data-parallel: machines in the job (default 1)' },
    'node-rank': { type: 'string', description: 'data-parallel: index of this machine (default 0)' },
    'master-addr': { type: 'string', description: 'data-parallel: address of node 0 (default 127.0.0.1)' },
    'master-port': { type: 'string', description: 'data-parallel: free port on node 0 for the rendezvous (default 29500)' },
  },
  async run({ args, rawArgs }) {
    let config: TrainConfig;
    try {
      const layers: { source: string; values: Record<string, unknown> }[] = [];
      if (args.config) layers.push({ source: args.config, values: loadConfigFile(args.config) });
      const flags: [string | undefined, string][] = [
        [args.data, 'data.root'], [args.model, 'model.name'], [args.epochs, 'schedule.epochs'], [args['batch-size'], 'batchSize'],
        [args.lr, 'optim.lr'], [args.size, 'input.size'], [args.device, 'device'], [args.amp, 'amp'], [args.seed, 'seed'], [args.out, 'out'],
      ];
      for (const [v, key] of flags) if (v !== undefined) layers.push({ source: `--${key}`, values: parseOverride(`${key}=${v}`) });
      // citty keeps only the last --set; read every occurrence from the raw arguments.
      const sets: string[] = [];
      rawArgs.forEach((a, i) => {
        if (a === '--set' && rawArgs[i + 1] !== undefined) sets.push(rawArgs[i + 1]!);
        else if (a.startsWith('--set=')) sets.push(a.slice(6));
      });
      for (const s of sets) layers.push({ source: `--set ${s}`, values: parseOverride(s) });
      if (args.resume) {
        if (!existsSync(join(args.resume, 'config.json'))) throw new ConfigError(`--resume ${args.resume}: not a run folder (no config.json)`);
        if (layers.length) throw new ConfigError('--resume continues a run with its stored config; options cannot be changed (start a new run instead)');
        layers.push({ source: 'resume', values: loadConfigFile(join(args.resume, 'config.json')) });
      }
      config = resolveConfig(layers);
    } catch (e) {
      if (e instanceof ConfigError) return fail(e.message, 'see goodsrec train --help for every option');
      throw e;
    }
    if (args['print-config']) { console.log(JSON.stringify(config, null, 2)); return; }
    if (args['nproc-per-node'] !== undefined || args.nnodes !== undefined) {
      // Launcher: this process only starts the ranks (torchrun's contract) and watches them.
      try {
        const code = await launchRanks(process.argv[1]!, stripLaunchFlags(process.argv.slice(2)), {
          nprocPerNode: Number(args['nproc-per-node'] ?? 1), nnodes: Number(args.nnodes ?? 1), nodeRank: Number(args['node-rank'] ?? 0),
          masterAddr: args['master-addr'] ?? '127.0.0.1', masterPort: Number(args['master-port'] ?? 29500),
        }, (line) => console.error(`goodsrec launch: ${line}`));
        process.exitCode = code;
        return;
      } catch (e) {
        return fail((e as Error).message, 'see goodsrec train --help');
      }
    }
    // Ranks other than 0 of a data-parallel job train silently; rank 0 reports for the job.
    const quiet = (process.env.RANK ?? '0') !== '0' && Number(process.env.WORLD_SIZE ?? 1) > 1;

    const stopFlag = new SharedArrayBuffer(4);
    const stop = new Int32Array(stopFlag);
    const data: TrainWorkerData = {
      config,
      options: { ...(args.resume ? { resume: args.resume } : {}), ...(args.name ? { name: args.name } : {}) },
      stopFlag,
    };
    const workerUrl = new URL('../../train/worker-entry.js', import.meta.url);
    const worker = new Worker(fileURLToPath(workerUrl), { workerData: data });
    const progress = new ProgressReporter();
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals): void => {
      signals++;
      if (signals === 1) {
        Atomics.store(stop, 0, 1);
        if (!quiet) progress.log(`${sig}: finishing the current step and saving a checkpoint (again to abort without saving)`);
      } else {
        progress.log(`${sig}: aborting; the last saved checkpoint is intact`);
        process.exit(130);
      }
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const result = await new Promise<TrainResult | Error>((resolvePromise) => {
      worker.on('message', (m: TrainWorkerMessage) => {
        if (quiet && m.type !== 'done' && m.type !== 'error') return;
        if (m.type === 'step') progress.update(m.progress, m.totalSteps, m.stepsDone);
        else if (m.type === 'log') progress.log(m.line);
        else if (m.type === 'epoch') {
          const r = m.record;
          const val = r.val ? ` | val top-1 ${pct(r.val.top1)} top-5 ${pct(r.val.top5)}` : '';
          progress.log(`epoch ${r.epoch}: train loss ${r.trainLoss.toFixed(4)} | ${r.imagesPerSec.toFixed(1)} img/s | ${r.seconds.toFixed(0)} s${val}`);
        } else if (m.type === 'done') resolvePromise(m.result);
        else if (m.type === 'error') {
          const e = new Error(m.message);
          e.name = m.name;
          if (m.stack) e.stack = m.stack;
          resolvePromise(e);
        }
      });
      worker.on('error', (e) => resolvePromise(e));
      worker.on('exit', (code) => resolvePromise(new Error(`training worker exited with code ${code}`)));
    });
    progress.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await worker.terminate();
    if (result instanceof Error) {
      if (process.env.GOODSREC_DEBUG) console.error(result.stack);
      return fail(result.message);
    }
    if (quiet) { if (result.stopped) process.exitCode = 130; return; }
    if (args.json) console.log(JSON.stringify(result, null, 2));
    else {
      const best = result.best ? `best val top-1 ${pct(result.best.top1)} (epoch ${result.best.epoch})` : 'no validation';
      console.log(`${result.stopped ? 'stopped' : 'done'} in ${(result.seconds / 60).toFixed(1)} min: ${best}\nrun folder: ${result.runDir}`);
    }
    if (result.stopped) process.exitCode = 130;
  },
});

/** Shown after the usage by `goodsrec train --help`. */
export const extraHelp = (): string => `OPTIONS (config-file keys; set any of them with --set key=value)\n\n${configHelp()}`;
export default command;
