#!/usr/bin/env bash
# The one-command GPU check (issue 26 item 4), run from the unpacked `npm run device-bundle` on a machine with a
# compiler and a CUDA PyTorch for Python but no Node or network. It builds the addon against that torch, then:
# --version; op parity on the device against the CPU in float64 (the op cases and bounds of the PyTorch oracle
# tests); ResNet-50 forward/backward against torchvision on the same device with the same weights; AMP losses
# against fp32 (fp16 + GradScaler on CUDA, bf16 on the CPU); `bench train-step` goodsrec vs PyTorch eager
# (fp32 and AMP, NCHW and channels_last; prints the ratio); the loader's images/s against what the step
# consumes; 2 epochs on the photo sample with a SIGKILL after the first checkpoint and --resume; eval of the run
# counting every test photo (bench/device-check.ts has the numeric steps). Writes results.json (each step: ok,
# seconds and its figures) and device-check.log into $OUT (or ./device-results).
#   bash scripts/device-check.sh             here: the GPU when one is visible, else the CPU
#   bash scripts/device-check.sh --rehearse  in a repository checkout: makes the bundle, unpacks it into an
#       empty folder and runs the check there on the CPU with no node/npm on PATH and LIBTORCH = the torch of
#       the CUDA venv (scripts/setup-cuda.sh); must pass
#   PYTHON=python3 (the torch to build against and to compare with), OUT=folder
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

if [[ ${1:-} == --rehearse ]]; then
  venv=${GOODSREC_CUDA_VENV:-$HOME/.cache/goodsrec/venv-cu130}
  [[ -x $venv/bin/python ]] || { echo "device-check --rehearse: no venv at $venv (bash scripts/setup-cuda.sh --venv-only)" >&2; exit 1; }
  work=$(mktemp -d /tmp/goodsrec-rehearse.XXXXXX)
  bash "$here/scripts/device-bundle.sh" "$work/bundle.tar"
  mkdir "$work/empty" "$work/tools"
  tar -C "$work/empty" -xf "$work/bundle.tar"
  # A PATH like the GPU machine's: the system tools without node, npm, npx, corepack or Debian's python3 (its
  # torch is 1.13); PYTHON = the venv's (a symlink to it would lose the venv).
  for f in /usr/bin/* /usr/local/bin/*; do
    case $(basename "$f") in node | nodejs | npm | npx | corepack | python | python3) ;; *) ln -sf "$f" "$work/tools/" ;; esac
  done
  out=${OUT:-$here/device-results}
  cd "$work/empty/goodsrec"
  env -i HOME="$HOME" PATH="$work/tools" OUT="$out" PYTHON="$venv/bin/python" GOODSREC_REHEARSAL=1 bash scripts/device-check.sh
  rc=$?
  echo "rehearsal: exit $rc; results in $out; work folder $work (rm -r it when done)"
  exit $rc
fi

OUT=${OUT:-$here/device-results}
mkdir -p "$OUT"
log=$OUT/device-check.log
: >"$log"
exec > >(tee -a "$log") 2>&1
t0=$(date +%s)
step_start=$t0
declare -a steps=()
step() {
  local now
  now=$(date +%s)
  steps+=("{\"step\":\"$1\",\"ok\":$2,\"seconds\":$((now - step_start))}")
  echo "== $1: $([[ $2 == true ]] && echo ok || echo FAILED) in $((now - step_start)) s"
  step_start=$now
}
cd "$here"
PY=${PYTHON:-python3}

# 1. Node from the bundle.
if [[ -f bin/node.xz && ! -x bin/node ]]; then xz -dc bin/node.xz >bin/node && chmod +x bin/node; fi
export PATH=$here/bin:$PATH
node --version
step node true

# 2. The addon against this machine's torch (at most 3 minutes on the GPU machine).
LIBTORCH=$("$PY" -c 'import torch, os; print(os.path.dirname(torch.__file__))')
export LIBTORCH
"$PY" -c 'import torch; print("python torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count())'
NODE_API_INCLUDE=$here/vendor/node-api bash scripts/build-addon.sh build --image
export GOODSREC_NATIVE=$here/build/Release/goodsrec_native.node
[[ -f build/Release/goodsrec_image.node ]] || export GOODSREC_NATIVE_IMAGE=0
step build true

g() { node dist/src/cli/main.js "$@"; }
version=$(g --version | tail -1)
echo "$version"
devices=$(node -e 'import("./dist/src/tensor/index.js").then(T => console.log(T.cuda.deviceCount()))')
dev=cpu
((devices > 0)) && dev=cuda
echo "device: $dev ($devices GPUs)"
step version true

# 3. Numerics on the device: op parity against the CPU in float64, ResNet-50 against torchvision, AMP against fp32.
if [[ $dev == cuda ]]; then
  resnet_args=(224 8) amp_args=(224 16 3) loader_args=(224 64 10)
else # the rehearsal: the same code, sized for a 2-core CPU
  resnet_args=(64 2) amp_args=(64 4 3) loader_args=(64 4 8)
fi
check() { # check NAME ARGS...: one step of bench/device-check.ts, its figures in $OUT/NAME.json
  local name=$1 ok=true
  shift
  node dist/bench/device-check.js "$name" $dev "$OUT/$name.json" "$@" || ok=false
  step "$name" $ok
}
check ops
check resnet "$PY" "${resnet_args[@]}"
check amp "${amp_args[@]}"

# 4. bench train-step: goodsrec against PyTorch eager on the same device, fp32 and AMP, both layouts.
if [[ $dev == cuda ]]; then
  bench_env=(GOODSREC_BENCH_DEVICE=cuda GOODSREC_BENCH_AMP=both GOODSREC_BENCH_SIZE=224 GOODSREC_BENCH_BATCH=64
    GOODSREC_BENCH_STEPS=10 GOODSREC_BENCH_WARMUP=5 GOODSREC_BENCH_ROUNDS=1)
else # the rehearsal: the same code path, sized for a 2-core CPU
  bench_env=(GOODSREC_BENCH_DEVICE=cpu GOODSREC_BENCH_AMP=off GOODSREC_BENCH_SIZE=64 GOODSREC_BENCH_BATCH=4
    GOODSREC_BENCH_STEPS=2 GOODSREC_BENCH_WARMUP=1 GOODSREC_BENCH_ROUNDS=1)
fi
bench_ok=true
env "${bench_env[@]}" GOODSREC_BENCH_PYTHON="$PY" GOODSREC_BENCH_JSON="$OUT/train-step.json" \
  node dist/bench/train-step.js || bench_ok=false
step bench-train-step $bench_ok

# 5. The training loader's images/s against the images/s the step above consumes.
check loader examples/grocery-sample "${loader_args[@]}" "$OUT/train-step.json"

# 6. Two epochs on the sample, SIGKILL after the first checkpoint, --resume to the end.
runs=$OUT/runs
rm -rf "$runs"
args=(--data examples/grocery-sample --model resnet18 --epochs 2 --batch-size 16 --size 96 --device $dev --out "$runs" --name check)
[[ $dev == cuda ]] && args+=(--amp fp16)
CI=1 node dist/src/cli/main.js train "${args[@]}" &
pid=$!
killed=false
for _ in $(seq 1 600); do
  if compgen -G "$runs/check/checkpoints/*" >/dev/null || compgen -G "$runs/check/*.ckpt" >/dev/null; then
    kill -9 $pid && killed=true
    break
  fi
  kill -0 $pid 2>/dev/null || break
  sleep 0.5
done
wait $pid || true
echo "killed after the first checkpoint: $killed"
train_ok=false
CI=1 g train --resume "$runs/check" && train_ok=true
step train-kill-resume $train_ok

# 7. eval: every test photo counted.
eval_ok=false
expected=$(find examples/grocery-sample/test -name '*.jpg' | wc -l)
if CI=1 g eval "$runs/check" --data examples/grocery-sample --split test --device $dev --json >"$OUT/eval.json"; then
  counted=$(node -e 'const e=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); const f=(o)=>{if(o&&typeof o==="object"){if(typeof o.samples==="number")return o.samples;for(const v of Object.values(o)){const r=f(v);if(r!==null)return r}}return null};console.log(f(e)??-1)' "$OUT/eval.json")
  echo "eval counted $counted of $expected photos"
  [[ $counted == "$expected" ]] && eval_ok=true
fi
step eval $eval_ok

total=$(($(date +%s) - t0))
node -e '
const fs = require("fs");
const [out, version, dev, total, killed, ...steps] = process.argv.slice(1);
const read = (f) => { try { return JSON.parse(fs.readFileSync(out + "/" + f, "utf8")); } catch { return null; } };
// Each step with its figures (the JSON a bench/device-check.ts step wrote, without its own ok/seconds).
const withFigures = (s) => { const f = read(s.step + ".json"); if (f) { delete f.ok; delete f.seconds; s.figures = f; } return s; };
const r = { date: new Date().toISOString(), rehearsal: process.env.GOODSREC_REHEARSAL === "1", device: dev, version,
  totalSeconds: Number(total), killedAfterFirstCheckpoint: killed === "true", steps: steps.map((s) => withFigures(JSON.parse(s))),
  trainStep: read("train-step.json") };
fs.writeFileSync(out + "/results.json", JSON.stringify(r, null, 2) + "\n");
' "$OUT" "$version" "$dev" "$total" "$killed" "${steps[@]}"
echo "device-check: $total s; results in $OUT/results.json"
for s in "${steps[@]}"; do [[ $s == *'"ok":false'* ]] && exit 1; done
exit 0
