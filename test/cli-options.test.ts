// The CLI's one option layer, through the compiled CLI: bad values name the option and what it accepts,
// unknown options and commands are errors with a did-you-mean, usage errors exit 2 (runtime failures 1),
// and a run killed before its first checkpoint can be resumed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { closestNames, editDistance } from '../src/util/did-you-mean.js';
import { parseCommandLine } from '../src/cli/options.js';

const root = resolve(import.meta.dirname, '..', '..');
const cli = join(root, 'dist', 'src', 'cli', 'main.js');
const sample = join(root, 'examples', 'grocery-sample');
const work = mkdtempSync(join(tmpdir(), 'goodsrec-cli-options-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

function run(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], {
    encoding: 'utf8',
    env: { ...process.env, CI: '1' },
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('edit distance and did-you-mean', () => {
  assert.equal(editDistance('kitten', 'sitting'), 3);
  assert.equal(editDistance('', 'abc'), 3);
  assert.deepEqual(closestNames('batch-sise', ['batch-size', 'split', 'size']), ['batch-size']);
  assert.deepEqual(closestNames('zzzzzz', ['batch-size', 'split']), []);
});

test('parseCommandLine: types, defaults, flags, repeats', () => {
  const spec = {
    top: { type: 'integer', min: 1, default: 5, description: '' },
    mean: { type: 'enum', values: ['logits', 'probs'], description: '' },
    ema: { type: 'boolean', default: true, description: '' },
    set: { type: 'string', repeatable: true, description: '' },
    w: { type: 'list', of: { type: 'number', min: 0 }, description: '' },
  } as const;
  const p = parseCommandLine(spec, [
    'a',
    '--top=3',
    '--no-ema',
    '--set',
    'x=1',
    '--set',
    'y=2',
    '--w',
    '0.5,1',
    '--',
    '--top',
  ]);
  assert.deepEqual(p.options, { top: 3, ema: false, set: ['x=1', 'y=2'], w: [0.5, 1] });
  assert.deepEqual(p.positionals, ['a', '--top']);
  assert.deepEqual(parseCommandLine(spec, []).options, { top: 5, ema: true, set: [] });
  for (const [args, msg] of [
    [['--top', 'abc'], /--top: expected an integer >= 1 but received 'abc'/],
    [['--top', '2.5'], /--top: expected an integer/],
    [['--top', ''], /--top: expected an integer/],
    [['--top'], /--top needs a value: an integer >= 1/],
    [['--top', '1', '--top', '2'], /--top given twice/],
    [['--mean', 'prob'], /--mean: expected 'logits' or 'probs' but received 'prob' \(did you mean 'probs'\?\)/],
    [['--w', '1,-1'], /--w: expected a comma-separated list of numbers >= 0 but received '1,-1'/],
    [['--tpo', '3'], /unknown option --tpo; did you mean --top\?/],
    [['--ema=yes'], /--ema is a flag/],
  ] as const) {
    assert.throws(
      () => parseCommandLine(spec, args),
      (e: Error) => e.name === 'UsageError' && msg.test(e.message),
      String(args),
    );
  }
});

test('every command: bad option values exit 2 and name the option and what it accepts', () => {
  const cases: [string[], RegExp][] = [
    [['predict', sample, sample, '--top', 'abc'], /--top: expected an integer >= 1 but received 'abc'/],
    [['eval', sample, '--batch-size', '0'], /--batch-size: expected an integer >= 1 but received '0'/],
    [['eval', sample, '--crop-pct', '2'], /--crop-pct: expected a number > 0 and <= 1 but received '2'/],
    [['eval', sample, '--device', 'gpu'], /--device: expected 'auto', 'cpu', 'cuda' or 'cuda:N' but received 'gpu'/],
    [['serve', sample, '--port', '99999'], /--port: expected an integer >= 0 and <= 65535/],
    [['report', join(work, 'none.json')], /EVAL: '.*none\.json' not found/],
    [['fixres', sample, '--sizes', '224,abc'], /--sizes: expected a comma-separated list of integers >= 16/],
    [['export', sample, '--format', 'tflite'], /--format: expected 'onnx' but received 'tflite'/],
    [
      ['export', sample, '--int8', '--calibration-percentile', '101'],
      /--calibration-percentile: expected a number >= 50/,
    ],
    [
      ['export', sample, '--int8', '--calibration-method', 'mse', '--calibration-percentile', '99.9'],
      /--calibration-percentile applies to --calibration-method percentile, not mse/,
    ],
    [['ensemble', sample, sample, '--mean', 'median'], /--mean: expected 'logits' or 'probs'/],
    [['average', sample, '--last', '-1'], /--last: expected an integer >= 1/],
    [['train', '--data', join(work, 'nope')], /--data \(data\.root\): '.*nope' not found/],
    [
      ['train', '--data', sample, '--epochs', '0'],
      /--epochs \(schedule\.epochs\): expected an integer >= 1 but received '0'/,
    ],
    [['train', '--data', sample, '--batch-size', 'abc'], /--batch-size \(batchSize\): expected an integer >= 1/],
    [
      ['train', '--data', sample, '--head', 'arcfce'],
      /--head \(model\.head\): expected .* \(did you mean 'arcface'\?\)/,
    ],
    [
      ['train', '--data', sample, '--set', 'classBalanced=no'],
      /--set classBalanced=no: expected true or false but received "no"/,
    ],
    [
      ['train', '--data', sample, '--set', 'model.dropRate=7'],
      /--set model\.dropRate=7: expected a number >= 0 and < 1/,
    ],
    [['train', '--print-config'], /missing option data\.root: .*give --data/],
  ];
  for (const [args, msg] of cases) {
    const r = run(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, msg, args.join(' '));
  }
});

test('unknown options and commands are errors with a did-you-mean (exit 2)', () => {
  const pre = run(['train', '--data', sample, '--label-smoothing', '0.2', '--print-config']);
  assert.equal(pre.code, 2, pre.stderr);
  assert.match(pre.stderr, /unknown option --label-smoothing; did you mean --set loss\.labelSmoothing=0\.2\?/);
  const set = run(['train', '--data', sample, '--set', 'optim.lrr=0.1', '--print-config']);
  assert.equal(set.code, 2);
  assert.match(set.stderr, /unknown option 'optim\.lrr' \(did you mean 'optim\.lr'\?\)/);
  const typo = run(['eval', sample, '--batchsize', '8']);
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /unknown option --batchsize; did you mean --batch-size\?/);
  const cmd = run(['trian']);
  assert.equal(cmd.code, 2);
  assert.match(cmd.stderr, /unknown command 'trian' \(did you mean 'train'\?\)/);
  // Negative control: the same command lines without the mistake are accepted.
  const ok = run([
    'train',
    '--data',
    sample,
    '--set',
    'loss.labelSmoothing=0.2',
    '--set',
    'optim.lr=0.1',
    '--print-config',
  ]);
  assert.equal(ok.code, 0, ok.stderr);
  const cfg = JSON.parse(ok.stdout) as { loss: { labelSmoothing: number }; optim: { lr: number }; device: string };
  assert.equal(cfg.loss.labelSmoothing, 0.2);
  assert.equal(cfg.optim.lr, 0.1);
  assert.equal(cfg.device, 'auto');
});

test('train config layers: a YAML and a JSON file, flags and --set, in order; errors name the layer and the key', () => {
  const yaml = join(work, 'layers.yaml');
  writeFileSync(yaml, 'schedule:\n  epochs: 3\n  warmupEpochs: 1\noptim:\n  lr: 0.2\n  nesterov: true\naugment:\n');
  const json = join(work, 'layers.json');
  writeFileSync(json, JSON.stringify({ schedule: { epochs: 3 }, optim: { lr: 0.2, nesterov: true } }));
  for (const file of [yaml, json]) {
    const r = run([
      'train',
      '--data',
      sample,
      '--config',
      file,
      '--lr',
      '0.3',
      '--set',
      'optim.lr=0.4',
      '--print-config',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const c = JSON.parse(r.stdout) as { schedule: { epochs: number }; optim: { lr: number; nesterov: boolean } };
    assert.deepEqual([c.schedule.epochs, c.optim.nesterov, c.optim.lr], [3, true, 0.4], file);
    // Without the --set, the flag wins over the file.
    const f = run(['train', '--data', sample, '--config', file, '--lr', '0.3', '--print-config']);
    assert.equal((JSON.parse(f.stdout) as { optim: { lr: number } }).optim.lr, 0.3);
  }
  const bad = join(work, 'bad.yaml');
  writeFileSync(bad, 'optim:\n  nesterov: yes\n');
  const b = run(['train', '--data', sample, '--config', bad, '--print-config']);
  assert.equal(b.code, 2);
  assert.ok(b.stderr.includes(`${bad}: option optim.nesterov: expected true or false but received "yes"`), b.stderr);
  const cross = run(['train', '--data', sample, '--config', yaml, '--epochs', '1', '--print-config']);
  assert.equal(cross.code, 2);
  assert.ok(
    cross.stderr.includes(
      `${yaml}: option schedule.warmupEpochs: expected a number >= 0 and < schedule.epochs (1, from --epochs (schedule.epochs)) but received 1`,
    ),
    cross.stderr,
  );
});

test('train --help lists the config flags with their option and every config key with what it accepts', () => {
  const r = run(['train', '--help']);
  assert.equal(r.code, 0);
  const text = stripVTControlCharacters(r.stdout);
  assert.match(text, /--epochs=<epochs>\s+epochs \(schedule\.epochs\) \[an integer >= 1\]/);
  assert.match(text, /--sync-bn\s+data-parallel: .*\(distributed\.syncBn\)/);
  assert.match(text, /^ {2}classBalanced +class-balanced sampling .* \[true or false\] \(default false\)$/m);
  assert.match(text, /^ {2}optim\.lr +.* \[a number > 0\] \(default 0\.1; --lr\)$/m);
});

test('train --resume of a run folder from the first config layout: its missing options get their old meaning', () => {
  const dir = join(work, 'old-run');
  mkdirSync(dir);
  copyFileSync(join(root, 'test', 'fixtures', 'config-first-layout.json'), join(dir, 'config.json'));
  const r = run(['train', '--resume', dir, '--print-config']);
  assert.equal(r.code, 0, r.stderr);
  const c = JSON.parse(r.stdout) as { data: { cacheMB: number }; model: { head: string; name: string } };
  assert.equal(c.data.cacheMB, 2048);
  assert.equal(c.model.head, 'linear');
  assert.equal(c.model.name, 'resnet18');
});

test("a subcommand's --help is its own usage, not its group's", () => {
  const sub = run(['gallery', 'calibrate', '--help']);
  assert.equal(sub.code, 0);
  assert.match(sub.stdout, /goodsrec gallery calibrate \[OPTIONS\] <GALLERY>/);
  assert.match(sub.stdout, /--far/);
  // Negative control: the group's help lists subcommands, not their options; an unknown word stays there.
  for (const args of [
    ['gallery', '--help'],
    ['gallery', 'nope', '--help'],
  ]) {
    const group = run(args);
    assert.match(group.stdout, /build\|add\|remove\|list\|calibrate/);
    assert.doesNotMatch(group.stdout, /--far/);
  }
});

test('a runtime failure exits 1, not 2', () => {
  const notRun = join(work, 'not-a-run');
  writeFileSync(notRun, 'x');
  const r = run(['eval', notRun]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^goodsrec: /);
});

test('a run killed before its first checkpoint resumes from step 0', async () => {
  const args = [
    'train',
    '--data',
    sample,
    '--model',
    'resnet18',
    '--size',
    '32',
    '--batch-size',
    '8',
    '--epochs',
    '1',
    '--set',
    'data.fraction=0.25',
    '--set',
    'threads=2',
    '--set',
    'data.workers=1',
    '--out',
    work,
    '--name',
    'early',
  ];
  const dir = join(work, 'early');
  const child = spawn(process.execPath, [cli, ...args], { env: { ...process.env, CI: '1' }, stdio: 'ignore' });
  const exited = new Promise<void>((res) => child.on('exit', () => res()));
  await new Promise<void>((res, rej) => {
    const t0 = Date.now();
    const timer = setInterval(() => {
      if (existsSync(join(dir, 'config.json'))) {
        clearInterval(timer);
        child.kill('SIGKILL');
        res();
      } else if (Date.now() - t0 > 60_000 || child.exitCode !== null) {
        clearInterval(timer);
        rej(new Error('config.json never appeared'));
      }
    }, 10);
  });
  await exited;
  assert.ok(!existsSync(join(dir, 'latest.json')), 'killed before the first checkpoint');
  const again = run(args);
  assert.equal(again.code, 1, again.stderr);
  assert.match(again.stderr, /already exists: .*--resume/);
  const r = run(['train', '--resume', dir]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(existsSync(join(dir, 'best.json')) && existsSync(join(dir, 'classes.json')));
  // Deterministic twin: a folder holding only config.json (killed right after writing it) resumes too.
  const only = join(work, 'only-config');
  mkdirSync(only);
  copyFileSync(join(dir, 'config.json'), join(only, 'config.json'));
  const r2 = run(['train', '--resume', only]);
  assert.equal(r2.code, 0, r2.stderr);
  assert.ok(existsSync(join(only, 'best.json')));
});
