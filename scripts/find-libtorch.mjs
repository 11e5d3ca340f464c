#!/usr/bin/env node
// Finds libtorch for the addon build, in the documented order:
//   1. $LIBTORCH (an unpacked libtorch: include/ and lib/)
//   2. Debian's libtorch-dev under /usr
//   3. the libtorch inside a Python `torch` install (how CUDA builds are used)
// A torch wheel built with CUDA (pip's nvidia-* wheels beside it in site-packages) also gets the CUDA,
// NCCL and cuDNN headers of those wheels on the include path, and C++20 (libtorch 2.x requires it).
// Usage: node scripts/find-libtorch.mjs [json|include|libdir|libs|defines|std]
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

function multiarch() {
  try {
    return execFileSync('gcc', ['-print-multiarch'], { encoding: 'utf8' }).trim() || 'x86_64-linux-gnu';
  } catch {
    return 'x86_64-linux-gnu';
  }
}

function fromRoot(root, source) {
  const include = join(root, 'include');
  const libdir = join(root, 'lib');
  if (!existsSync(join(include, 'ATen', 'ATen.h')) || !existsSync(join(libdir, 'libtorch_cpu.so'))) return null;
  return { source, include: [include, join(include, 'torch', 'csrc', 'api', 'include')], libdir };
}

function fromDebian() {
  const libdir = join('/usr/lib', multiarch());
  if (!existsSync('/usr/include/ATen/ATen.h') || !existsSync(join(libdir, 'libtorch_cpu.so'))) return null;
  return { source: 'debian libtorch-dev', include: ['/usr/include/torch/csrc/api/include'], libdir };
}

function fromPython() {
  for (const py of [process.env.PYTHON ?? 'python3', '/usr/bin/python3']) {
    try {
      const out = execFileSync(
        py,
        ['-c', 'import torch, os; print(os.path.dirname(torch.__file__)); print(int(torch._C._GLIBCXX_USE_CXX11_ABI))'],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
      )
        .trim()
        .split('\n');
      const found = fromRoot(out[0], `python torch at ${out[0]}`);
      if (found) return { ...found, cxx11abi: out[1] === '1' };
    } catch {
      /* try the next interpreter */
    }
  }
  return null;
}

function find() {
  if (process.env.LIBTORCH) {
    const found = fromRoot(process.env.LIBTORCH, `LIBTORCH=${process.env.LIBTORCH}`);
    if (!found)
      throw new Error(`LIBTORCH=${process.env.LIBTORCH} does not contain include/ATen/ATen.h and lib/libtorch_cpu.so`);
    return found;
  }
  const found = fromDebian() ?? fromPython();
  if (!found) {
    throw new Error(
      'libtorch not found. Install one of:\n' +
        '  - Debian/Ubuntu: apt-get install libtorch-dev   (CPU, libtorch 1.13)\n' +
        '  - an unpacked libtorch (pytorch.org), then export LIBTORCH=/path/to/libtorch\n' +
        '  - a Python torch install (pip install torch, CUDA builds included): found via `python3 -c "import torch"`',
    );
  }
  return found;
}

function describe() {
  const f = find();
  const cuda = existsSync(join(f.libdir, 'libtorch_cuda.so'));
  const libs = ['-ltorch', '-ltorch_cpu', '-lc10'];
  if (cuda) libs.push('-Wl,--no-as-needed', '-ltorch_cuda', '-lc10_cuda', '-Wl,--as-needed');
  // libtorch 2.x moved the numbers to torch/headeronly/version.h.
  let version = 'unknown';
  for (const dir of f.include) {
    for (const rel of [
      ['torch', 'version.h'],
      ['torch', 'headeronly', 'version.h'],
    ]) {
      const header = join(dir, ...rel);
      if (version !== 'unknown' || !existsSync(header)) continue;
      const m = readFileSync(header, 'utf8').match(
        /TORCH_VERSION_MAJOR (\d+)[\s\S]*TORCH_VERSION_MINOR (\d+)[\s\S]*TORCH_VERSION_PATCH (\d+)/,
      );
      if (m) version = `${m[1]}.${m[2]}.${m[3]}`;
    }
  }
  // The CUDA headers libtorch_cuda's own headers include (cuda_runtime_api.h, nccl.h, cudnn.h) come from the
  // nvidia-* wheels next to a pip torch: site-packages/nvidia/<pkg>/include (cu13 wheels: nvidia/cu13/include).
  const include = [...f.include];
  if (cuda) {
    const nvidia = join(f.libdir, '..', '..', 'nvidia');
    if (existsSync(nvidia)) {
      for (const pkg of readdirSync(nvidia).sort()) {
        const dir = join(nvidia, pkg, 'include');
        if (existsSync(dir)) include.push(dir);
      }
    }
  }
  // libtorch 2.x headers refuse C++17 ("C++20 or later compatible compiler is required"); 1.13 stays on C++17.
  const major = Number(version.split('.')[0]);
  const std = Number.isFinite(major) && major >= 2 ? '-std=c++20' : '-std=c++17';
  const abi = f.cxx11abi === false ? 0 : 1;
  // CUDA builds of libtorch ship ProcessGroupNCCL (USE_NCCL); the CPU builds (Debian's) do not.
  const ncclHeader = (d) => existsSync(join(d, 'torch', 'csrc', 'distributed', 'c10d', 'ProcessGroupNCCL.hpp'));
  const nccl = cuda && f.include.some(ncclHeader) && existsSync(join(f.libdir, 'libtorch_cuda.so'));
  const defines = [
    `_GLIBCXX_USE_CXX11_ABI=${abi}`,
    ...(cuda ? ['GOODSREC_CUDA=1'] : []),
    ...(nccl ? ['GOODSREC_NCCL=1', 'USE_C10D_NCCL=1'] : []),
  ];
  return { ...f, include, cuda, nccl, libs, version, defines, std };
}

const what = process.argv[2] ?? 'json';
try {
  const d = describe();
  const out = {
    json: JSON.stringify(d, null, 2),
    include: d.include.join(' '),
    libdir: d.libdir,
    libs: [`-L${d.libdir}`, `-Wl,-rpath,${d.libdir}`, ...d.libs].join(' '),
    defines: d.defines.join(' '),
    std: d.std,
  }[what];
  if (out === undefined) throw new Error(`unknown query ${what}`);
  process.stdout.write(out + '\n');
} catch (e) {
  process.stderr.write(`goodsrec: ${e.message}\n`);
  process.exit(1);
}
