#!/usr/bin/env bash
# prebuilds/linux-x64/torch-resnet-tl.node with prebuildify, built by cmake-js (scripts/cmake-js-gyp.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PREBUILD_NODE_GYP="$PWD/scripts/cmake-js-gyp.sh" npx prebuildify --napi --strip
# prebuildify moved the build output away: restore the local build from the kept copy
if [ -f build/Release/.torch_resnet_tl.keep ]; then mv -f build/Release/.torch_resnet_tl.keep build/Release/torch_resnet_tl.node; fi
ls -l prebuilds/*/
