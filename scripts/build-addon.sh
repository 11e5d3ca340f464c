#!/usr/bin/env bash
# Builds goodsrec's addons with g++ alone (no node-gyp, no Node headers package, nothing downloaded) into
# OUT/Release/: goodsrec_native.node against the libtorch that scripts/find-libtorch.mjs finds ($LIBTORCH
# first), and with --image goodsrec_image.node when libjpeg's headers are there. The same flags as binding.gyp.
# setup-cuda.sh uses it for the CUDA venv here, device-check.sh on a GPU machine that has a compiler and a
# Python torch but no Node toolchain. Incremental: an object is rebuilt when its source or a header is newer.
#   bash scripts/build-addon.sh OUT [--image]
#   NODE=path/to/node   the node that runs find-libtorch.mjs (default: node on PATH)
#   NODE_API_INCLUDE=D  the folder with node_api.h (default: <node>/../include/node, else vendor/node-api)
#   JOBS=N              parallel compiles (default: nproc)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: build-addon.sh OUT [--image]}
want_image=0
[[ ${2:-} == --image ]] && want_image=1
node=${NODE:-node}
jobs=${JOBS:-$(nproc)}
log() { printf 'build-addon: %s\n' "$*" >&2; }

napi=${NODE_API_INCLUDE:-}
if [[ -z $napi ]]; then
  for d in "$(dirname "$(command -v "$node")")/../include/node" "$root/vendor/node-api"; do
    if [[ -f $d/node_api.h ]]; then napi=$d; break; fi
  done
fi
[[ -f ${napi:-/nonexistent}/node_api.h ]] || { log "node_api.h not found (set NODE_API_INCLUDE)"; exit 1; }
addon_api=$root/node_modules/node-addon-api
[[ -f $addon_api/napi.h ]] || { log "$addon_api/napi.h not found (npm ci, or the bundle's node_modules)"; exit 1; }

q() { "$node" "$root/scripts/find-libtorch.mjs" "$1"; }
std=$(q std)
read -r -a torch_inc <<<"$(q include)"
read -r -a torch_defs <<<"$(q defines)"
read -r -a torch_libs <<<"$(q libs)"
version=$("$node" -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(0,"utf8")).version)' < <(q json))

common=(-fPIC -pthread -O2 -fexceptions -Wno-unused-parameter -Wno-deprecated-declarations
  -DNAPI_VERSION=8 -DNODE_ADDON_API_CPP_EXCEPTIONS -DNODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS
  -DNODE_ADDON_API_DISABLE_DEPRECATED -DBUILDING_NODE_EXTENSION -I"$napi" -I"$addon_api")

obj=$out/obj
mkdir -p "$obj/native" "$obj/image" "$out/Release"

# compile TARGET_DIR FLAGS... -- SOURCES...: parallel, skipping objects newer than their source and every header.
compile() {
  local dir=$1
  shift
  local flags=()
  while [[ $1 != -- ]]; do flags+=("$1"); shift; done
  shift
  local newest_header
  newest_header=$(ls -t "$root"/native/*.h "$root"/native/image/*.h 2>/dev/null | head -1)
  local todo=()
  for src in "$@"; do
    local o=$dir/$(basename "${src%.cc}").o
    if [[ ! -f $o || $src -nt $o || $newest_header -nt $o || $0 -nt $o ]]; then todo+=("$src"); fi
  done
  ((${#todo[@]})) || return 0
  log "compiling ${#todo[@]} file(s) with $jobs job(s)"
  printf '%s\n' "${todo[@]}" |
    xargs -P "$jobs" -I{} sh -c 'g++ "$@" -c "$0" -o "'"$dir"'/$(basename "$0" .cc).o" || exit 255' {} "${flags[@]}"
}

srcs=("$root"/native/*.cc)
compile "$obj/native" "$std" -frtti "${common[@]}" -DNODE_ADDON_API_CPP_EXCEPTIONS_ALL "${torch_defs[@]/#/-D}" \
  "${torch_inc[@]/#/-I}" -- "${srcs[@]}"
g++ -shared -pthread -rdynamic -o "$out/Release/goodsrec_native.node" "$obj"/native/*.o "${torch_libs[@]}"
log "built $out/Release/goodsrec_native.node (libtorch $version)"

if ((want_image)); then
  if echo '#include <stdio.h>
#include <jpeglib.h>' | g++ -E -x c++ - >/dev/null 2>&1; then
    compile "$obj/image" "${common[@]}" -std=c++17 -O3 -ffp-contract=off -- "$root"/native/image/*.cc
    g++ -shared -pthread -o "$out/Release/goodsrec_image.node" "$obj"/image/*.o -ljpeg
    log "built $out/Release/goodsrec_image.node"
  else
    log "no jpeglib.h: goodsrec_image.node not built (the loader falls back to sharp and TypeScript kernels)"
  fi
fi
