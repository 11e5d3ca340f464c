// The one table of training options (src/run/config-schema.ts): every key, given a value of the wrong
// kind and an out-of-range value in each layer, fails with a message naming the layer, the key and what
// it accepts; the defaults are valid; old run folders' config.json load with their old meaning.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CONFIG_SCHEMA, type ConfigEntry } from '../src/run/config-schema.js';
import {
  ConfigError,
  DEFAULT_CONFIG,
  configHelp,
  configKeys,
  parseOverride,
  readStoredConfig,
  resolveConfig,
  validateConfig,
  type TrainConfig,
} from '../src/run/config.js';
import { accepts, type ValueKind } from '../src/util/value-kinds.js';

const root = resolve(import.meta.dirname, '..', '..');
const work = mkdtempSync(join(tmpdir(), 'goodsrec-config-schema-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

const ENTRIES = Object.entries(CONFIG_SCHEMA) as [string, ConfigEntry][];

/** Values no kind but `kind` accepts... of the wrong kind for it (written from the kind's type, not its checker). */
function wrongKind(k: ValueKind): unknown[] {
  switch (k.type) {
    case 'integer':
      return [2.5, '3', true, null, [1]];
    case 'number':
      return ['0.5', true, null, Number.NaN, { n: 1 }];
    case 'enum':
      return [3, true, null, [k.values[0]]];
    case 'boolean':
      return ['no', 'true', 1, 0, null];
    case 'string':
    case 'path':
      return [3, true, ['x'], { x: 1 }];
    case 'list':
      return ['1,2', 3, true, { 0: 1 }];
    case 'null':
      return [0, ''];
    case 'either':
      // Objects are no option's kind; true is not unless an alternative is boolean.
      return [{ x: 1 }, ...(k.of.some((a) => a.type === 'boolean') ? [] : [true])];
  }
}

/** Values of the right kind outside its range: past each bound, not among the values, the wrong length. */
function outOfRange(k: ValueKind): unknown[] {
  switch (k.type) {
    case 'integer':
      return [...(k.min !== undefined ? [k.min - 1] : []), ...(k.max !== undefined ? [k.max + 1] : [])];
    case 'number':
      return [
        ...(k.min !== undefined ? [k.min - 0.5] : []),
        ...(k.max !== undefined ? [k.max + 0.5] : []),
        ...(k.above !== undefined ? [k.above] : []),
        ...(k.below !== undefined ? [k.below] : []),
      ];
    case 'enum':
      return [`${k.values[0]}-nope`];
    case 'boolean':
    case 'null':
      return [];
    case 'string':
      return [...(k.nonEmpty || k.pattern ? [''] : []), ...(k.pattern ? ['gpu'] : [])];
    case 'path':
      return [''];
    case 'list': {
      const good = inRange(k.of);
      return [
        ...(k.length !== undefined ? [Array(k.length + 1).fill(good), Array(k.length - 1).fill(good)] : []),
        ...outOfRange(k.of).map((bad) => [bad, ...Array(Math.max(0, (k.length ?? 1) - 1)).fill(good)]),
      ];
    }
    case 'either':
      return k.of.flatMap(outOfRange);
  }
}

/** One value inside the kind's range. */
function inRange(k: ValueKind): unknown {
  switch (k.type) {
    case 'integer':
      return k.min ?? k.max ?? 0;
    case 'number':
      return k.min ?? (k.above !== undefined ? k.above + (k.below !== undefined ? (k.below - k.above) / 2 : 1) : 0.5);
    case 'enum':
      return k.values[0];
    default:
      throw new Error(`no element sample for ${k.type}`);
  }
}

/** A layer that sets one dotted key. */
function layer(source: string, key: string, value: unknown): { source: string; values: Record<string, unknown> } {
  const values: Record<string, unknown> = {};
  let cur = values;
  const parts = key.split('.');
  parts.slice(0, -1).forEach((p) => {
    cur[p] = {};
    cur = cur[p] as Record<string, unknown>;
  });
  cur[parts[parts.length - 1]!] = value;
  return { source, values };
}

const base = { source: 'test base', values: { data: { root: '(test)' } } };

/** assert.throws' check: a ConfigError whose message (not 'ConfigError: ' + message) matches. */
const says =
  (re: RegExp) =>
  (e: Error): boolean => {
    assert.ok(e instanceof ConfigError, String(e));
    assert.match(e.message, re);
    return true;
  };

test('every key rejects a value of the wrong kind and an out-of-range value, naming layer, key and what it accepts', () => {
  let wrong = 0;
  let range = 0;
  const noRange: string[] = [];
  for (const [key, e] of ENTRIES) {
    const bad = wrongKind(e.kind);
    const far = outOfRange(e.kind);
    assert.ok(bad.length > 0, `${key}: no wrong-kind sample`);
    if (far.length === 0) noRange.push(`${key} (${e.kind.type})`);
    for (const [v, what] of [...bad.map((v) => [v, 'wrong kind']), ...far.map((v) => [v, 'out of range'])] as const) {
      for (const source of [`--set ${key}=x`, join(work, 'cfg.yaml')]) {
        assert.throws(
          () => resolveConfig([base, layer(source, key, v)]),
          (err: Error) => {
            assert.ok(err instanceof ConfigError, `${key}=${JSON.stringify(v)}: ${err}`);
            assert.equal(err.key, key);
            assert.ok(err.message.startsWith(source), `${what} ${key}: the layer is named: ${err.message}`);
            assert.ok(err.message.includes(key), `${what} ${key}: the key is named: ${err.message}`);
            assert.ok(
              err.message.includes(`expected ${accepts(e.kind)}`),
              `${what} ${key}: what it accepts: ${err.message}`,
            );
            return true;
          },
          `${key} = ${JSON.stringify(v)} (${what}, ${source}) was accepted`,
        );
      }
      if (what === 'wrong kind') wrong++;
      else range++;
    }
  }
  // Only kinds without a range (true/false, free text) lack an out-of-range value.
  for (const k of noRange) assert.match(k, /\((boolean|string)\)$/, `${k} has no out-of-range sample`);
  assert.ok(wrong >= ENTRIES.length * 2 && range >= ENTRIES.length - noRange.length, `${wrong} / ${range} samples`);
});

test('negative control: each key takes its default and an in-range value from any layer', () => {
  for (const [key, e] of ENTRIES) {
    const good = e.required ? join(work, 'data') : e.default;
    const c = resolveConfig([base, layer(`--set ${key}`, key, structuredClone(good))]);
    assert.deepEqual(
      key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], c),
      good,
    );
  }
  // A few hand-written acceptances, independent of the table's own words.
  const c = resolveConfig([
    base,
    layer('f', 'classBalanced', true),
    layer('f', 'model.margin', 0.3),
    layer('f', 'model.pretrained', 'torchvision:resnet18'),
    layer('f', 'input.mean', 'dataset'),
    layer('f', 'input.testSize', 256),
    layer('f', 'augment.scale', [0.5, 1]),
    layer('f', 'device', 'cuda:1'),
  ]);
  assert.equal(c.classBalanced, true);
  assert.equal(c.input.mean, 'dataset');
  assert.deepEqual(c.augment.scale, [0.5, 1]);
});

test('the cases the issue found: classBalanced=no and model.dropRate=7 fail; messages in words', () => {
  const cases: [string, unknown, RegExp][] = [
    ['classBalanced', 'no', /^--set classBalanced: expected true or false but received "no"$/],
    ['model.dropRate', 7, /^--set model\.dropRate: expected a number >= 0 and < 1 but received 7$/],
    ['out', '', /expected a path but received ""/],
    ['data.trainSplit', '', /expected a non-empty string/],
    ['model.margin', 2, /expected null or a number >= 0 and < pi\/2 but received 2/],
    ['input.testSize', 8, /expected 0 or an integer >= 16 but received 8/],
    ['input.std', [1, 0, 1], /expected 'dataset' or a list of 3 numbers > 0 but received \[1,0,1\]/],
    ['device', 'gpu', /expected 'auto', 'cpu', 'cuda' or 'cuda:N' but received "gpu"/],
    ['distributed.worldSize', 0, /expected an integer >= 1/],
  ];
  for (const [key, v, msg] of cases)
    assert.throws(() => resolveConfig([base, layer(`--set ${key}`, key, v)]), says(msg), `${key}=${JSON.stringify(v)}`);
});

test("--set key= gives the empty string, which turns validation off; 'null' stays null", () => {
  assert.deepEqual(parseOverride('data.valSplit='), { data: { valSplit: '' } });
  const cfg = resolveConfig([base, { source: '--set data.valSplit=', values: parseOverride('data.valSplit=') }]);
  assert.equal(cfg.data.valSplit, '');
  // control: an explicit null is still YAML's null, which a string key refuses
  assert.deepEqual(parseOverride('model.pretrained=null'), { model: { pretrained: null } });
  assert.throws(
    () => resolveConfig([base, { source: '--set data.valSplit=null', values: parseOverride('data.valSplit=null') }]),
    says(/expected a string but received null/),
  );
});

test('checks across options and layers: warmup below epochs, the missing dataset, unknown keys, sections', () => {
  assert.throws(
    () =>
      resolveConfig([
        base,
        layer('--epochs (schedule.epochs)', 'schedule.epochs', 2),
        layer('a.yaml', 'schedule.warmupEpochs', 2),
      ]),
    says(
      /^a\.yaml: option schedule\.warmupEpochs: expected a number >= 0 and < schedule\.epochs \(2, from --epochs \(schedule\.epochs\)\) but received 2$/,
    ),
  );
  assert.throws(
    () => resolveConfig([base, layer('a.yaml', 'finetune.headOnlyEpochs', 75)]),
    says(/finetune\.headOnlyEpochs: expected an integer >= 0 and < schedule\.epochs \(75\)/),
  );
  assert.equal(resolveConfig([base, layer('a.yaml', 'schedule.warmupEpochs', 74)]).schedule.warmupEpochs, 74);
  assert.throws(
    () => resolveConfig([]),
    says(/^missing option data\.root: .* \(give --data, or data\.root in a config file\)$/),
  );
  assert.throws(
    () => resolveConfig([base, layer('a.yaml', 'optim.lrr', 1)]),
    says(/^a\.yaml: unknown option 'optim\.lrr' \(did you mean 'optim\.lr'\?\)$/),
  );
  assert.throws(
    () => resolveConfig([base, layer('a.yaml', 'optim', 1)]),
    says(/^a\.yaml: 'optim' is a section, not an option/),
  );
  // A YAML section left empty reads as null: nothing set.
  assert.equal(resolveConfig([base, { source: 'a.yaml', values: { augment: null } }]).augment.cutout, 14);
});

test('DEFAULT_CONFIG, docs, --help and flags come from the table', () => {
  assert.deepEqual(configKeys(), Object.keys(CONFIG_SCHEMA));
  const flat: string[] = [];
  const walk = (o: unknown, p: string): void => {
    if (typeof o === 'object' && o !== null && !Array.isArray(o))
      for (const [k, v] of Object.entries(o)) walk(v, p ? `${p}.${k}` : k);
    else flat.push(p);
  };
  walk(DEFAULT_CONFIG, '');
  assert.deepEqual(flat, configKeys(), 'DEFAULT_CONFIG has every key, in the table order');
  // Every default but the required dataset validates (validateConfig checks every key).
  validateConfig({ ...structuredClone(DEFAULT_CONFIG), data: { ...DEFAULT_CONFIG.data, root: 'x' } });
  assert.throws(() => validateConfig(structuredClone(DEFAULT_CONFIG)), says(/data\.root/));
  const help = configHelp().split('\n');
  assert.equal(help.length, ENTRIES.length);
  const flags = new Set<string>();
  for (const [i, [key, e]] of ENTRIES.entries()) {
    assert.ok(e.doc.length > 0, `${key}: a doc line`);
    assert.ok(help[i]!.includes(key) && help[i]!.includes(`[${accepts(e.kind)}]`), help[i]);
    if (e.lessThan) assert.equal((CONFIG_SCHEMA as Record<string, ConfigEntry>)[e.lessThan]?.kind.type, 'integer');
    if (e.flag) {
      assert.match(e.flag.name, /^[a-z][a-z0-9-]*$/);
      assert.ok(!flags.has(e.flag.name), `--${e.flag.name} twice`);
      flags.add(e.flag.name);
      assert.ok(help[i]!.includes(`--${e.flag.name}`), help[i]);
    }
  }
});

test('a config.json from the first layout loads with the old meaning of the options it lacks', () => {
  const fixture = join(root, 'test', 'fixtures', 'config-first-layout.json');
  const stored = JSON.parse(readFileSync(fixture, 'utf8')) as Record<string, Record<string, unknown>>;
  // The fixture really is the old layout: none of the later options.
  for (const k of ['head', 'embeddingDim', 'margin']) assert.ok(!(k in stored.model!), k);
  for (const k of ['finetune', 'distributed']) assert.ok(!(k in stored), k);
  assert.ok(!('cacheMB' in stored.data!) && !('testSize' in stored.input!) && !('interpolation' in stored.input!));
  const c = readStoredConfig(fixture);
  // The migrations validateConfig applied before the table, and the ones it lacked (distributed.*).
  assert.equal(c.data.cacheMB, 2048, 'the cache was on (2 GiB) before data.cacheMB existed');
  assert.equal(c.data.maxPixels, DEFAULT_CONFIG.data.maxPixels);
  assert.equal(c.model.head, 'linear');
  assert.deepEqual(
    [c.model.embeddingDim, c.model.bnNeck, c.model.scale, c.model.margin, c.model.easyMargin],
    [512, true, 30, null, false],
  );
  assert.equal(c.input.testSize, 0);
  assert.equal(c.input.interpolation, 'bilinear');
  assert.deepEqual(c.finetune, { headOnlyEpochs: 0, layerDecay: 1, freezeBn: false });
  assert.deepEqual(c.distributed, { bucketCapMB: 25, syncBn: false, worldSize: 1, globalBatch: 0 });
  // The stored values themselves are kept.
  assert.equal(c.model.name, 'resnet18');
  assert.equal(c.schedule.epochs, 2);
  // Negative controls: an option every layout has is required, a bad stored value and an unknown option
  // (a newer layout) are errors naming the file and the key.
  const write = (name: string, v: unknown): string => {
    const p = join(work, name);
    writeFileSync(p, JSON.stringify(v));
    return p;
  };
  const noLr = structuredClone(stored);
  delete noLr.optim!.lr;
  const p1 = write('no-lr.json', noLr);
  assert.throws(
    () => readStoredConfig(p1),
    (e: Error) =>
      e.message === `${p1}: option optim.lr: expected a number > 0 but received nothing (the option is missing)`,
  );
  const p2 = write('bad.json', { ...stored, classBalanced: 'no' });
  assert.throws(() => readStoredConfig(p2), says(new RegExp(`^${p2}: option classBalanced: expected true or false`)));
  const p3 = write('newer.json', { ...stored, fromTheFuture: 1 });
  assert.throws(() => readStoredConfig(p3), says(new RegExp(`^${p3}: unknown option 'fromTheFuture'`)));
  // validateConfig migrates a config object in place (the trainer's resume path).
  const obj = structuredClone(stored) as unknown as TrainConfig;
  validateConfig(obj);
  assert.equal(obj.data.cacheMB, 2048);
});
