#!/usr/bin/env bash
# prebuildify drives node-gyp; this stands in for it (PREBUILD_NODE_GYP) so prebuilds come from the cmake-js build.
# prebuildify calls `<this> rebuild --target=… --devdir=… --arch=… --release|--debug` and then takes the .node file
# from build/Release. N-API binaries do not depend on the Node version, so --target is not needed; the build is
# incremental (cmake-js compile) so an up-to-date build is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
type=Release
for a in "$@"; do [ "$a" = "--debug" ] && type=Debug; done
exec npx cmake-js compile --CDCMAKE_BUILD_TYPE="$type" ${CMAKE_JS_FLAGS:-} -- -j"$(nproc)"
