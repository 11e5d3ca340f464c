#!/usr/bin/env bash
# Installs what goodsrec needs, idempotently, and builds it. Quick when nothing is missing.
#   bash scripts/setup.sh          runtime: libtorch, optimized BLAS, npm packages, addon, TypeScript
#   bash scripts/setup.sh --test   also the test/benchmark oracle (Debian python3-torch, torchvision, PIL)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
for a in "$@"; do [[ "$a" == --test ]] && want_test=1; done

log() { printf 'setup: %s\n' "$*" >&2; }

# --- system packages -------------------------------------------------------------
pkgs=(libtorch-dev libgloo-dev libopenblas0-pthread libjpeg-dev g++ make python3)
# Test-only: the PyTorch oracle, and Chromium for the browser tests of the HTML pages.
if (( want_test )); then pkgs+=(python3-torch python3-torchvision python3-pil chromium); fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [[ -n "${LIBTORCH:-}" ]]; then
  # A user-provided libtorch replaces Debian's.
  missing=("${missing[@]/libtorch-dev}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if (( ${#missing[@]} )); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    log "installing ${missing[*]} (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    log "missing system packages: ${missing[*]}"
    log "install them (Debian/Ubuntu: sudo apt-get install ${missing[*]}), or point LIBTORCH at an unpacked libtorch; see README"
    exit 1
  fi
fi

# --- npm packages -------------------------------------------------------------------
# onnxruntime-node's postinstall would try to download CUDA add-ons; the CPU binaries ship in the package.
export ONNXRUNTIME_NODE_INSTALL=skip
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi

# --- native addon ---------------------------------------------------------------------
# Two addons: goodsrec_native (libtorch) and goodsrec_image (libjpeg-turbo kernels of the data loader).
addon=build/Release/goodsrec_native.node
stale=0
for a in "$addon" build/Release/goodsrec_image.node; do
  if [[ ! -f $a ]] || [[ -n $(find native binding.gyp scripts/find-libtorch.mjs -newer "$a" 2>/dev/null | head -1) ]]; then stale=1; fi
done
if (( stale )); then
  log "building the addons ($(node scripts/find-libtorch.mjs json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);console.log(j.source+", libtorch "+j.version+(j.cuda?", CUDA":""))})'))"
  # Incremental: configure only when the build files are missing or binding.gyp changed.
  {
    if [[ ! -f build/Makefile || binding.gyp -nt build/Makefile || scripts/find-libtorch.mjs -nt build/Makefile ]]; then npx node-gyp configure; fi
    npx node-gyp build -j "$(nproc)"
  } >/tmp/goodsrec-node-gyp.log 2>&1 || { tail -40 /tmp/goodsrec-node-gyp.log >&2; log "addon build failed (full log: /tmp/goodsrec-node-gyp.log)"; exit 1; }
  touch "$addon" build/Release/goodsrec_image.node
fi

# --- TypeScript -------------------------------------------------------------------------
stamp=dist/.build-stamp
if [[ ! -f $stamp ]] || [[ -n $(find src test bench examples tsconfig.json package.json -newer "$stamp" \( -name '*.ts' -o -name '*.json' -o -name '*.html' -o -name '*.css' \) 2>/dev/null | head -1) ]]; then
  log "compiling TypeScript"
  npx tsc -p tsconfig.json
  touch "$stamp"
fi
