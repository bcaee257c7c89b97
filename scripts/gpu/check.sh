#!/usr/bin/env bash
# The prepared GPU check, for the lent machine (device tool; no network, no Node.js there: bash scripts/gpu/prepare.sh
# here first, carry .gpu). Builds the addon against that machine's PyTorch (its libtorch is a CUDA build; headers
# and CMake files come with it), then runs scripts/gpu/check.mjs: CPU vs CUDA logits (resnet18/50, squeezenet1_1,
# IEEE fp32), a training step, Trainer epochs with pinned batches in bf16 and fp16 + loss scaling, CUDA
# out-of-memory as a typed error, transfer decisions on the device, data-parallel (2 ranks through Gloo on the GPU;
# NCCL with 2 GPUs) against 1 process, and resnet50 batch-128 bf16 training/inference img/s against that machine's Python
# torch (scripts/gpu/bench_py.py) in the same run. Report: $OUT/gpu-check.log and $OUT/gpu-check.json.
# Budget: under 8 minutes on one H200 (build ~2-3 min with 16 cores). GPU_CHECK_DRY_RUN=1 runs it on a CPU machine
# (here, with PY=.torch2/venv/bin/python) to exercise the script: CUDA parts are then reported as skipped.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu-check.log") 2>&1
t0=$(date +%s)
step() { echo "== [$(( $(date +%s) - t0 )) s] $*"; }

PY="${PY:-/opt/torch/.venv/bin/python3}"
[ -x "$PY" ] || PY=python3
step "tools"
if ! command -v node >/dev/null; then
  mkdir -p /tmp/gpu-node && xz -dc .gpu/node.xz > /tmp/gpu-node/node && chmod +x /tmp/gpu-node/node
  export PATH="/tmp/gpu-node:$PATH"
fi
node --version
DEPS=/tmp/gpu-deps
if [ -d .gpu/debs ]; then
  mkdir -p "$DEPS" && for f in .gpu/debs/*.deb; do dpkg -x "$f" "$DEPS"; done
  export PKG_CONFIG_PATH="$DEPS/usr/lib/x86_64-linux-gnu/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$DEPS"
  export LD_LIBRARY_PATH="$DEPS/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
fi
[ -e node_modules ] || ln -s .gpu/node_modules node_modules
[ -e dist ] || ln -s .gpu/dist dist
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
TORCH="$("$PY" -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
"$PY" -c 'import torch; print("python torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'

VARIANT="$TORCH"
if [ "${GPU_CHECK_DRY_RUN:-}" = 1 ] && [ -f build-pypi/Release/torch_resnet_tl.node ]; then
  step "dry run: using the existing build-pypi/ (no rebuild)"
  VARIANT=pypi
else
step "build against $TORCH"
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_JS_INC="$PWD/node_modules/node-api-headers/include" \
  -DCMAKE_LIBRARY_OUTPUT_DIRECTORY="$PWD/build-custom/Release" \
  -DTL_LIBTORCH_ROOT="$TORCH" -DTL_LIBTORCH_VARIANT=custom -DCMAKE_PREFIX_PATH="$DEPS/usr" >"$OUT/cmake.log" 2>&1 \
  || { tail -40 "$OUT/cmake.log"; exit 1; }
grep -E "libtorch|CUDA" "$OUT/cmake.log"
cmake --build build-gpu -j"$(nproc)" >"$OUT/build.log" 2>&1 || { grep -E "error|FAILED" -A3 "$OUT/build.log" | head -60; exit 1; }
grep -c "warning" "$OUT/build.log" | sed 's/^/compiler warnings: /'
fi

step "checks"
export TORCH_RESNET_TL_LIBTORCH="$VARIANT" GPU_CHECK_PY="$PY" GPU_CHECK_OUT="$OUT"
node scripts/gpu/check.mjs
rc=$?
step "done (exit $rc)"
exit $rc
