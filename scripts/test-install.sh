#!/usr/bin/env bash
# The package as users install it: (a) this machine's libtorch (Debian 12), prebuilt binary, no compiler; (c) the
# user's own PyTorch (PyPI's torch 2.15.0 in a venv) with TORCH_RESNET_TL_LIBTORCH=python. Each packs the tarball
# (prepack collects the binaries built here), installs it into an empty project and predicts.
# (b), Debian 13 from a debootstrap root, is scripts/test-install-debian13.sh (needs root and a few minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
TORCH_RESNET_TL_LIBTORCH=pypi bash scripts/setup.sh
exec npx jest --runInBand test/package "$@"
