#!/usr/bin/env bash
# Install everything and run the default test suite (the README's test command).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
.venv/bin/splat build                                   # fails loudly if the C++ backend does not build
.venv/bin/python -m splat.rasterizer.check_cuda_compile # CUDA kernels compile for sm_80/sm_90 (no GPU needed)
.venv/bin/pytest -q "$@"
