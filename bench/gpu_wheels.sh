#!/usr/bin/env bash
# Download, here (where PyPI is reachable), the pure-Python wheels the GPU kit needs that the lent GPU
# machine's image lacks (its python3 is 3.12 with torch, numpy, pillow, rich, pluggy, pytest, scipy,
# safetensors, huggingface_hub; no textual, diffusers or pytest-asyncio). They go to ./.whl (git-ignored);
# name `.whl` in the device call's `carry` and bench/gpu_check.sh installs them there.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  textual textual-image platformdirs linkify-it-py mdit-py-plugins uc-micro-py pytest-asyncio diffusers \
  importlib-metadata pytorch-fid
ls .whl
