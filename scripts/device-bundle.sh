#!/usr/bin/env bash
# `npm run device-bundle`: everything scripts/device-check.sh needs on a GPU machine that has a compiler and a
# CUDA PyTorch for Python but no Node, npm or network, in one tar (at most 60 MiB): the Node binary (xz), dist/,
# the native sources and the addon build script, node_api.h, the production packages the check imports
# (node-addon-api's headers, citty, yaml, cli-progress, sharp with its libvips) and the photo sample.
#   bash scripts/device-bundle.sh [OUT.tar]   (default device-bundle.tar; prints its size)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-device-bundle.tar}")
limit=$((60 * 1024 * 1024))
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
b=$stage/goodsrec
mkdir -p "$b/node_modules" "$b/vendor/node-api" "$b/bin" "$b/scripts"
[[ -f dist/src/cli/main.js ]] || npx tsc -p tsconfig.json
cp -r dist native examples package.json "$b/"
rm -rf "$b/examples/"*.ts
# dist/test: only the op cases and the device runner that bench/device-check.ts imports.
find "$b/dist/test" -type f ! -path '*/helpers/op-cases.js' ! -path '*/helpers/op-oracle.js' ! -path '*/helpers/op-device.js' -delete
cp scripts/build-addon.sh scripts/find-libtorch.mjs scripts/device-check.sh "$b/scripts/"
mkdir -p "$b/bench" && cp bench/train_step_torch.py bench/resnet_parity_torch.py "$b/bench/"
napi=$(dirname "$(command -v node)")/../include/node
cp "$napi"/node_api.h "$napi"/node_api_types.h "$napi"/js_native_api.h "$napi"/js_native_api_types.h "$b/vendor/node-api/"
for p in node-addon-api citty yaml cli-progress string-width strip-ansi ansi-regex emoji-regex \
  is-fullwidth-code-point sharp @img/colour @img/sharp-linux-x64 @img/sharp-libvips-linux-x64 detect-libc semver; do
  mkdir -p "$b/node_modules/$(dirname "$p")"
  cp -r "node_modules/$p" "$b/node_modules/$p"
done
xz -T0 -6 -c "$(command -v node)" >"$b/bin/node.xz"
tar -C "$stage" -cf "$out" goodsrec
size=$(stat -c %s "$out")
printf 'device bundle: %s, %.1f MiB (limit 60 MiB)\n' "$out" "$(echo "$size / 1048576" | bc -l)"
((size <= limit)) || { echo "device bundle: over 60 MiB" >&2; exit 1; }
