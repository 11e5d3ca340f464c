#!/usr/bin/env bash
# The CUDA build of goodsrec's libtorch addon, beside the default one (build/, Debian's CPU libtorch 1.13,
# which stays what CI and `npm test` use). Idempotent: quick when nothing is missing.
#   1. a Python venv with torch 2.14.1 built with CUDA 13 and torchvision 0.29.1 (pip's configured index;
#      --no-deps with the dependency list spelled out, since cuda-bindings is not in the local index), plus
#      the nvidia-cuda-crt/-cccl headers libtorch_cuda's headers include;
#   2. the addon compiled against that torch (C++20) into build-cuda/Release/goodsrec_native.node.
# Then select it with GOODSREC_NATIVE (the script prints the line). A CUDA libtorch runs its CPU kernels on
# a machine without a GPU, so the whole test suite runs with it here too.
#   bash scripts/setup-cuda.sh [--venv-only]
#   GOODSREC_CUDA_VENV=DIR   the venv (default ~/.cache/goodsrec/venv-cu130; 4.6 GB)
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf 'setup-cuda: %s\n' "$*" >&2; }

venv=${GOODSREC_CUDA_VENV:-$HOME/.cache/goodsrec/venv-cu130}
torch_version=2.14.1
vision_version=0.29.1
pkgs=(torch==$torch_version torchvision==$vision_version numpy typing_extensions filelock sympy mpmath networkx
  fsspec jinja2 markupsafe pillow nvidia-cuda-runtime nvidia-cuda-nvrtc nvidia-cuda-cupti nvidia-cublas
  nvidia-cufft nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-nvjitlink nvidia-nvtx nvidia-cufile
  nvidia-nvshmem-cu13 nvidia-cusparselt-cu13 nvidia-cudnn-cu13 nvidia-nccl-cu13 nvidia-cuda-crt nvidia-cuda-cccl)

have=$("$venv/bin/python" -c 'import torch, torchvision; print(torch.__version__, torchvision.__version__)' 2>/dev/null || true)
if [[ $have != "$torch_version+cu130 $vision_version"* ]]; then
  log "making $venv (torch $torch_version+cu130, torchvision $vision_version; 4.6 GB, about 5 minutes)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --no-deps "${pkgs[@]}"
fi
sp=$("$venv/bin/python" -c 'import site; print(site.getsitepackages()[0])')
[[ -f $sp/nvidia/cu13/include/crt/host_config.h ]] || "$venv/bin/pip" install --quiet --no-deps nvidia-cuda-crt nvidia-cuda-cccl
log "venv: $("$venv/bin/python" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "NCCL", torch.distributed.is_nccl_available())')"
[[ ${1:-} == --venv-only ]] && exit 0

export LIBTORCH=$sp/torch
bash scripts/build-addon.sh build-cuda
node -e 'process.stdout.write(JSON.stringify(JSON.parse(require("fs").readFileSync(0,"utf8")),["version","cuda","nccl"]) + "\n")' \
  < <(node scripts/find-libtorch.mjs json) >&2
log "use it with: export GOODSREC_NATIVE=$PWD/build-cuda/Release/goodsrec_native.node"
log "the oracle side: PYTHON=$venv/bin/python (torch $torch_version, torchvision $vision_version)"
