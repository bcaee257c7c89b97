#!/usr/bin/env bash
# One-step set-up for a fresh Debian 12 machine, idempotent and quick when everything is present:
# system packages (libtorch, decoders), npm ci, the native build, the TypeScript build. With --test (npm test and
# the benchmarks) also the Python parity peer (Debian's torch + torchvision), Chromium for the report check, and the
# reference fixtures.
set -euo pipefail
cd "$(dirname "$0")/.."
TEST=0
[ "${1:-}" = "--test" ] && TEST=1

need_pkgs=()
pkgs=(build-essential cmake libtorch-dev libturbojpeg0-dev libpng-dev nlohmann-json3-dev)
[ "$TEST" = 1 ] && pkgs+=(python3-torch python3-torchvision python3-pil chromium)
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "[setup] installing system packages: ${need_pkgs[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
fi

# npm ci only when node_modules is missing or older than the lock file.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "[setup] npm ci"
  npm ci --no-audit --no-fund
fi

# Native build when any native source is newer than the addon.
addon=build/Release/torch_resnet_tl.node
if [ ! -f "$addon" ] || [ -n "$(find cpp binding CMakeLists.txt -newer "$addon" -print -quit)" ]; then
  echo "[setup] building the native addon (cmake-js)"
  npx cmake-js compile --CDCMAKE_BUILD_TYPE=Release ${CMAKE_JS_FLAGS:-} -- -j"$(nproc)"
fi

# TypeScript build (CommonJS + ESM) when sources changed.
if [ ! -f dist/cjs/index.js ] || [ -n "$(find lib examples tsconfig*.json scripts/build-ts.mjs -newer dist/cjs/index.js -print -quit)" ]; then
  echo "[setup] compiling TypeScript"
  node scripts/build-ts.mjs
fi

[ "$TEST" = 1 ] || exit 0

# Reference fixtures from Debian's torchvision (the parity peer); regenerated when the generator changes.
fx=.fixtures/parity
stamp="$(sha256sum scripts/fixtures/make_parity.py | cut -c1-16)"
if [ "$(cat "$fx/stamp" 2>/dev/null)" != "$stamp" ]; then rm -rf "$fx"; fi
if [ ! -f "$fx/stamp" ]; then
  echo "[setup] generating parity fixtures with /usr/bin/python3 + torchvision"
  /usr/bin/python3 scripts/fixtures/make_parity.py "$fx"
  echo "$stamp" > "$fx/stamp"
fi

# torchvision-preprocessed imagenet-samples for the real-weights check (needs the shared data).
SHARED="${TORCH_RESNET_TL_SHARED:-../shared}"
if [ ! -f .fixtures/imagenet/labels.json ]; then
  if [ -d "$SHARED/data/imagenet-samples" ]; then
    echo "[setup] preprocessing imagenet-samples with torchvision"
    /usr/bin/python3 scripts/fixtures/make_imagenet.py "$SHARED/data/imagenet-samples" .fixtures/imagenet
  elif [ "${CI:-}" = "true" ]; then
    echo "[setup] shared data missing at $SHARED/data (set TORCH_RESNET_TL_SHARED)" >&2; exit 1
  fi
fi

# PIL/torchvision reference pixels for the transform and decoder parity tests.
stamp_t="$(sha256sum scripts/fixtures/make_transforms.py | cut -c1-16)"
if [ "$(cat .fixtures/transforms/stamp 2>/dev/null)" != "$stamp_t" ] && [ -d "$SHARED/data/hymenoptera" ]; then
  echo "[setup] generating transform reference pixels with torchvision"
  rm -rf .fixtures/transforms
  /usr/bin/python3 scripts/fixtures/make_transforms.py "$SHARED/data/hymenoptera" .fixtures/transforms
  echo "$stamp_t" > .fixtures/transforms/stamp
fi
