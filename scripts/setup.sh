#!/usr/bin/env bash
# One-step set-up for a fresh Debian 12 machine, idempotent and quick when everything is present:
# system packages (libtorch, decoders), npm ci, the native build, the TypeScript build. With --test (npm test and
# the benchmarks) also the Python parity peer (Debian's torch + torchvision), Chromium for the report check, and the
# reference fixtures.
#
# TORCH_RESNET_TL_LIBTORCH selects the libtorch to build against (and, at run time, which build the package loads):
#   unset | system  Debian's libtorch-dev 1.13 (CPU), build/
#   pypi            PyPI's current torch (scripts/torch2-requirements.txt: exact versions, sha256-checked; its
#                   libtorch is a CUDA build) in .torch2/venv, build-pypi/; torchvision from the same venv is the
#                   test peer and writes the fixtures into .fixtures-pypi/
#   <folder>        any libtorch folder (the official zip, CPU or CUDA), build-custom/
set -euo pipefail
cd "$(dirname "$0")/.."
TEST=0
BENCH=0
[ "${1:-}" = "--test" ] && TEST=1
# --bench: --test plus the benchmarks' second Python peer (PyPI's torch in .torch2/venv, jemalloc)
[ "${1:-}" = "--bench" ] && TEST=1 && BENCH=1
VARIANT_ARG="${TORCH_RESNET_TL_LIBTORCH:-system}"
case "$VARIANT_ARG" in
  system) VARIANT=system ;;
  pypi) VARIANT=pypi ;;
  *) VARIANT=custom
     [ -f "$VARIANT_ARG/lib/libtorch_cpu.so" ] || { echo "[setup] TORCH_RESNET_TL_LIBTORCH=$VARIANT_ARG: not a libtorch folder (no lib/libtorch_cpu.so)" >&2; exit 2; } ;;
esac

need_pkgs=()
pkgs=(build-essential cmake ninja-build pkg-config libturbojpeg0-dev libjpeg62-turbo-dev libpng-dev nlohmann-json3-dev)
[ "$VARIANT" = system ] && pkgs+=(libtorch-dev)
[ "$TEST" = 1 ] && pkgs+=(python3-torch python3-torchvision python3-pil chromium clang-14 libclang-rt-14-dev)
[ "$BENCH" = 1 ] && pkgs+=(libjemalloc2)
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

# PyPI's torch for the pypi variant: a venv with the hash-checked wheels (pip's cache keeps the downloads).
PY=/usr/bin/python3
if [ "$VARIANT" = pypi ] || [ "$BENCH" = 1 ]; then
  venv=.torch2/venv
  lock_stamp="$(sha256sum scripts/torch2-requirements.txt | cut -c1-16)"
  if [ "$(cat .torch2/stamp 2>/dev/null)" != "$lock_stamp" ]; then
    echo "[setup] installing PyPI's torch into $venv (scripts/torch2-requirements.txt, sha256-checked)"
    rm -rf .torch2 && mkdir -p .torch2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check --require-hashes --no-deps -r scripts/torch2-requirements.txt
    echo "$lock_stamp" > .torch2/stamp
  fi
fi
if [ "$VARIANT" = pypi ]; then
  PY="$PWD/$venv/bin/python"
  LIBTORCH_ROOT="$("$PY" -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null | tail -1)"
elif [ "$VARIANT" = custom ]; then
  LIBTORCH_ROOT="$(cd "$VARIANT_ARG" && pwd)"
fi

# Native build (one build folder per variant) when any native source is newer than the addon.
if [ "$VARIANT" = system ]; then BUILD=build; CMAKE_VARIANT=(); else
  BUILD="build-$VARIANT"; CMAKE_VARIANT=(-O "$BUILD" "--CDTL_LIBTORCH_ROOT=$LIBTORCH_ROOT" "--CDTL_LIBTORCH_VARIANT=$VARIANT"); fi
addon=$BUILD/Release/torch_resnet_tl.node
if [ ! -f "$addon" ] || [ -n "$(find cpp binding cmake CMakeLists.txt -newer "$addon" -print -quit)" ]; then
  echo "[setup] building the native addon against libtorch ($VARIANT) into $BUILD (cmake-js)"
  npx cmake-js compile "${CMAKE_VARIANT[@]}" --CDCMAKE_BUILD_TYPE=Release ${CMAKE_JS_FLAGS:-} -- -j"$(nproc)"
fi

# TypeScript build (CommonJS + ESM) when sources changed.
if [ ! -f dist/cjs/index.js ] || [ -n "$(find lib examples tsconfig*.json scripts/build-ts.mjs -newer dist/cjs/index.js -print -quit)" ]; then
  echo "[setup] compiling TypeScript"
  node scripts/build-ts.mjs
fi

[ "$TEST" = 1 ] || exit 0

# Reference fixtures from the variant's torchvision (the parity peer: Debian's, or PyPI's in the venv); regenerated
# when a generator changes.
FX=.fixtures; [ "$VARIANT" = pypi ] && FX=.fixtures-pypi
fx=$FX/parity
stamp="$(sha256sum scripts/fixtures/make_parity.py | cut -c1-16)"
if [ "$(cat "$fx/stamp" 2>/dev/null)" != "$stamp" ]; then rm -rf "$fx"; fi
if [ ! -f "$fx/stamp" ]; then
  echo "[setup] generating parity fixtures with $PY + torchvision"
  "$PY" scripts/fixtures/make_parity.py "$fx"
  echo "$stamp" > "$fx/stamp"
fi

# torchvision-preprocessed imagenet-samples for the real-weights check (needs the shared data).
SHARED="${TORCH_RESNET_TL_SHARED:-../shared}"
if [ ! -f $FX/imagenet/labels.json ]; then
  if [ -d "$SHARED/data/imagenet-samples" ]; then
    echo "[setup] preprocessing imagenet-samples with torchvision"
    "$PY" scripts/fixtures/make_imagenet.py "$SHARED/data/imagenet-samples" $FX/imagenet
  elif [ "${CI:-}" = "true" ]; then
    echo "[setup] shared data missing at $SHARED/data (set TORCH_RESNET_TL_SHARED)" >&2; exit 1
  fi
fi

# PIL/torchvision reference pixels for the transform and decoder parity tests.
stamp_t="$(sha256sum scripts/fixtures/make_transforms.py | cut -c1-16)"
if [ "$(cat $FX/transforms/stamp 2>/dev/null)" != "$stamp_t" ] && [ -d "$SHARED/data/hymenoptera" ]; then
  echo "[setup] generating transform reference pixels with torchvision"
  rm -rf $FX/transforms
  "$PY" scripts/fixtures/make_transforms.py "$SHARED/data/hymenoptera" $FX/transforms
  echo "$stamp_t" > $FX/transforms/stamp
fi

# Mutated JPEG/PNG corpus with PIL's accept/reject decisions and pixels (the decoder's PIL-agreement test).
stamp_c="$(sha256sum scripts/fixtures/make_pil_corpus.py | cut -c1-16)"
if [ "$(cat $FX/pilcorpus/stamp 2>/dev/null)" != "$stamp_c" ] && [ -d "$SHARED/data/hymenoptera" ]; then
  echo "[setup] generating the mutated-image corpus with PIL's verdicts"
  rm -rf $FX/pilcorpus
  "$PY" scripts/fixtures/make_pil_corpus.py "$SHARED/data/hymenoptera" $FX/pilcorpus
  echo "$stamp_c" > $FX/pilcorpus/stamp
fi
