#!/usr/bin/env node
// goodsrec command line. Subcommands load lazily so `goodsrec --help` never
// loads libtorch (~0.3 s, ~200 MB).
import { defineCommand, runCommand, renderUsage, type CommandDef, type ArgsDef } from 'citty';
import { goodsrecVersion } from '../util/version.js';
import { didYouMean } from '../util/did-you-mean.js';
import { EXIT, reportError, UsageError } from './errors.js';

type Lazy = () => Promise<CommandDef<ArgsDef>>;
const load = (p: Promise<{ default: CommandDef<ArgsDef> }>): ReturnType<Lazy> => p.then((m) => m.default);

const commands: Record<string, Lazy> = {
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
  pull: () => load(import('./commands/pull.js')),
  gallery: () => load(import('./commands/gallery.js')),
  audit: () => load(import('./commands/audit.js')),
  ablate: () => load(import('./commands/ablate.js')),
};

const main = defineCommand({
  meta: {
    name: 'goodsrec',
    version: goodsrecVersion(),
    description: 'Recognise retail products in shop photos: analyze a dataset, train, evaluate, predict.',
  },
  subCommands: commands,
});

// Commands may export extraHelp() (e.g. train's full option list), printed after citty's usage.
const extraHelp: Record<string, () => Promise<string>> = {
  train: async () => (await import('./commands/train.js')).extraHelp(),
};

async function showUsage(cmd: CommandDef<ArgsDef>, name?: string, sub = false): Promise<void> {
  console.log((await renderUsage(cmd, name ? main : undefined)) + '\n');
  const extra = name && !sub ? extraHelp[name] : undefined;
  if (extra) console.log((await extra()) + '\n');
}

/** The subcommand the leading words name (`gallery build --help` is build's help, not gallery's). */
async function helpTarget(cmd: CommandDef<ArgsDef>, words: readonly string[]): Promise<CommandDef<ArgsDef>> {
  const word = words[0];
  if (word === undefined || word.startsWith('-') || !cmd.subCommands) return cmd;
  const subs = typeof cmd.subCommands === 'function' ? await cmd.subCommands() : await cmd.subCommands;
  const sub = Object.hasOwn(subs, word) ? subs[word] : undefined;
  if (!sub) return cmd;
  return helpTarget(await (typeof sub === 'function' ? sub() : sub), words.slice(1));
}

/**
 * The second line of --version: the libtorch the addon was built against, whether CUDA is compiled in and how
 * many GPUs it sees, and the addon file; a sentence saying why when the addon does not load.
 */
async function engineVersion(): Promise<string> {
  try {
    const T = await import('../tensor/index.js');
    const b = T.buildInfo();
    const cuda = b.cudaCompiled
      ? `CUDA compiled in${b.nccl ? ' with NCCL' : ''}, ${b.cudaDevices} device${b.cudaDevices === 1 ? '' : 's'}`
      : 'no CUDA';
    const { findAddon } = await import('../util/addon.js');
    return `libtorch ${b.torchVersion} (${cuda}; addon ${findAddon('native')})`;
  } catch (e) {
    return `libtorch: not loaded (${(e as Error).message.split('\n')[0]})`;
  }
}

// Dispatch by hand rather than citty's runMain, which exits 1 on every usage error:
// here a bad command line exits 2 (see EXIT), and an unknown command gets a did-you-mean.
async function run(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  const isHelp = (a: string): boolean => a === '--help' || a === '-h';
  if (name === undefined || isHelp(name)) {
    await showUsage(main);
    if (name === undefined) process.exitCode = EXIT.usage;
    return;
  }
  if (name === '--version' || name === '-v') {
    console.log(goodsrecVersion());
    console.log(await engineVersion());
    return;
  }
  const lazy = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!lazy) {
    const what = name.startsWith('-') ? 'option' : 'command';
    reportError(
      new UsageError(
        `unknown ${what} '${name}'${didYouMean(name, Object.keys(commands))}`,
        `commands: ${Object.keys(commands).join(', ')} (goodsrec --help)`,
      ),
    );
    return;
  }
  const cmd = await lazy();
  const dashDash = rest.indexOf('--');
  if ((dashDash < 0 ? rest : rest.slice(0, dashDash)).some(isHelp)) {
    const target = await helpTarget(cmd, rest);
    await showUsage(target, name, target !== cmd);
    return;
  }
  try {
    await runCommand(cmd, { rawArgs: rest });
  } catch (e) {
    // citty's own checks (a missing required argument) are usage errors too.
    reportError((e as Error).name === 'CLIError' ? new UsageError((e as Error).message) : e, name);
  }
}

await run(process.argv.slice(2));
