#!/usr/bin/env node
// Builds both addons of binding.gyp with AddressSanitizer + UndefinedBehaviorSanitizer into build-sanitize/
// (never build/Release). binding.gyp stays the one description of sources, defines and libraries: its
// <!(...) / <!@(...) expansions are run here, its -O levels replaced by -O1 -g. Incremental by mtime.
// Usage: node scripts/fuzz/build-sanitized.mjs [--jobs N]
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const sanitizeDir = join(root, 'build-sanitize');
const SAN = ['-fsanitize=address,undefined', '-fno-omit-frame-pointer', '-fno-sanitize-recover=undefined', '-O1', '-g'];

function expand(list) {
  const out = [];
  for (const item of list ?? []) {
    const m = /^<!(@?)\((.*)\)$/.exec(item);
    if (!m) {
      out.push(item);
      continue;
    }
    const text = execFileSync('bash', ['-c', m[2]], { cwd: root, encoding: 'utf8' }).trim();
    if (m[1]) out.push(...text.split(/\s+/).filter(Boolean));
    else out.push(text);
  }
  return out;
}

function nodeIncludes() {
  const prefix = dirname(dirname(process.execPath));
  const candidates = [process.env.NODE_INCLUDE, join(prefix, 'include', 'node'), '/usr/include/node'];
  const found = candidates.find((d) => d && existsSync(join(d, 'node_api.h')));
  if (!found) throw new Error('node headers (node_api.h) not found; set NODE_INCLUDE');
  return [found];
}

function newest(paths) {
  return Math.max(...paths.map((p) => statSync(p).mtimeMs));
}

function run(cmd, args) {
  return new Promise((ok, fail) => {
    const p = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
    p.on('exit', (code) => (code === 0 ? ok() : fail(new Error(`${cmd} ${args.at(-1)} exited ${code}`))));
  });
}

async function pool(tasks, jobs) {
  let next = 0;
  await Promise.all(
    Array.from({ length: jobs }, async () => {
      while (next < tasks.length) await tasks[next++]();
    }),
  );
}

export async function buildSanitized(jobs = 2) {
  const gyp = JSON.parse(readFileSync(join(root, 'binding.gyp'), 'utf8'));
  const headers = ['native', 'native/image'].flatMap((d) =>
    readdirSync(join(root, d))
      .filter((f) => f.endsWith('.h'))
      .map((f) => join(root, d, f)),
  );
  const outputs = [];
  for (const t of gyp.targets) {
    const objDir = join(sanitizeDir, 'obj', t.target_name);
    const defines = expand(t.defines).map((d) => `-D${d}`);
    const includes = [...nodeIncludes(), ...expand(t.include_dirs)].map((d) => `-I${d}`);
    const cc = (t.cflags_cc ?? []).filter((f) => !/^-O\d$/.test(f));
    const flags = [
      '-fPIC',
      '-pthread',
      '-m64',
      ...SAN,
      ...cc,
      `-DNODE_GYP_MODULE_NAME=${t.target_name}`,
      '-DBUILDING_NODE_EXTENSION',
      ...defines,
      ...includes,
    ];
    const objects = [];
    const tasks = [];
    for (const src of t.sources) {
      const obj = join(objDir, src.replace(/\.cc$/, '.o'));
      objects.push(obj);
      const srcPath = join(root, src);
      if (existsSync(obj) && statSync(obj).mtimeMs > newest([srcPath, ...headers, join(root, 'binding.gyp')])) continue;
      mkdirSync(dirname(obj), { recursive: true });
      tasks.push(async () => {
        const t0 = Date.now();
        await run('g++', [...flags, '-c', '-o', obj, srcPath]);
        console.log(`  compiled ${src} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
      });
    }
    console.log(`${t.target_name}: ${tasks.length} of ${t.sources.length} sources to compile`);
    await pool(tasks, jobs);
    const out = join(sanitizeDir, `${t.target_name}.node`);
    if (tasks.length || !existsSync(out)) {
      const libs = [...expand(t.ldflags), ...expand(t.libraries)];
      await run('g++', [
        '-shared',
        '-pthread',
        '-rdynamic',
        '-fsanitize=address,undefined',
        '-o',
        out,
        ...objects,
        ...libs,
      ]);
    }
    outputs.push(out);
  }
  return outputs;
}

/** The gcc sanitizer runtimes to LD_PRELOAD into an uninstrumented node. */
export function sanitizerRuntimes() {
  return ['libasan.so', 'libubsan.so'].map((lib) =>
    execFileSync('gcc', [`-print-file-name=${lib}`], { encoding: 'utf8' }).trim(),
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const j = process.argv.indexOf('--jobs');
  const jobs = j > 0 ? Number(process.argv[j + 1]) : 2;
  const t0 = Date.now();
  const outs = await buildSanitized(jobs);
  console.log(`built ${outs.join(', ')} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}
