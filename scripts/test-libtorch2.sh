#!/usr/bin/env bash
# The libtorch-2 suite: builds the addon against PyPI's current torch (scripts/torch2-requirements.txt; a CUDA build
# of libtorch, so this is also the CUDA-enabled addon loaded on a machine without a GPU) and runs the parity,
# checkpoint, data, trainer and CLI suites on it, with PyPI's torchvision as the parity peer and its own fixtures; and
# installs the packed tarball into an empty project that uses that venv's torch (TORCH_RESNET_TL_LIBTORCH=python).
set -euo pipefail
cd "$(dirname "$0")/.."
export TORCH_RESNET_TL_LIBTORCH=pypi
bash scripts/setup.sh --test
export TORCH_RESNET_TL_PYTHON="$PWD/.torch2/venv/bin/python"
export TORCH_RESNET_TL_FIXTURES="$PWD/.fixtures-pypi"
exec npx jest --runInBand test/parity test/native test/cli test/package/python-torch.test.ts "$@"
