// The one loader of goodsrec's two Node-API addons: build/Release/goodsrec_native.node (libtorch, used
// by src/tensor) and goodsrec_image.node (libjpeg-turbo and the pixel kernels, used by src/data).
// It finds a file, loads it and, when that fails, says why in words a user can act on.
//   GOODSREC_ADDON_DIR=DIR  the only folder looked in, for both (e.g. the sanitizer build, scripts/fuzz)
//   GOODSREC_NATIVE=FILE    the libtorch addon to load first (e.g. one built against another libtorch)
//   GOODSREC_NATIVE_IMAGE=0 no image kernels: sharp and the TypeScript kernels do the work
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { packageRoot } from './version.js';

export type AddonName = 'native' | 'image';

interface AddonSpec {
  file: string;
  /** What it is, in messages. */
  what: string;
  /** Names one file to try before build/ (not when GOODSREC_ADDON_DIR is set). */
  fileEnv?: string;
  /** `<var>=0` turns the addon off; only an optional addon has it. */
  offEnv?: string;
  /** Linked against libtorch: load errors are explained against the version the file records. */
  libtorch: boolean;
  /** What to run when it is not built, and when it does not load. */
  build: string;
  rebuild: string;
}

const ADDONS: Record<AddonName, AddonSpec> = {
  native: {
    file: 'goodsrec_native.node',
    what: 'the native addon',
    fileEnv: 'GOODSREC_NATIVE',
    libtorch: true,
    build:
      'Run `npm run setup` (installs libtorch-dev when missing and builds the addon), or `npm run build:native` ' +
      'if libtorch is already installed (see README: libtorch discovery).',
    rebuild: 'If libtorch moved or was upgraded, rebuild with `npm run build:native`.',
  },
  image: {
    file: 'goodsrec_image.node',
    what: 'the native image addon',
    offEnv: 'GOODSREC_NATIVE_IMAGE',
    libtorch: false,
    build: 'Build it with `npm run setup`.',
    rebuild: 'If it was built on another machine or for another Node, rebuild it with `npm run setup`.',
  },
};

const ADDON_DIR = 'GOODSREC_ADDON_DIR';

/** Why an addon cannot be used; the message says what to do. */
export class AddonError extends Error {
  constructor(
    message: string,
    readonly addon: AddonName,
    /** The file that failed to load, or null when none was found. */
    readonly file: string | null,
    /** The dynamic loader's own message, when it refused the file. */
    readonly loaderMessage?: string,
  ) {
    super(message);
    this.name = 'AddonError';
  }
}

/** The files looked at for an addon, in order. */
export function addonCandidates(name: AddonName): string[] {
  const spec = ADDONS[name];
  const dir = process.env[ADDON_DIR];
  if (dir) return [join(dir, spec.file)];
  const root = packageRoot();
  const first = spec.fileEnv ? process.env[spec.fileEnv] : undefined;
  return [
    ...(first ? [first] : []),
    join(root, 'build', 'Release', spec.file),
    join(root, 'build', 'Debug', spec.file),
  ];
}

/** The first candidate that exists; throws AddonError naming every place looked in when none does. */
export function findAddon(name: AddonName): string {
  const spec = ADDONS[name];
  const candidates = addonCandidates(name);
  const found = candidates.find((p) => existsSync(p));
  if (found) return found;
  const dir = process.env[ADDON_DIR];
  if (dir)
    throw new AddonError(
      `goodsrec: ${ADDON_DIR}=${dir} has no ${spec.file} (when set, it is the only folder looked in; ` +
        'unset it to use the addons in build/)',
      name,
      null,
    );
  throw new AddonError(
    `goodsrec: ${spec.what} is not built (looked in ${candidates.join(', ')}).\n${spec.build}`,
    name,
    null,
  );
}

/** A loaded addon: its exports (typed by the caller) and the file they came from. */
export interface LoadedAddon<T> {
  exports: T;
  file: string;
}

/**
 * Finds and loads an addon. Throws AddonError: not built, another libtorch than the one it was
 * compiled against, or the dynamic loader's own reason.
 */
export function loadAddon<T>(name: AddonName): LoadedAddon<T> {
  const spec = ADDONS[name];
  const file = findAddon(name);
  let binding: T;
  try {
    binding = createRequire(import.meta.url)(file) as T;
  } catch (e) {
    const why = (e as Error).message;
    throw new AddonError(explainLoadFailure(spec, file, why), name, file, why);
  }
  if (spec.libtorch) {
    const mismatch = libtorchMismatch((binding as { libtorch?: LibtorchVersions }).libtorch, file);
    if (mismatch) throw new AddonError(mismatch, name, file);
  }
  return { exports: binding, file };
}

/**
 * An addon goodsrec can work without (the image kernels): null when it is turned off, or, with a
 * warning from the main thread (workers load it too, one warning is enough), when it is not built or
 * does not load. A GOODSREC_ADDON_DIR without it is an error: that folder was asked for.
 */
export function loadOptionalAddon<T>(name: AddonName, fallback: string): T | null {
  const spec = ADDONS[name];
  if (spec.offEnv && process.env[spec.offEnv] === '0') return null;
  try {
    return loadAddon<T>(name).exports;
  } catch (e) {
    if (!(e instanceof AddonError) || process.env[ADDON_DIR]) throw e;
    if (isMainThread) {
      process.emitWarning(
        e.file === null
          ? `goodsrec: ${spec.what} is not built (${addonCandidates(name)[0]}); ${fallback}. ${spec.build}`
          : `goodsrec: cannot load ${e.file} (${e.loaderMessage}); ${fallback}. Rebuild with \`npm run setup\`.`,
      );
    }
    return null;
  }
}

function explainLoadFailure(spec: AddonSpec, file: string, why: string): string {
  const compiled = spec.libtorch ? compiledLibtorch(file) : null;
  // Another libtorch lacks symbols this one had, or none is found: the loader's own words, after ours.
  if (compiled && /undefined symbol|libtorch|libc10/.test(why)) {
    return (
      `goodsrec: ${spec.what} ${file} was compiled against libtorch ${compiled}, ` +
      `but the libtorch this process loads does not match it (${loaderReason(why)}); rebuild the addon with ` +
      '`npm run build:native` (or point LIBTORCH / the library path at the libtorch it was built with).'
    );
  }
  // dlopen's message starts with the file name, already in ours.
  const reason = why.startsWith(`${file}: `) ? why.slice(file.length + 2) : why;
  return `goodsrec: failed to load ${spec.what} ${file}: ${reason}\n${spec.rebuild}`;
}

/** The dynamic loader's reason without the file paths it repeats. */
function loaderReason(message: string): string {
  const m = /undefined symbol: \S+|[^\s:]+: cannot open shared object file/.exec(message);
  return m ? m[0] : message.split(': ').slice(-1)[0]!;
}

/** The libtorch the addon was compiled against and the one this process loaded. */
export interface LibtorchVersions {
  compiled: string;
  runtime: string;
  library: string;
}

/** "1.13.0+cpu" -> "1.13.0": local build suffixes do not change the ABI. */
function releaseOf(version: string): string {
  return version.split('+')[0]!.trim();
}

/**
 * The one-sentence error when the addon was compiled against another libtorch than the one the
 * process loaded (null when they agree).
 */
export function libtorchMismatch(v: LibtorchVersions | undefined, addon: string): string | null {
  if (!v) {
    return (
      `goodsrec: the native addon ${addon} predates the libtorch version check; ` +
      'rebuild it with `npm run build:native`.'
    );
  }
  if (v.runtime === 'unknown' || releaseOf(v.compiled) === releaseOf(v.runtime)) return null;
  return (
    `goodsrec: the native addon ${addon} was compiled against libtorch ${v.compiled}, but this process loaded ` +
    `libtorch ${v.runtime} from ${v.library}; rebuild the addon with \`npm run build:native\` ` +
    '(or point LIBTORCH / the library path at the libtorch it was built with).'
  );
}

/** The libtorch version recorded in an addon file (a marker string native/addon.cc embeds), for load errors. */
export function compiledLibtorch(addonFile: string): string | null {
  try {
    const m = /GOODSREC_LIBTORCH_VERSION=([^;\0]+);/.exec(readFileSync(addonFile).toString('latin1'));
    return m ? m[1]! : null;
  } catch {
    return null;
  }
}
