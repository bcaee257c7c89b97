#!/usr/bin/env bash
# One-step set-up for a fresh Debian 12 machine, idempotent and quick when everything is present:
# system packages (libtorch, decoders), npm ci, the native build, the TypeScript build. With --test (npm test and
# the benchmarks) also the Python parity peer (Debian's torch + torchvision), Chromium for the report check, PyPI's
# onnx (the ONNX checker) and the reference fixtures.
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
pkgs=(build-essential cmake ninja-build pkg-config libturbojpeg0-dev libjpeg62-turbo-dev libpng-dev nlohmann-json3-dev libgloo-dev)
# Debian's libtorch calls the generic libblas.so.3 for matrix products (Linear layers, the linear probe): without
# OpenBLAS that is the reference BLAS (measured: 128×1024×1024 sgemm 44 ms; with OpenBLAS 2 ms)
[ "$VARIANT" = system ] && pkgs+=(libtorch-dev libopenblas0-pthread)
# clang + libFuzzer for the fuzz harnesses: Debian 12 has clang 14, Debian 13 clang 19 (the versioned names differ)
. /etc/os-release
case "${VERSION_ID:-12}" in 12) CLANG_V=14 ;; *) CLANG_V=19 ;; esac
[ "$TEST" = 1 ] && pkgs+=(python3-torch python3-torchvision python3-pil chromium "clang-$CLANG_V" "libclang-rt-$CLANG_V-dev" iproute2)
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
  # onnxruntime-node (tests only) ships its CPU binaries; its install script would fetch CUDA ones from a host
  # this machine cannot reach: its documented switch skips that
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
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

# PyPI's onnx (its checker validates the exported .onnx files in the tests), hash-checked, in .onnx/venv.
onnx_stamp="$(sha256sum scripts/onnx-requirements.txt | cut -c1-16)"
if [ "$(cat .onnx/stamp 2>/dev/null)" != "$onnx_stamp" ]; then
  echo "[setup] installing PyPI's onnx into .onnx/venv (scripts/onnx-requirements.txt, sha256-checked)"
  rm -rf .onnx && mkdir -p .onnx
  python3 -m venv .onnx/venv
  .onnx/venv/bin/pip install -q --disable-pip-version-check --require-hashes --no-deps -r scripts/onnx-requirements.txt
  echo "$onnx_stamp" > .onnx/stamp
fi

# Reference fixtures from the variant's torchvision (the parity peer: Debian's, or PyPI's in the venv); each folder is
# regenerated when its generator changes (a stamp holds the generator's hash).
FX=.fixtures; [ "$VARIANT" = pypi ] && FX=.fixtures-pypi
SHARED="${TORCH_RESNET_TL_SHARED:-../shared}"
# fixture DIR GENERATOR "what it makes" [ARGS...]: runs `$PY GENERATOR ARGS... DIR` when DIR's stamp is stale
fixture() {
  local dir=$1 gen=$2 what=$3 st
  shift 3
  st="$(sha256sum "$gen" | cut -c1-16)"
  [ "$(cat "$dir/stamp" 2>/dev/null)" = "$st" ] && return 0
  echo "[setup] generating $what"
  rm -rf "$dir"
  "$PY" "$gen" "$@" "$dir"
  echo "$st" > "$dir/stamp"
}
fixture "$FX/parity" scripts/fixtures/make_parity.py "parity fixtures with $PY + torchvision"

# torchvision-preprocessed imagenet-samples for the real-weights check (needs the shared data).
if [ ! -f $FX/imagenet/labels.json ]; then
  if [ -d "$SHARED/data/imagenet-samples" ]; then
    echo "[setup] preprocessing imagenet-samples with torchvision"
    "$PY" scripts/fixtures/make_imagenet.py "$SHARED/data/imagenet-samples" $FX/imagenet
  elif [ "${CI:-}" = "true" ]; then
    echo "[setup] shared data missing at $SHARED/data (set TORCH_RESNET_TL_SHARED)" >&2; exit 1
  fi
fi

# PIL/torchvision reference pixels for the transform and decoder parity tests, and a mutated JPEG/PNG corpus with
# PIL's accept/reject decisions and pixels (the decoder's PIL-agreement test).
if [ -d "$SHARED/data/hymenoptera" ]; then
  fixture "$FX/transforms" scripts/fixtures/make_transforms.py "transform reference pixels with torchvision" "$SHARED/data/hymenoptera"
  # the PIL-agreement suite runs once (npm test): our decoders do not depend on the libtorch variant
  [ "$VARIANT" = pypi ] || fixture "$FX/pilcorpus" scripts/fixtures/make_pil_corpus.py "the mutated-image corpus with PIL's verdicts" "$SHARED/data/hymenoptera"
fi
