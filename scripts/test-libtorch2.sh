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
# Only what can differ between libtorch releases runs twice: suites that exercise JS only or our own code with no
# libtorch call in what they check (the CLI's flags and report, signal handling, event-loop scheduling, metadata
# and option errors, the decoders' PIL agreement, the launcher's process management, the weights hub, the HTTP
# server's load shedding, drain and reload, the source-model ranking's and the search's bookkeeping over the same
# embeddings and fits) ran in npm test.
SAME_ON_EVERY_LIBTORCH='test/cli/cli.test.ts|test/cli/serve-load.test.ts|test/cli/serve-ops.test.ts|test/cli/interrupt.test.ts|test/cli/launch.test.ts|test/native/responsive.test.ts|test/native/reliability.test.ts|test/native/pil-corpus.test.ts|test/native/hub.test.ts|test/native/candidates.test.ts|test/cli/tune.test.ts'
exec npx jest --runInBand "$@" --testPathIgnorePatterns "$SAME_ON_EVERY_LIBTORCH" -- test/parity test/native test/cli test/package/python-torch.test.ts
