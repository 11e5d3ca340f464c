/**
 * The parsers the fuzzer feeds (test/fuzz/main.ts): each reads untrusted bytes from a file, as goodsrec
 * does. A parser either accepts the input (and what it returns must then hold the parser's promises) or
 * rejects it with a named error (its error class, with the file's path in the message). Anything else
 * (a TypeError, a message without the path, an accepted input that breaks a promise) is a finding.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { BadImageError, imageSizeFromHeader } from '../../src/data/image.js';
import { nativeImage } from '../../src/data/native-image.js';
import { processBuffer, type PipelineConfig } from '../../src/data/transforms.js';
import { recipeEval, recipeTrain } from '../helpers/recipe.js';
import { readGoodsrecManifest, readManifestDataset, type Dataset } from '../../src/data/dataset.js';
import { WeightFileError } from '../../src/io/errors.js';
import { itemSize, numel, type RawTensor } from '../../src/io/dtype.js';
import { readSafetensorsSync } from '../../src/io/safetensors.js';
import { readPthSync } from '../../src/io/pth.js';
import { ZipArchive } from '../../src/io/zip.js';
import { readSidecar } from '../../src/serve/model.js';
import { evalPipeline } from '../../src/run/pipelines.js';
import { validatePipeline } from '../../src/data/transforms.js';
import { packageRoot } from '../../src/util/version.js';
import {
  buildSafetensors,
  buildStoredZip,
  fixPngCrcs,
  imageHotOffsets,
  mutate,
  type FuzzRng,
  type MutateContext,
  type ZipMember,
} from './mutate.js';

export interface FuzzTarget {
  name: string;
  /** The file name each input is written as, in the target's own folder. */
  fileName: string;
  seeds: Uint8Array[];
  /** Derives input i from a seed (byte mutations, plus format repairs where a checksum would hide the rest). */
  makeInput(rng: FuzzRng): Uint8Array;
  /** Parses the file at `path` (its bytes are `bytes`); throws to reject. */
  run(path: string, bytes: Uint8Array, rng: FuzzRng): Promise<void> | void;
  /** A rejection the parser owns: its error class, naming the file (or, for a folder layout, the folder). */
  isNamed(e: unknown, path: string): boolean;
}

/** An accepted input that breaks what the parser promises its callers. */
export class BrokenPromiseError extends Error {
  override readonly name = 'BrokenPromiseError';
}

const enc = new TextEncoder();
const tokens = (...t: string[]): Uint8Array[] => t.map((s) => enc.encode(s));
const bin = (...t: number[][]): Uint8Array[] => t.map((a) => Uint8Array.from(a));

export function seedDir(): string {
  return join(packageRoot(), 'test', 'fuzz', 'seeds');
}

function seed(name: string): Uint8Array {
  return new Uint8Array(readFileSync(join(seedDir(), name)));
}

/** Two Grocery Store photos at full size, when the shared dataset is there. */
function groceryPhotos(): Uint8Array[] {
  const dir = join(
    packageRoot(),
    '..',
    'shared',
    'datasets',
    'grocery-store',
    'dataset',
    'train',
    'Vegetables',
    'Asparagus',
  );
  if (!existsSync(dir)) return [];
  return ['Asparagus_004.jpg', 'Asparagus_012.jpg']
    .filter((f) => existsSync(join(dir, f)))
    .map((f) => new Uint8Array(readFileSync(join(dir, f))));
}

function ownedBy(cls: new (...a: never[]) => Error, e: unknown, path: string): boolean {
  return e instanceof cls && e.message.includes(path);
}

/** A plain Error thrown by goodsrec's own checks (not a TypeError/RangeError from a bad assumption). */
function plainErrorNaming(e: unknown, path: string): boolean {
  return e instanceof Error && e.constructor === Error && e.message.includes(path);
}

// ---------------------------------------------------------------------------------------------
// Images

const MAX_PIXELS = 1_000_000;
const MEAN: [number, number, number] = [0.5, 0.5, 0.5];
const pipelines: PipelineConfig[] = [
  { ...recipeTrain({ input: { size: 24, mean: MEAN, std: MEAN } }), maxPixels: MAX_PIXELS },
  { ...recipeEval({ input: { size: 24, mean: MEAN, std: MEAN } }), maxPixels: MAX_PIXELS, fastDecode: true },
];

const IMAGE_DICT = [
  ...bin(
    [0xff, 0xd8],
    [0xff, 0xd9],
    [0xff, 0xc0, 0x00, 0x11, 0x08],
    [0xff, 0xc2],
    [0xff, 0xda],
    [0xff, 0xdb, 0x00, 0x43],
    [0xff, 0xc4],
    [0xff, 0xdd, 0x00, 0x04, 0x00, 0x01],
    [0xff, 0xd0],
    [0xff, 0xe1, 0xff, 0xff],
    [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
  ),
  ...tokens(
    'Exif\0\0MM\0*\0\0\0\x08',
    'Exif\0\0II*\0\x08\0\0\0',
    'IHDR',
    'IDAT',
    'IEND',
    'PLTE',
    'tRNS',
    'acTL',
    'eXIf',
    'iCCP',
  ),
  // An EXIF IFD entry: orientation tag, SHORT, count 1, value 6; and one with a huge count.
  ...bin([0x01, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x06, 0x00, 0x00], [0xff, 0xff, 0x01, 0x12]),
];

function imageTarget(name: string, fileName: string, small: Uint8Array[], big: Uint8Array[] = []): FuzzTarget {
  const seeds = [...small, ...big];
  return {
    name,
    fileName,
    seeds,
    makeInput(rng) {
      // Full-size photos cost ten times a small seed: one input in ten starts from one.
      const s = big.length && rng.chance(0.1) ? rng.pick(big) : rng.pick(small);
      const ctx: MutateContext = { seeds, dictionary: IMAGE_DICT, hotOffsets: imageHotOffsets(s) };
      const b = mutate(s, rng, ctx);
      return b[0] === 0x89 && rng.chance(0.8) ? fixPngCrcs(b) : b;
    },
    async run(path, bytes, rng) {
      const nat = nativeImage();
      imageSizeFromHeader(bytes);
      if (nat) {
        const info = nat.jpegInfo(bytes);
        if (info && info.width * info.height <= MAX_PIXELS) {
          const d = rng.pick([1, 2, 4, 8]);
          // A window partly outside the image, resampled to 7x5 over the whole window.
          const ww = Math.ceil(Math.max(1, info.width) / d) + 5,
            wh = Math.ceil(Math.max(1, info.height) / d) + 1;
          nat.decodeJpeg(bytes, d, MAX_PIXELS, [-3, -2, ww, wh, 1, 2, 3], [7, 5, [0, ww, 0, ww], [0, wh, 0, wh]]);
        }
      }
      const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const out = await processBuffer(buf, path, rng.pick(pipelines), rng.next(), undefined);
      if (out.width !== 24 || out.height !== 24)
        throw new BrokenPromiseError(`${path}: processed to ${out.width}x${out.height}, not 24x24`);
    },
    isNamed: (e, path) => ownedBy(BadImageError, e, path),
  };
}

// ---------------------------------------------------------------------------------------------
// Weight files

/** Loads the tensors into libtorch (the native addon), as a checkpoint load does, and frees them. */
async function intoEngine(tensors: Map<string, RawTensor>, path: string): Promise<void> {
  for (const [name, t] of tensors) {
    if (
      !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0) ||
      t.data.length !== numel(t.shape) * itemSize(t.dtype)
    ) {
      throw new BrokenPromiseError(
        `${path}: "${name}" accepted with ${t.data.length} bytes for shape [${t.shape}] ${t.dtype}`,
      );
    }
  }
  if (process.env['GOODSREC_FUZZ_ENGINE'] === '0') return;
  const { fromRaw } = await import('../../src/tensor/raw.js');
  for (const t of tensors.values()) fromRaw(t).dispose();
}

const SAFETENSORS_DICT = tokens(
  '"dtype":"F64"',
  '"I8"',
  '"BOOL"',
  '"F8_E4M3"',
  '"U64"',
  '"F16"',
  '"BF16"',
  '"I64"',
  '"U8"',
  '"C64"',
  '"XYZ"',
  '"data_offsets":[0,4]',
  '"data_offsets":[0,0]',
  '"data_offsets":[4,0]',
  '"shape":[]',
  '"shape":[-1]',
  '"shape":[1e9,1e9]',
  '[1.5]',
  '"__metadata__":{"a":1}',
  '{}',
  '[]',
  'null',
  '"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}',
  ',',
  ':',
  '\\u0000',
  '"__proto__"',
);

function safetensorsTarget(): FuzzTarget {
  const seeds = [seed('weights.safetensors')];
  const split = seeds.map((s) => {
    const n = Number(new DataView(s.buffer, s.byteOffset).getBigUint64(0, true));
    return { header: s.subarray(8, 8 + n), data: s.subarray(8 + n) };
  });
  return {
    name: 'safetensors',
    fileName: 'w.safetensors',
    seeds,
    makeInput(rng) {
      if (rng.chance(0.3))
        return mutate(rng.pick(seeds), rng, { seeds, dictionary: SAFETENSORS_DICT, hotOffsets: [0, 4, 8] });
      // Mutate the header text, keep the length prefix right (so the JSON is what gets tested).
      const p = rng.pick(split);
      const header = mutate(p.header, rng, { seeds: split.map((x) => x.header), dictionary: SAFETENSORS_DICT });
      const data = rng.chance(0.2) ? mutate(p.data, rng, { seeds: [], dictionary: [] }) : p.data;
      return buildSafetensors(header, data);
    },
    async run(path) {
      await intoEngine(readSafetensorsSync(path), path);
    },
    isNamed: (e, path) => ownedBy(WeightFileError, e, path),
  };
}

const PICKLE_DICT = [
  ...tokens(
    'cos\nsystem\n',
    'cbuiltins\neval\n',
    'c__builtin__\nexec\n',
    'csubprocess\nPopen\n',
    'cposix\nsystem\n',
    'ctorch._utils\n_rebuild_tensor_v2\n',
    'ccollections\nOrderedDict\n',
    'ctorch\nFloatStorage\n',
    'ctorch\nLongStorage\n',
    '\x8c\x02os\x8c\x06system\x93',
    '\x8c\x08builtins\x8c\x04eval\x93',
    '\x8c\x08builtins\x8c\x07getattr\x93',
    'R',
    'b',
    'i',
    'o',
    '\x81',
    '\x92',
    '\x93',
    'P0\n',
    'Q',
    '(',
    't',
    ')',
    '}',
    ']',
    'e',
    'u',
    's',
    '.',
    '\x94',
    'h\x00',
    'h\xff',
    'q\xff',
    'X\xff\xff\xff\x7f',
    '\x8a\x08',
    '\x8b\xff\xff\xff\x7f',
    '\x95\xff\xff\xff\xff\xff\xff\xff\xff',
    'J\xff\xff\xff\xff',
    'K\x00',
    'M\xff\xff',
    'G',
    '\x8c\x00',
    '\x8d\xff\xff\xff\xff\xff\xff\xff\x7f',
    '\x8e',
    'B\xff\xff\xff\xff',
    'C\x05',
    '\x96',
    '\x97',
    '\x80\x02',
    '\x80\x05',
    '\x82\x01',
    '\x83\x01\x00',
    'I01\n',
    'L123\n',
    "S'x'\n",
    'V\n',
    'F1.0\n',
    'N',
    '\x88',
    '\x89',
    'p0\n',
    'g0\n',
    'j\xff\xff\xff\xff',
  ),
  ...bin([0x85], [0x86], [0x87], [0x8f], [0x90], [0x91], [0x98]),
];

function pthTarget(): FuzzTarget {
  const names = ['state-dict.pth', 'checkpoint-nested.pth'];
  const seeds = names.map(seed);
  const members: ZipMember[][] = names.map((n) => {
    const z = ZipArchive.openSync(join(seedDir(), n));
    try {
      return [...z.entries.keys()].map((name) => ({ name, data: z.readSync(name) }));
    } finally {
      z.close();
    }
  });
  return {
    name: 'pth',
    fileName: 'm.pth',
    seeds,
    makeInput(rng) {
      if (rng.chance(0.25)) {
        const s = rng.pick(seeds);
        const eocd = s.length - 22;
        return mutate(s, rng, {
          seeds,
          dictionary: bin([0x50, 0x4b, 0x05, 0x06], [0x50, 0x4b, 0x01, 0x02], [0x50, 0x4b, 0x06, 0x06]),
          hotOffsets: [eocd + 8, eocd + 10, eocd + 12, eocd + 16, 18, 22, 26],
        });
      }
      // Mutate one record (mostly data.pkl) and rebuild the zip with right CRCs, so the unpickler sees it.
      const m = rng.pick(members).map((x) => ({ ...x }));
      const pkl = m.findIndex((x) => x.name.endsWith('data.pkl'));
      const k = rng.chance(0.75) && pkl >= 0 ? pkl : rng.below(m.length);
      if (rng.chance(0.05)) m.splice(k, 1);
      else m[k]!.data = mutate(m[k]!.data, rng, { seeds: m.map((x) => x.data), dictionary: PICKLE_DICT });
      return buildStoredZip(m);
    },
    async run(path) {
      await intoEngine(readPthSync(path), path);
    },
    isNamed: (e, path) => ownedBy(WeightFileError, e, path),
  };
}

// ---------------------------------------------------------------------------------------------
// Text formats: export sidecar, manifests, class lists

const JSON_DICT = tokens(
  'null',
  'true',
  '[]',
  '{}',
  '"x"',
  '[-1]',
  '[0]',
  '1e999',
  '"\\ud800"',
  '{"__proto__":{}}',
  '"constructor"',
  ',',
  ':',
  '"',
  '\\',
  '"format"',
  '"dims"',
  '"classes"',
  '"preprocess"',
  '"size"',
  '"cropPct"',
  '"mean"',
  '"std"',
  '"resize"',
  '"squash"',
  '"samples"',
  '"path"',
  '"class"',
  '"split"',
  '[1,2,3]',
  '[0,0,0]',
);
const CSV_DICT = tokens(
  '"',
  '""',
  ',',
  '\r\n',
  '\n',
  '\r',
  '\ufeff',
  '#',
  '../../x.jpg',
  ' ',
  'Class ID',
  'Class Name',
  'path',
  'class',
  'split',
  '\u0000',
  '-1',
  '1e3',
  '0x1',
  ',,,',
  '"a\nb"',
  '\u00e9',
  'e\u0301',
);

function textTarget(
  name: string,
  fileName: string,
  seedNames: string[],
  dictionary: Uint8Array[],
  run: (path: string) => void,
  folderNamed = false,
): FuzzTarget {
  const seeds = seedNames.map(seed);
  return {
    name,
    fileName,
    seeds,
    makeInput: (rng) => mutate(rng.pick(seeds), rng, { seeds, dictionary }),
    run,
    isNamed: (e, path) => plainErrorNaming(e, folderNamed ? dirname(path) : path),
  };
}

function checkDataset(ds: Dataset, path: string): void {
  for (const s of ds.samples) {
    if (typeof s.path !== 'string' || s.path === '' || !(s.label >= 0 && s.label < ds.classes.length)) {
      throw new BrokenPromiseError(`${path}: accepted a sample ${JSON.stringify(s)} with ${ds.classes.length} classes`);
    }
  }
}

function sidecarTarget(): FuzzTarget {
  return textTarget('onnx-sidecar', 'model.json', ['model.json'], JSON_DICT, (path) => {
    const s = readSidecar(path);
    // What the server and predictor then use: every one of these must hold for an accepted sidecar.
    const dims = [...s.input.dims, ...s.output.dims, ...(s.embedding?.dims ?? [])];
    if (!dims.every((d) => Number.isSafeInteger(d) && d > 0))
      throw new BrokenPromiseError(`${path}: accepted dims ${dims}`);
    if (!s.classes.every((c) => typeof c === 'string') || s.output.dims[0] !== s.classes.length) {
      throw new BrokenPromiseError(`${path}: accepted ${s.classes.length} classes for output dims ${s.output.dims}`);
    }
    if (typeof s.input.name !== 'string' || typeof s.output.name !== 'string')
      throw new BrokenPromiseError(`${path}: tensor names`);
    validatePipeline(evalPipeline(s.preprocess));
  });
}

function manifestFolderTarget(name: 'classes-csv' | 'split-manifest'): FuzzTarget {
  // The folder holds a classes.csv and a train.txt; one of them is the fuzzed file, the other the seed.
  const other = name === 'classes-csv' ? 'train.txt' : 'classes.csv';
  const otherBytes = seed(other);
  const t = textTarget(
    name,
    name === 'classes-csv' ? 'classes.csv' : 'train.txt',
    [name === 'classes-csv' ? 'classes.csv' : 'train.txt'],
    CSV_DICT,
    (path) => {
      const sibling = join(dirname(path), other);
      if (!existsSync(sibling)) writeFileSync(sibling, otherBytes);
      checkDataset(readManifestDataset(dirname(path)), path);
    },
    true,
  );
  return t;
}

export function allTargets(): FuzzTarget[] {
  const seeds = readdirSync(seedDir());
  const jpegs = seeds.filter((f) => f.endsWith('.jpg')).map(seed);
  const pngs = seeds.filter((f) => f.endsWith('.png')).map(seed);
  return [
    imageTarget('jpeg', 'photo.jpg', jpegs, groceryPhotos()),
    imageTarget('png', 'photo.png', pngs),
    safetensorsTarget(),
    pthTarget(),
    sidecarTarget(),
    manifestFolderTarget('classes-csv'),
    manifestFolderTarget('split-manifest'),
    textTarget('manifest-json', 'manifest.json', ['manifest.json'], JSON_DICT, (path) =>
      checkDataset(readGoodsrecManifest(path), path),
    ),
    textTarget('manifest-csv', 'manifest.csv', ['manifest.csv'], CSV_DICT, (path) =>
      checkDataset(readGoodsrecManifest(path), path),
    ),
  ];
}

export function targetDir(root: string, t: FuzzTarget): string {
  const d = join(root, t.name);
  mkdirSync(d, { recursive: true });
  return d;
}
