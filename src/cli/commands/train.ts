// goodsrec train: the recipe end to end, configured by a YAML/JSON file and flags.
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import {
  resolveConfig,
  loadConfigFile,
  parseOverride,
  readStoredConfig,
  configHelp,
  ConfigError,
  type ConfigLayer,
  type TrainConfig,
} from '../../run/config.js';
import { ProgressReporter } from '../../train/progress.js';
import type { TrainWorkerData, TrainWorkerMessage } from '../../train/worker-entry.js';
import type { TrainResult } from '../../train/trainer.js';
import { defineCliCommand, type OptionSpec, type OptionValues } from '../options.js';
import { CONFIG_FLAGS, flagLayers, suggestSet } from '../config-flags.js';
import { EXIT, UsageError } from '../errors.js';
import { launchRanks, stripLaunchFlags } from '../../distributed/launch.js';
import { isCuda } from '../../tensor/device.js';
import { recipeLayer } from '../../train/recipes.js';
import { explicitKeys, applyPretrainedCfg } from '../../run/pretrained-cfg.js';
import { RUN_FILE } from '../../run/layout.js';
import { RunFolder } from '../../run/run-folder.js';
import { pretrainedArchitecture, resolvePretrained, checkArchitecture } from '../../hub/index.js';

/**
 * Pretrained weights by name: the model comes from the weights unless --model was given,
 * and the weights' data config sets the input options the user did not set (the recipe's
 * preset does not count as the user's). Downloads here, with progress, before training.
 */
async function withPretrained(c: TrainConfig, layers: ConfigLayer[]): Promise<TrainConfig> {
  const user = explicitKeys(layers.filter((l) => !l.source.startsWith('--recipe')));
  const arch = pretrainedArchitecture(c.model.pretrained!);
  const config = structuredClone(c);
  if (arch && !user.has('model.name')) config.model.name = arch;
  const p = await resolvePretrained(config.model.pretrained!);
  if (p.architecture && !user.has('model.name')) config.model.name = p.architecture;
  checkArchitecture(p, config.model.name);
  const r = applyPretrainedCfg(config, p, user);
  if (r.record?.applied?.length) {
    const value = (k: string): unknown =>
      k.split('.').reduce<unknown>((o, x) => (o as Record<string, unknown>)[x], r.config);
    console.error(
      `pretrained ${p.name}: ${r.record.applied.map((k) => `${k}=${JSON.stringify(value(k))}`).join(', ')} (from its config; set them to override)`,
    );
  }
  return r.config;
}

const pct = (v: number): string => `${(100 * v).toFixed(2)}%`;

/** The config layers given on the command line: recipe, file, then flags, then --set (in order). */
function configLayers(o: OptionValues<typeof trainOptions>): ConfigLayer[] {
  const layers: ConfigLayer[] = [];
  if (o.recipe) {
    try {
      layers.push(recipeLayer(o.recipe));
    } catch (e) {
      throw new ConfigError((e as Error).message);
    }
  }
  if (o.config) layers.push({ source: o.config, values: loadConfigFile(o.config) });
  layers.push(...flagLayers(o));
  for (const s of o.set) layers.push({ source: `--set ${s}`, values: parseOverride(s) });
  return layers;
}

/** The config: the layers over the defaults, or on --resume the run folder's own (migrated) config. */
async function resolveFromCommandLine(o: OptionValues<typeof trainOptions>): Promise<TrainConfig> {
  const layers = configLayers(o);
  if (!o.resume) {
    const config = resolveConfig(layers);
    return config.model.pretrained ? await withPretrained(config, layers) : config;
  }
  const run = new RunFolder(o.resume);
  if (!run.isRun()) throw new ConfigError(`--resume ${o.resume}: not a run folder (no ${RUN_FILE.config})`);
  if (layers.length)
    throw new ConfigError(
      '--resume continues a run with its stored config; options cannot be changed (start a new run instead)',
    );
  return readStoredConfig(run.path('config'));
}

const trainOptions = {
  config: { type: 'path', exists: 'file', description: 'YAML or JSON config file' },
  recipe: {
    type: 'enum',
    values: ['finetune'],
    description:
      "preset applied before --config and flags: 'finetune' (lower lr, warmup, 15 epochs, layer-wise lr decay)",
  },
  ...CONFIG_FLAGS,
  name: {
    type: 'string',
    pattern: /^[^/\\]+$/,
    expected: 'a folder name (no slashes)',
    description: 'run folder name (default <model>-<time>)',
  },
  resume: { type: 'path', exists: 'dir', description: 'continue this run folder from its latest checkpoint' },
  set: {
    type: 'string',
    repeatable: true,
    description: 'override any option, repeatable: --set optim.lr=0.05 (every option is listed below)',
  },
  'nproc-per-node': {
    type: 'integer',
    min: 1,
    description: 'data-parallel: processes (ranks) on this machine; each gets cores/N threads',
  },
  nnodes: { type: 'integer', min: 1, description: 'data-parallel: machines in the job (default 1)' },
  'node-rank': { type: 'integer', min: 0, description: 'data-parallel: index of this machine (default 0)' },
  'master-addr': { type: 'string', description: 'data-parallel: address of node 0 (default 127.0.0.1)' },
  'master-port': {
    type: 'integer',
    min: 1,
    max: 65535,
    description: 'data-parallel: free port on node 0 for the rendezvous (default 29500)',
  },
  'print-config': { type: 'boolean', description: 'print the resolved config as JSON and exit' },
  json: { type: 'boolean', description: 'print the result as JSON' },
} as const satisfies Record<string, OptionSpec>;

const command = defineCliCommand({
  name: 'train',
  description:
    'Train a recognizer with the competition recipe (defaults <- --config file <- flags <- --set key=value).',
  options: trainOptions,
  suggest: suggestSet,
  async run({ options: args }) {
    const config = await resolveFromCommandLine(args);
    if (args['print-config']) {
      console.log(JSON.stringify(config, null, 2));
      return;
    }
    if (args['nproc-per-node'] !== undefined || args.nnodes !== undefined) {
      const nnodes = args.nnodes ?? 1,
        nodeRank = args['node-rank'] ?? 0;
      if (nodeRank >= nnodes)
        throw new UsageError(`--node-rank: expected an integer < --nnodes (${nnodes}) but received '${nodeRank}'`);
      // CUDA ranks without the GPUs or NCCL they need: one error now, not the same one from every rank.
      if (isCuda(config.device))
        (await import('../../tensor/index.js')).checkLocalRanks(config.device, args['nproc-per-node'] ?? 1);
      // Launcher: this process only starts the ranks (torchrun's contract) and watches them.
      const code = await launchRanks(
        process.argv[1]!,
        stripLaunchFlags(process.argv.slice(2)),
        {
          nprocPerNode: args['nproc-per-node'] ?? 1,
          nnodes,
          nodeRank,
          masterAddr: args['master-addr'] ?? '127.0.0.1',
          masterPort: args['master-port'] ?? 29500,
        },
        (line) => console.error(`goodsrec launch: ${line}`),
      );
      return code === 0 ? EXIT.ok : code === EXIT.interrupted ? EXIT.interrupted : EXIT.failure;
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
        if (!quiet)
          progress.log(`${sig}: finishing the current step and saving a checkpoint (again to abort without saving)`);
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
          progress.log(
            `epoch ${r.epoch}: train loss ${r.trainLoss.toFixed(4)} | ${r.imagesPerSec.toFixed(1)} img/s | ${r.seconds.toFixed(0)} s${val}`,
          );
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
    if (result instanceof Error) throw result;
    if (quiet) return result.stopped ? EXIT.interrupted : EXIT.ok;
    if (args.json) console.log(JSON.stringify(result, null, 2));
    else {
      const best = result.best
        ? `best val top-1 ${pct(result.best.top1)} (epoch ${result.best.epoch})`
        : 'no validation';
      console.log(
        `${result.stopped ? 'stopped' : 'done'} in ${(result.seconds / 60).toFixed(1)} min: ${best}\nrun folder: ${result.runDir}`,
      );
    }
    const skipped = result.skippedInputs ?? 0;
    return result.stopped ? EXIT.interrupted : skipped ? EXIT.partial : EXIT.ok;
  },
});

/** Shown after the usage by `goodsrec train --help`. */
export const extraHelp = (): string =>
  `OPTIONS (config-file keys; set any of them with --set key=value)\n\n${configHelp()}`;
export default command;
