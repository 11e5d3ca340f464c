// Pretrained weights by name against a loopback fake Hub: huggingface_hub's
// protocol and cache layout (checked both ways with huggingface_hub itself),
// redirects, Range resume, errors, offline mode, locking; timm's pretrained_cfg
// driving the run's pre-processing; the finetune recipe's parameter groups.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  readdirSync,
  realpathSync,
  rmSync,
  statSync,
  lstatSync,
  writeFileSync,
  mkdirSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import * as T from '../src/tensor/index.js';
import { createModel } from '../src/models/index.js';
import { writeSafetensorsSync, type RawTensor } from '../src/io/index.js';
import {
  hubDownload,
  type HubError,
  resolvePretrained,
  checkArchitecture,
  zooArchitecture,
  repoFolderName,
  type HubSettings,
} from '../src/hub/index.js';
import { applyPretrainedCfg, explicitKeys } from '../src/run/pretrained-cfg.js';
import { DEFAULT_CONFIG } from '../src/run/config.js';
import { layerDecayGroups, parameterDepths, setTrainMode } from '../src/train/finetune.js';
import { paramGroupsNoDecay } from '../src/optim/index.js';
import { FakeHub, sha256 } from './hub-fake.js';

const root = resolve(import.meta.dirname, '..', '..');
const cli = join(root, 'dist', 'src', 'cli', 'main.js');
const work = mkdtempSync(join(tmpdir(), 'goodsrec-hub-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const hub = new FakeHub();
let n = 0;
const freshCache = (): string => join(work, `cache-${n++}`);
const settings = (over: Partial<HubSettings> = {}): HubSettings => ({
  endpoint: hub.endpoint,
  cacheDir: freshCache(),
  token: null,
  offline: false,
  ...over,
});
const quiet = { progress: false, log: () => undefined };
const TOKEN = 'hf_secretTOKEN1234567890';

const timmConfig = (arch: string, extra: Record<string, unknown> = {}): Buffer =>
  Buffer.from(
    JSON.stringify({
      architecture: arch,
      num_classes: 4,
      num_features: 512,
      label_names: ['a', 'b', 'c', 'd'],
      pretrained_cfg: {
        tag: 'test',
        input_size: [3, 32, 32],
        test_input_size: [3, 40, 40],
        mean: [0.5, 0.4, 0.3],
        std: [0.2, 0.25, 0.3],
        interpolation: 'bicubic',
        crop_pct: 0.9,
        crop_mode: 'center',
        num_classes: 4,
        ...extra,
      },
    }),
  );

let resnet18Weights: Buffer;
const blob = randomBytes(300_000);

before(async () => {
  await hub.start();
  // A real timm-format repo: resnet18 weights (4 classes) as model.safetensors.
  const m = createModel('resnet18', { numClasses: 4, log: null });
  const raw = new Map<string, RawTensor>();
  for (const [k, t] of m.stateTensors()) raw.set(k, T.toRaw(t));
  const f = join(work, 'r18.safetensors');
  writeSafetensorsSync(f, raw);
  m.dispose();
  resnet18Weights = readFileSync(f);
  hub.addRepo('timm/resnet18.test_in1k', {
    'config.json': timmConfig('resnet18'),
    'model.safetensors': resnet18Weights,
  });
  hub.addRepo('test/blob', {
    'config.json': timmConfig('resnet18'),
    'model.safetensors': blob,
    'sub/dir/notes.txt': Buffer.from('hello'),
  });
  hub.addRepo('test/private', { 'config.json': timmConfig('resnet18'), 'model.safetensors': blob }, TOKEN);
  hub.addRepo('timm/efficientnet_b0.test', { 'config.json': timmConfig('efficientnet_b0'), 'model.safetensors': blob });
  hub.renamed.set('test/old-name', 'test/blob');
});
after(() => hub.stop());

test('download: cache layout of huggingface_hub (refs, blobs by etag, relative snapshot symlinks)', async () => {
  const s = settings();
  const r = await hubDownload('test/blob', 'model.safetensors', { settings: s, ...quiet });
  const repo = hub.repos.get('test/blob')!;
  const storage = join(s.cacheDir, 'models--test--blob');
  assert.equal(repoFolderName('test/blob'), 'models--test--blob');
  assert.equal(r.path, join(storage, 'snapshots', repo.commit, 'model.safetensors'));
  assert.equal(readFileSync(join(storage, 'refs', 'main'), 'utf8'), repo.commit);
  assert.ok(lstatSync(r.path).isSymbolicLink());
  assert.equal(readlinkSync(r.path), `../../blobs/${sha256(blob)}`);
  assert.ok(readFileSync(r.path).equals(blob));
  // A nested file's link climbs the extra folders; a small file's blob is named by its git ETag.
  const t = await hubDownload('test/blob', 'sub/dir/notes.txt', { settings: s, ...quiet });
  assert.match(readlinkSync(t.path), /^\.\.\/\.\.\/\.\.\/\.\.\/blobs\/[0-9a-f]{40}$/);
  assert.equal(readFileSync(t.path, 'utf8'), 'hello');
  // The CDN got no Authorization (none was set) and the HEAD was not followed to the CDN.
  assert.ok(hub.log.some((l) => l.method === 'HEAD' && l.path.includes('/resolve/main/model.safetensors')));
  assert.ok(!hub.log.some((l) => l.method === 'HEAD' && l.host === 'cdn'));
  // Second call: no new GET.
  const gets = hub.cdnGets(sha256(blob)).length;
  const again = await hubDownload('test/blob', 'model.safetensors', { settings: s, ...quiet });
  assert.equal(again.cached, true);
  assert.equal(hub.cdnGets(sha256(blob)).length, gets);
});

test('download: a renamed repo (relative redirect) and a commit-hash revision', async () => {
  const s = settings();
  const r = await hubDownload('test/old-name', 'config.json', { settings: s, ...quiet });
  assert.ok(readFileSync(r.path).equals(hub.repos.get('test/blob')!.files.get('config.json')!));
  const commit = hub.repos.get('test/blob')!.commit;
  const c = await hubDownload('test/blob', 'config.json', { settings: s, revision: commit, ...quiet });
  assert.equal(c.path, join(s.cacheDir, 'models--test--blob', 'snapshots', commit, 'config.json'));
  await assert.rejects(
    hubDownload('test/blob', 'config.json', { settings: s, revision: 'v9', ...quiet }),
    (e: HubError) => e.code === 'REVISION_NOT_FOUND',
  );
});

test('download: Range resume after a broken connection, into <blob>.incomplete', async () => {
  const s = settings();
  const sha = sha256(blob);
  hub.faults.truncateNext.set(sha, 128 * 1024);
  await assert.rejects(
    hubDownload('test/blob', 'model.safetensors', { settings: s, ...quiet }),
    (e: HubError) => e.code === 'TRUNCATED' && /run the command again to resume/.test(e.message),
  );
  const part = join(s.cacheDir, 'models--test--blob', 'blobs', `${sha}.incomplete`);
  const have = statSync(part).size;
  assert.ok(have > 0 && have < blob.length, `partial file of ${have} bytes`);
  const before = hub.cdnGets(sha).length;
  const r = await hubDownload('test/blob', 'model.safetensors', { settings: s, ...quiet });
  const gets = hub.cdnGets(sha);
  assert.equal(gets.length, before + 1);
  assert.equal(gets.at(-1)!.range, `bytes=${have}-`);
  assert.ok(readFileSync(r.path).equals(blob));
  assert.ok(!existsSync(part));
});

test('download: sha256 mismatch is an error and leaves nothing in the cache', async () => {
  const s = settings();
  const sha = sha256(blob);
  hub.faults.corrupt.add(sha);
  try {
    await assert.rejects(
      hubDownload('test/blob', 'model.safetensors', { settings: s, ...quiet }),
      (e: HubError) => e.code === 'HASH_MISMATCH' && e.message.includes(sha),
    );
  } finally {
    hub.faults.corrupt.delete(sha);
  }
  const blobs = join(s.cacheDir, 'models--test--blob', 'blobs');
  assert.deepEqual(existsSync(blobs) ? readdirSync(blobs) : [], []);
});

test('errors: 401 private repo names HF_TOKEN, the token works and is never written; 404; 5xx; not a hub', async () => {
  const s = settings();
  await assert.rejects(
    hubDownload('test/private', 'config.json', { settings: s, ...quiet }),
    (e: HubError) => e.code === 'UNAUTHORIZED' && /set HF_TOKEN/.test(e.message),
  );
  await assert.rejects(
    hubDownload('test/nothing', 'config.json', { settings: s, ...quiet }),
    (e: HubError) => e.status === 401,
  );
  const withToken = { ...s, token: TOKEN };
  const r = await hubDownload('test/private', 'model.safetensors', { settings: withToken, ...quiet });
  assert.ok(readFileSync(r.path).equals(blob));
  assert.ok(hub.log.some((l) => l.host === 'hub' && l.headers.authorization === `Bearer ${TOKEN}`));
  assert.ok(
    !hub.log.some((l) => l.host === 'cdn' && l.headers.authorization !== undefined),
    'no token sent to the CDN',
  );
  const grep = spawnSync('grep', ['-rl', TOKEN, s.cacheDir], { encoding: 'utf8' });
  assert.equal(grep.stdout, '', 'token not written in the cache');
  await assert.rejects(
    hubDownload('test/private', 'config.json', { settings: { ...s, token: 'wrong' }, ...quiet }),
    (e: HubError) =>
      e.code === 'UNAUTHORIZED' && /token in HF_TOKEN was not accepted/.test(e.message) && !e.message.includes('wrong'),
  );
  await assert.rejects(
    hubDownload('test/blob', 'missing.bin', { settings: s, ...quiet }),
    (e: HubError) => e.code === 'ENTRY_NOT_FOUND' && e.message.includes("no file 'missing.bin'"),
  );
  // 5xx: an error with an empty cache, the cached copy otherwise.
  const path = '/test/blob/resolve/main/config.json';
  hub.faults.unavailable.add(path);
  try {
    await assert.rejects(
      hubDownload('test/blob', 'config.json', { settings: settings(), ...quiet }),
      (e: HubError) => e.code === 'SERVER' && /503/.test(e.message),
    );
    hub.faults.unavailable.delete(path);
    const first = await hubDownload('test/blob', 'config.json', { settings: s, ...quiet });
    hub.faults.unavailable.add(path);
    const notes: string[] = [];
    const second = await hubDownload('test/blob', 'config.json', {
      settings: s,
      progress: false,
      log: (m) => notes.push(m),
    });
    assert.equal(second.path, first.path);
    assert.match(notes.join('\n'), /HTTP 503.*using the cached/);
  } finally {
    hub.faults.unavailable.delete(path);
  }
  await assert.rejects(
    hubDownload('test/blob', 'config.json', { settings: { ...s, endpoint: hub.cdnBase }, ...quiet }),
  );
  await assert.rejects(
    hubDownload('test/blob', 'config.json', { settings: settings({ endpoint: 'http://127.0.0.1:1' }), ...quiet }),
    (e: HubError) => e.code === 'NETWORK' && /HF_HUB_OFFLINE/.test(e.message),
  );
});

test('offline: HF_HUB_OFFLINE with an empty cache says what to run; with a cache, no request is made', async () => {
  const s = settings();
  await assert.rejects(
    hubDownload('timm/resnet18.test_in1k', 'config.json', { settings: { ...s, offline: true }, ...quiet }),
    (e: HubError) =>
      e.code === 'OFFLINE_NOT_CACHED' && e.message.includes("goodsrec pull hf-hub:timm/resnet18.test_in1k'"),
  );
  await hubDownload('timm/resnet18.test_in1k', 'config.json', { settings: s, ...quiet });
  const requests = hub.log.length;
  const r = await hubDownload('timm/resnet18.test_in1k', 'config.json', {
    settings: { ...s, offline: true },
    ...quiet,
  });
  assert.ok(existsSync(r.path));
  assert.equal(hub.log.length, requests);
});

test('concurrency: callers in one process and two processes share one download', async () => {
  const sha = sha256(blob);
  hub.faults.chunkDelayMs = 40; // ~0.2 s per download: the callers overlap
  try {
    const s = settings();
    const before = hub.cdnGets(sha).length;
    const [a, b] = await Promise.all(
      [0, 1].map(() => hubDownload('test/blob', 'model.safetensors', { settings: s, ...quiet })),
    );
    assert.equal(a!.path, b!.path);
    assert.equal(hub.cdnGets(sha).length, before + 1);
    // Two processes through the CLI's pull, on one cache.
    const cache = freshCache();
    const env = { ...process.env, HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: cache, HF_TOKEN: '' };
    const mid = hub.cdnGets(sha).length;
    const done = await Promise.all(
      [0, 1].map(() => runAsync(process.execPath, [cli, 'pull', 'hf-hub:test/blob', '--json'], env)),
    );
    for (const d of done) assert.equal(d.status, 0, d.stderr);
    assert.equal(hub.cdnGets(sha).length, mid + 1, done.map((d) => d.stderr).join('\n'));
    assert.ok(
      readFileSync(
        join(cache, 'models--test--blob', 'snapshots', hub.repos.get('test/blob')!.commit, 'model.safetensors'),
      ).equals(blob),
    );
  } finally {
    hub.faults.chunkDelayMs = 0;
  }
});

/** A child process run without blocking the event loop (the fake Hub lives in this process). */
function runAsync(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const c = spawn(cmd, args, { env });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    c.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    c.on('close', (status) => res({ status, stdout, stderr }));
  });
}

/** huggingface_hub 2.0 in a venv: GOODSREC_HF_PYTHON, a venv left by an earlier run, or a new one (offline wheels). */
function hfPython(): string | null {
  const ok = (py: string): boolean =>
    spawnSync(py, ['-c', 'import huggingface_hub'], { encoding: 'utf8' }).status === 0;
  if (process.env.GOODSREC_HF_PYTHON && ok(process.env.GOODSREC_HF_PYTHON)) return process.env.GOODSREC_HF_PYTHON;
  const venv = join(tmpdir(), 'goodsrec-hf-venv');
  const py = join(venv, 'bin', 'python');
  if (existsSync(py) && ok(py)) return py;
  if (spawnSync('python3', ['-m', 'venv', venv]).status !== 0) return null;
  spawnSync(join(venv, 'bin', 'pip'), ['install', '-q', '--retries', '0', '--timeout', '5', 'huggingface_hub'], {
    timeout: 180_000,
  });
  return existsSync(py) && ok(py) ? py : null;
}

test('interop: huggingface_hub finds what goodsrec downloaded, and goodsrec finds what huggingface_hub downloaded', async (t) => {
  const py = hfPython();
  if (!py) {
    t.skip(
      'huggingface_hub could not be installed in a venv (pip install huggingface_hub failed): interop not checked',
    );
    return;
  }
  const repo = hub.repos.get('timm/resnet18.test_in1k')!;
  const s = settings();
  const cfg = await hubDownload('timm/resnet18.test_in1k', 'config.json', { settings: s, ...quiet });
  const w = await hubDownload('timm/resnet18.test_in1k', 'model.safetensors', { settings: s, ...quiet });
  const script = `
import sys, json
from huggingface_hub import hf_hub_download
mode, cache, endpoint = sys.argv[1], sys.argv[2], sys.argv[3]
out = {}
for f in ['config.json', 'model.safetensors']:
    out[f] = hf_hub_download('timm/resnet18.test_in1k', f, cache_dir=cache, local_files_only=(mode == 'offline'), endpoint=endpoint)
print(json.dumps(out))
`;
  const env = {
    ...process.env,
    HF_HUB_DISABLE_TELEMETRY: '1',
    HF_HUB_DISABLE_XET: '1',
    HF_HUB_DISABLE_PROGRESS_BARS: '1',
    HF_TOKEN: '',
  };
  const off = await runAsync(py, ['-c', script, 'offline', s.cacheDir, hub.endpoint], env);
  assert.equal(off.status, 0, off.stderr);
  const found = JSON.parse(off.stdout) as Record<string, string>;
  assert.equal(found['config.json'], cfg.path);
  assert.equal(found['model.safetensors'], w.path);
  // The reverse: huggingface_hub downloads from the fake Hub, goodsrec reads its cache offline.
  const theirs = freshCache();
  const on = await runAsync(py, ['-c', script, 'online', theirs, hub.endpoint], env);
  assert.equal(on.status, 0, on.stderr);
  const paths = JSON.parse(on.stdout) as Record<string, string>;
  const requests = hub.log.length;
  const g = await hubDownload('timm/resnet18.test_in1k', 'model.safetensors', {
    settings: settings({ cacheDir: theirs, offline: true }),
    ...quiet,
  });
  assert.equal(realpathSync(g.path), realpathSync(paths['model.safetensors']!));
  assert.equal(g.path, join(theirs, 'models--timm--resnet18.test_in1k', 'snapshots', repo.commit, 'model.safetensors'));
  assert.equal(hub.log.length, requests);
  // huggingface_hub's own layout has the same blob name (the sha256) that goodsrec uses.
  assert.equal(readlinkSync(paths['model.safetensors']!), `../../blobs/${sha256(resnet18Weights)}`);
});

test('names: timm repo -> zoo model with weights and pretrained_cfg; mismatches and unknown names list close matches', async () => {
  const env = { HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: freshCache() };
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    const p = await resolvePretrained('hf-hub:timm/resnet18.test_in1k', quiet);
    assert.equal(p.architecture, 'resnet18');
    assert.deepEqual(p.cfg!.inputSize, [3, 32, 32]);
    assert.deepEqual(p.cfg!.labelNames, ['a', 'b', 'c', 'd']);
    assert.equal(p.cfg!.interpolation, 'bicubic');
    assert.throws(
      () => checkArchitecture(p, 'resnet50'),
      /holds resnet18 weights but model.name is resnet50: use --model resnet18/,
    );
    // The weights load unchanged; the classifier is re-initialised for another class count.
    const m = createModel('resnet18', { numClasses: 7, pretrained: p.weights, log: null });
    const ref = createModel('resnet18', { numClasses: 4, pretrained: p.weights, log: null });
    const a = m.stateTensors();
    const b = ref.stateTensors();
    const bytes = (t: T.Tensor): Buffer =>
      Buffer.from(T.toRaw(t).data.buffer, T.toRaw(t).data.byteOffset, T.toRaw(t).data.byteLength);
    assert.ok(bytes(a.get('layer4.1.conv2.weight')!).equals(bytes(b.get('layer4.1.conv2.weight')!)));
    assert.deepEqual(a.get('fc.weight')!.shape, [7, 512]);
    const fresh = createModel('resnet18', { numClasses: 7, log: null });
    assert.ok(
      !bytes(fresh.stateTensors().get('layer4.1.conv2.weight')!).equals(bytes(a.get('layer4.1.conv2.weight')!)),
      'negative control',
    );
    m.dispose();
    ref.dispose();
    fresh.dispose();
    await assert.rejects(
      resolvePretrained('hf-hub:timm/efficientnet_b0.test', quiet),
      /timm's efficientnet_b0 weights use timm's module layout.*torchvision:efficientnet_b0/,
    );
    await assert.rejects(
      resolvePretrained('hf-hub:timm/resnet18.test_in1k@nope', quiet),
      (e: HubError) => e.code === 'REVISION_NOT_FOUND',
    );
  } finally {
    process.env = saved;
  }
  assert.throws(
    () => zooArchitecture('resnet51.tv_in1k'),
    /'resnet51.tv_in1k' is not in goodsrec's zoo; close matches: .*resnet50/,
  );
  assert.equal(zooArchitecture('swin_t'), 'swin_tiny_patch4_window7_224');
  assert.equal(zooArchitecture('resnet50.a1_in1k'), 'resnet50');
});

test('torchvision: torch.hub cache hit without network; a download whose sha256 prefix differs is rejected', async () => {
  const saved = { ...process.env };
  const torchHome = join(work, 'torch');
  process.env.TORCH_HOME = torchHome;
  process.env.GOODSREC_TORCHVISION_URL = `${hub.cdnBase}/tv`;
  try {
    hub.files.set('/tv/resnet18-f37072fd.pth', blob);
    await assert.rejects(
      resolvePretrained('torchvision:resnet18', quiet),
      /resnet18-f37072fd.pth: sha256 of the downloaded file is [0-9a-f]{64} but f37072fd\.\.\. was expected/,
    );
    assert.equal(hub.log.filter((l) => l.path === '/tv/resnet18-f37072fd.pth').length, 1);
    mkdirSync(join(torchHome, 'hub', 'checkpoints'), { recursive: true });
    writeFileSync(join(torchHome, 'hub', 'checkpoints', 'resnet18-f37072fd.pth'), resnet18Weights);
    const p = await resolvePretrained('torchvision:resnet18.IMAGENET1K_V1', quiet);
    assert.equal(p.weights, join(torchHome, 'hub', 'checkpoints', 'resnet18-f37072fd.pth'));
    assert.equal(p.cfg!.cropPct, 224 / 256);
    await assert.rejects(
      resolvePretrained('torchvision:resnet18.IMAGENET1K_V9', quiet),
      /no weights 'IMAGENET1K_V9' \(known: DEFAULT, IMAGENET1K_V1\)/,
    );
  } finally {
    process.env = saved;
  }
});

test('pretrained_cfg sets the input options the user did not set', () => {
  const p = {
    name: 'hf-hub:x/y',
    weights: '',
    architecture: 'resnet18',
    cfg: {
      inputSize: [3, 32, 32] as [number, number, number],
      testInputSize: [3, 40, 40] as [number, number, number],
      mean: [0.5, 0.4, 0.3] as [number, number, number],
      cropPct: 0.9,
      cropMode: 'squash',
    },
  };
  const user = explicitKeys([{ values: { input: { cropPct: 0.8 } } }]);
  const base = structuredClone(DEFAULT_CONFIG);
  base.input.cropPct = 0.8;
  const r = applyPretrainedCfg(base, p, user);
  assert.equal(r.config.input.size, 32);
  assert.equal(r.config.input.testSize, 40);
  assert.deepEqual(r.config.input.mean, [0.5, 0.4, 0.3]);
  assert.deepEqual(r.config.input.std, DEFAULT_CONFIG.input.std);
  assert.equal(r.config.input.cropPct, 0.8, 'the user value wins');
  assert.equal(r.config.input.resize, 'squash');
  assert.deepEqual(r.record!.applied, ['input.size', 'input.testSize', 'input.mean', 'input.resize']);
  // interpolation and timm's crop_mode reach the eval pre-processing unless the user set them.
  const q = { ...p, cfg: { ...p.cfg, interpolation: 'bicubic', cropMode: 'center' } };
  const applied = applyPretrainedCfg(structuredClone(DEFAULT_CONFIG), q, new Set());
  assert.equal(applied.config.input.interpolation, 'bicubic');
  assert.equal(applied.config.input.resize, 'center');
  const border = applyPretrainedCfg(
    structuredClone(DEFAULT_CONFIG),
    { ...p, cfg: { ...p.cfg, cropMode: 'border' } },
    new Set(),
  );
  assert.equal(border.config.input.resize, 'letterbox', "'border' is the letterbox's geometry");
  const kept = applyPretrainedCfg(
    structuredClone(DEFAULT_CONFIG),
    q,
    explicitKeys([{ values: { input: { resize: 'letterbox', interpolation: 'bilinear' } } }]),
  );
  assert.equal(kept.config.input.resize, 'letterbox', 'the user value wins');
  assert.equal(kept.config.input.interpolation, 'bilinear', 'the user value wins');
  assert.ok(!kept.record!.applied!.includes('input.interpolation'));
});

test('finetune: layer depths, layer-wise lr decay, head-only epochs and frozen BatchNorm', () => {
  const m = createModel('resnet18', { numClasses: 3, log: null });
  const { depth, max } = parameterDepths(m);
  assert.equal(max, 5);
  assert.equal(depth.get('conv1.weight'), 0);
  assert.equal(depth.get('bn1.weight'), 0);
  assert.equal(depth.get('layer3.0.conv1.weight'), 3);
  assert.equal(depth.get('fc.weight'), 5);
  const groups = layerDecayGroups(m, paramGroupsNoDecay(m, 1e-4), 0.1, 0.5);
  const lrOf = (name: string): number => groups.find((g) => g.names.includes(name))!.lr!;
  assert.equal(lrOf('fc.weight'), 0.1);
  assert.equal(lrOf('layer4.0.conv1.weight'), 0.05);
  assert.equal(lrOf('conv1.weight'), 0.1 * 0.5 ** 5);
  assert.equal(
    groups.reduce((s, g) => s + g.params.length, 0),
    m.parameters().length,
  );
  const o = { headOnlyEpochs: 1, layerDecay: 1, freezeBn: true };
  setTrainMode(m, o, 0);
  const named = new Map(m.namedModules());
  assert.equal(m.stateTensors().get('layer1.0.conv1.weight')!.requiresGrad, false);
  assert.equal(m.stateTensors().get('fc.weight')!.requiresGrad, true);
  assert.equal(named.get('layer2')!.training, false);
  setTrainMode(m, o, 1);
  assert.equal(m.stateTensors().get('layer1.0.conv1.weight')!.requiresGrad, true);
  assert.equal(m.stateTensors().get('layer1.0.bn1.weight')!.requiresGrad, false, 'BatchNorm stays frozen');
  assert.equal(named.get('layer1.0.bn1')!.training, false);
  assert.equal(named.get('layer2')!.training, true);
  m.dispose();
});

test('CLI: train --pretrained hf-hub:... --recipe finetune records the pretrained config; offline pull error', async () => {
  const env = { ...process.env, CI: '1', HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: freshCache(), HF_TOKEN: '' };
  const sample = join(root, 'examples', 'grocery-sample');
  const out = join(work, 'runs');
  const r = await runAsync(
    process.execPath,
    [
      cli,
      'train',
      '--data',
      sample,
      '--pretrained',
      'hf-hub:timm/resnet18.test_in1k',
      '--recipe',
      'finetune',
      '--epochs',
      '1',
      '--batch-size',
      '8',
      '--out',
      out,
      '--name',
      'ft',
      '--set',
      'data.fraction=0.25',
      '--set',
      'threads=2',
      '--set',
      'data.workers=1',
      '--set',
      'schedule.warmupEpochs=0',
    ],
    env,
  );
  assert.equal(r.status, 0, r.stderr + r.stdout);
  const run = join(out, 'ft');
  const config = JSON.parse(readFileSync(join(run, 'config.json'), 'utf8'));
  assert.equal(config.model.name, 'resnet18', 'model from the weights');
  assert.equal(config.input.size, 32);
  assert.equal(config.input.testSize, 40);
  assert.deepEqual(config.input.mean, [0.5, 0.4, 0.3]);
  assert.equal(config.optim.lr, 0.01, 'the finetune recipe');
  assert.equal(config.finetune.layerDecay, 0.8);
  const pre = JSON.parse(readFileSync(join(run, 'preprocess.json'), 'utf8'));
  assert.equal(pre.size, 40);
  // timm's interpolation and crop_mode are applied (not only recorded).
  assert.equal(pre.interpolation, 'bicubic');
  assert.equal(pre.resize, 'center');
  assert.equal(pre.pretrained.name, 'hf-hub:timm/resnet18.test_in1k');
  assert.deepEqual(pre.pretrained.cfg.labelNames, ['a', 'b', 'c', 'd']);
  assert.match(r.stderr + r.stdout, /loaded \d+ tensors .*classifier re-initialised/);
  const off = spawnSync(process.execPath, [cli, 'train', '--data', sample, '--pretrained', 'hf-hub:timm/other'], {
    encoding: 'utf8',
    env: { ...env, HF_HUB_OFFLINE: '1' },
  });
  assert.notEqual(off.status, 0);
  assert.match(off.stderr, /HF_HUB_OFFLINE=1 and timm\/other\/config.json .* run 'goodsrec pull hf-hub:timm\/other'/);
  const mismatch = await runAsync(
    process.execPath,
    [cli, 'train', '--data', sample, '--model', 'resnet50', '--pretrained', 'hf-hub:timm/resnet18.test_in1k'],
    env,
  );
  assert.notEqual(mismatch.status, 0);
  assert.match(mismatch.stderr, /holds resnet18 weights but model.name is resnet50/);
});

test('lock: an empty lock file (its owner between create and writing its pid) is waited for; an old empty one is taken over', async () => {
  const { withFileLock } = await import('../src/hub/lock.js');
  const { setTimeout: sleep } = await import('node:timers/promises');
  const { utimesSync, unlinkSync, writeFileSync } = await import('node:fs');
  const dir = mkdtempSync(join(tmpdir(), 'goodsrec-lock-'));
  const path = join(dir, 'blob.lock');
  writeFileSync(path, '');
  let entered = false;
  const waiting = withFileLock(path, async () => {
    entered = true;
  });
  await sleep(400);
  assert.equal(entered, false, 'a fresh empty lock file belongs to a live owner');
  unlinkSync(path); // the owner is done
  await waiting;
  assert.equal(entered, true);
  // Negative control: left empty by a process killed 20 s ago, it is taken over.
  writeFileSync(path, '');
  const old = new Date(Date.now() - 20_000);
  utimesSync(path, old, old);
  let took = false;
  await withFileLock(path, async () => {
    took = true;
  });
  assert.equal(took, true);
});
