#!/usr/bin/env bash
# prebuildify drives node-gyp; this stands in for it (PREBUILD_NODE_GYP) so prebuilds come from the cmake-js build.
# prebuildify calls `<this> rebuild --target=… --devdir=… --arch=… --release|--debug`, then strips the .node file in
# build/Release *in place* and moves it to prebuilds/. N-API binaries do not depend on the Node version, so
# --target is not needed; the build is incremental (cmake-js compile), so an up-to-date build is reused.
# The addon may be loaded by a running process (a test runner): stripping that file in place would change code
# under it. So build/Release gets a fresh copy (new inode) for prebuildify to take, and scripts/prebuild.sh puts the
# kept copy back afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
type=Release
for a in "$@"; do [ "$a" = "--debug" ] && type=Debug; done
npx cmake-js compile --CDCMAKE_BUILD_TYPE="$type" ${CMAKE_JS_FLAGS:-} -- -j"$(nproc)"
addon="build/$type/torch_resnet_tl.node"
cp "$addon" "build/$type/.torch_resnet_tl.keep"
cp "$addon" "$addon.tmp"
mv -f "$addon.tmp" "$addon"
