#!/usr/bin/env node
// goodsrec command line. Subcommands load lazily so `goodsrec --help` never
// loads libtorch (~0.3 s, ~200 MB).
import { defineCommand, runMain, renderUsage, type CommandDef, type ArgsDef } from 'citty';
import { goodsrecVersion } from '../util/version.js';

type Lazy = () => Promise<import('citty').CommandDef<any>>;
const load = (p: Promise<{ default: import('citty').CommandDef<any> }>): ReturnType<Lazy> => p.then((m) => m.default);

const main = defineCommand({
  meta: {
    name: 'goodsrec',
    version: goodsrecVersion(),
    description: 'Recognise retail products in shop photos: analyze a dataset, train, evaluate, predict.',
  },
  subCommands: {
    analyze: () => load(import('./commands/analyze.js')),
    train: () => load(import('./commands/train.js')),
    eval: () => load(import('./commands/eval.js')),
    predict: () => load(import('./commands/predict.js')),
    models: () => load(import('./commands/models.js')),
    export: () => load(import('./commands/export.js')),
    serve: () => load(import('./commands/serve.js')),
    fixres: () => load(import('./commands/fixres.js')),
    ensemble: () => load(import('./commands/ensemble.js')),
    average: () => load(import('./commands/average.js')),
    report: () => load(import('./commands/report.js')),
    gallery: () => load(import('./commands/gallery.js')),
  },
});

// Commands may export extraHelp() (e.g. train's full option list), printed after citty's usage.
const extraHelp: Record<string, () => Promise<string>> = {
  train: async () => (await import('./commands/train.js')).extraHelp(),
};

async function showUsage<T extends ArgsDef = ArgsDef>(cmd: CommandDef<T>, parent?: CommandDef<T>): Promise<void> {
  console.log((await renderUsage(cmd, parent)) + '\n');
  const meta = typeof cmd.meta === 'function' ? await cmd.meta() : await cmd.meta;
  const extra = parent && meta?.name ? extraHelp[meta.name] : undefined;
  if (extra) console.log((await extra()) + '\n');
}

runMain(main, { showUsage });
