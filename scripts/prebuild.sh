#!/usr/bin/env bash
# prebuilds/linux-x64/torch-resnet-tl.node with prebuildify, built by cmake-js (scripts/cmake-js-gyp.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PREBUILD_NODE_GYP="$PWD/scripts/cmake-js-gyp.sh" npx prebuildify --napi --strip
# prebuildify moved the build output away: restore the local build from the kept copy
if [ -f build/Release/.torch_resnet_tl.keep ]; then mv -f build/Release/.torch_resnet_tl.keep build/Release/torch_resnet_tl.node; fi
# Other libtorch variants built by scripts/setup.sh (TORCH_RESNET_TL_LIBTORCH=pypi|<folder>): their binaries go to
# variants/<variant>/prebuilds/<platform>/, which the loader picks for that variant (lib/native.ts).
for v in pypi custom; do
  b="build-$v/Release/torch_resnet_tl.node"
  [ -f "$b" ] || continue
  mkdir -p "variants/$v/prebuilds/linux-x64"
  strip --strip-unneeded -o "variants/$v/prebuilds/linux-x64/torch-resnet-tl.node" "$b"
done
ls -l prebuilds/*/ variants/*/prebuilds/*/ 2>/dev/null || true
