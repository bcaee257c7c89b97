#!/usr/bin/env bash
# Prepares what the lent GPU machine lacks (it has no network and no Node.js) in the ignored folder .gpu/, for
# scripts/gpu/check.sh: this machine's Node.js binary (xz), the Debian packages of the decoders' headers and
# libraries, the production node_modules (without echarts: no reports are drawn there) and node-api-headers, and
# the compiled TypeScript (dist/). Run here after `bash scripts/setup.sh`; then call the device tool with
#   carry: [".gpu"]   command: bash scripts/gpu/check.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -f dist/cjs/index.js ] || bash scripts/setup.sh
rm -rf .gpu && mkdir -p .gpu/debs .gpu/node_modules
xz -T0 -6 -c "$(command -v node)" > .gpu/node.xz
(cd .gpu/debs && apt-get download libturbojpeg0 libturbojpeg0-dev libpng-dev libpng16-16 zlib1g-dev nlohmann-json3-dev libgloo-dev >/dev/null)
for p in $(npm ls --omit=dev --all --parseable 2>/dev/null | grep node_modules/ | sed "s|^$PWD/node_modules/||" | grep -v -e '^echarts$' -e '^zrender$' -e '^tslib$'); do
  cp -r "node_modules/$p" ".gpu/node_modules/$p"
done
cp -r node_modules/node-api-headers .gpu/node_modules/
cp -r dist .gpu/dist
du -sh .gpu
