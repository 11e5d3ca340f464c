// goodsrec export and goodsrec serve through the CLI, on a run folder made
// from the stand-in recognizer: export writes model.onnx + model.json;
// serve <run> exports on demand, answers like `goodsrec predict`, and
// stops cleanly on SIGTERM.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { saveCheckpoint, writePointer } from '../src/run/checkpoint.js';
import { DEFAULT_CONFIG } from '../src/run/config.js';
import type { LoadedRecognizer } from '../src/eval/predictor.js';
import type { OnnxSidecar } from '../src/serve/onnx/export.js';
import type { PredictResponse } from '../src/serve/server.js';
import { SAMPLE, repoRoot, standInRecognizer } from './serve-helpers.js';

const cli = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const work = mkdtempSync(join(tmpdir(), 'goodsrec-serve-cli-'));
const run = join(work, 'run');
let recognizer: LoadedRecognizer | undefined;

before(async () => {
  const s = await standInRecognizer(work);
  recognizer = s.recognizer;
  // A run folder as `goodsrec train` leaves it: config, classes, pre-processing, a best checkpoint.
  mkdirSync(run, { recursive: true });
  const p = SAMPLE.preprocess;
  const config = {
    ...DEFAULT_CONFIG,
    model: { ...DEFAULT_CONFIG.model, name: 'resnet18' },
    input: { ...DEFAULT_CONFIG.input, ...p },
  };
  writeFileSync(join(run, 'config.json'), JSON.stringify(config));
  writeFileSync(join(run, 'classes.json'), JSON.stringify(SAMPLE.classes));
  writeFileSync(join(run, 'preprocess.json'), JSON.stringify(p));
  await saveCheckpoint(join(run, 'checkpoints'), 'epoch-0001', {
    model: recognizer.model.stateTensors(),
    optimizer: {},
    state: {},
  });
  writePointer(run, 'best', 'epoch-0001');
});

after(() => {
  recognizer?.model.dispose();
  rmSync(work, { recursive: true, force: true });
});

function goodsrec(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('goodsrec export writes model.onnx and its sidecar; a bad format or view is a clear error', () => {
  const out = join(work, 'exported');
  const r = goodsrec(['export', run, '--format', 'onnx', '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /resnet18: \d+ ONNX nodes \(opset 17\), 6 classes, input \[batch, 3, 64, 64\]/);
  const sc = JSON.parse(readFileSync(join(out, 'model.json'), 'utf8')) as OnnxSidecar;
  assert.equal(sc.format, 'goodsrec-onnx');
  assert.equal(sc.model, 'resnet18');
  assert.deepEqual(sc.classes, SAMPLE.classes);
  assert.deepEqual(sc.preprocess, SAMPLE.preprocess);
  assert.equal(sc.source.checkpoint, join(run, 'checkpoints', 'epoch-0001'));
  assert.ok(existsSync(join(out, 'model.onnx')));

  const bad = goodsrec(['export', run, '--format', 'tflite']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--format: expected 'onnx' but received 'tflite'/);
  const badTta = goodsrec(['export', run, '--tta', 'rotate']);
  assert.equal(badTta.code, 2);
  assert.match(
    badTta.stderr,
    /--tta: expected a comma-separated list of 'flip', 'zoom' or 'zoomflip' but received 'rotate'/,
  );
});

test('goodsrec serve <run> exports into the run, answers like goodsrec predict, stops on SIGTERM', async () => {
  const photos = SAMPLE.photos.filter((_, i) => i % 10 === 0);
  const predicted = goodsrec(['predict', run, ...photos, '--json', '--top', '1']);
  assert.equal(predicted.code, 0, predicted.stderr);
  const expected = (JSON.parse(predicted.stdout) as { path: string; top: { class: string }[] }[]).map(
    (p) => p.top[0]!.class,
  );

  const child = spawn(process.execPath, [cli, 'serve', run, '--port', '0', '--threads', '2'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  try {
    const url = await new Promise<string>((res, rej) => {
      const timer = setInterval(() => {
        const m = /listening on (http:\/\/\S+)/.exec(stdout);
        if (m) {
          clearInterval(timer);
          res(m[1]!);
        }
      }, 50);
      void exited.then((code) => {
        clearInterval(timer);
        rej(new Error(`serve exited ${code}: ${stderr}`));
      });
    });
    assert.match(stdout, /exporting .*epoch-0001 to .*export-onnx/);
    assert.ok(existsSync(join(run, 'export-onnx', 'model.onnx')));
    const served: string[] = [];
    for (const p of photos) {
      const r = await fetch(`${url}/v1/predict?top=1`, {
        method: 'POST',
        headers: { 'content-type': 'image/jpeg' },
        body: readFileSync(p),
      });
      assert.equal(r.status, 200);
      served.push(((await r.json()) as PredictResponse).predictions[0]!.top[0]!.label);
    }
    assert.deepEqual(served, expected);
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await exited, 0, stderr);
  assert.match(stdout, /SIGTERM: draining in-flight requests\nstopped/);

  // A second start reuses the export instead of exporting again.
  const again = spawn(process.execPath, [cli, 'serve', run, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out2 = '';
  const done2 = new Promise<number | null>((res) => again.on('exit', (code) => res(code)));
  await new Promise<void>((res) =>
    again.stdout.on('data', (d: Buffer) => {
      out2 += d.toString();
      if (out2.includes('listening on')) res();
    }),
  );
  again.kill('SIGTERM');
  assert.equal(await done2, 0);
  assert.match(out2, /using the export in .*export-onnx/);
});
