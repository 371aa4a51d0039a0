#!/usr/bin/env bash
# The GPU check kit: one command that prints what a lent GPU machine can tell us, in under 8 minutes on an H200.
#
#   bench/gpu_wheels.sh          # here, once: the wheels the GPU machine's image lacks, into ./.whl
#   bench/gpu_check.sh           # there (device run with carry [".whl"]), or anywhere: CUDA parts skip without a GPU
#
# It prints: the machine; the CUDA-only tests (pytest -m cuda); ddpm-cifar10 training img/s, MFU and peak memory
# at batch 128 and 512 in bf16 with channels_last, and with torch.compile (compile time included); sampling img/s
# of DDPM-1000, DDIM-50 and DPM-Solver++-20 at batch 500, with and without per-image noise streams; and a one-rank
# torchrun smoke run (NCCL on a GPU, gloo on a CPU). Every part has its own time limit and says when it is skipped
# or fails; the script goes on to the next. Record the figures in docs/performance.md with the date and GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 DDPM_WORKBENCH_NO_PLUGINS=1
started=$SECONDS
part() { echo; echo "=== $1 ($((SECONDS - started)) s in)"; }
limited() { local limit=$1; shift; timeout "$limit" "$@"; local rc=$?; [ $rc -eq 124 ] && echo "(stopped at its ${limit} s limit)"; [ $rc -ne 0 ] && [ $rc -ne 124 ] && echo "(exit $rc)"; return 0; }

part "setup"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
if ! python3 -c "import workbench_plugins, workbench" 2>/dev/null; then
  # offline: no build isolation (it would fetch setuptools), no dependencies (they are there or carried)
  python3 -m pip install -q --no-build-isolation --no-deps -e . || echo "editable install failed"
fi
python3 - <<'PY'
import platform, torch
print(f"python {platform.python_version()}, torch {torch.__version__}, CUDA {torch.version.cuda}")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs, bf16 {torch.cuda.is_bf16_supported()}")
else:
    print("no CUDA device: the CUDA parts below are skipped")
PY
gpu=$(python3 -c "import torch; print(int(torch.cuda.is_available()))")

part "CUDA-only tests (pytest -m cuda)"
if [ "$gpu" = 1 ]; then
  limited 180 python3 -m pytest -q -m cuda -p no:cacheprovider tests/engine tests/diffusion tests/sampling
else
  echo "skipped: no CUDA device"
fi

part "training: ddpm-cifar10, bf16 + channels_last, eager, batch 128 (with diffusers' UNet2DModel alongside)"
if [ "$gpu" = 1 ]; then
  limited 120 python3 bench/bench_train.py --device cuda --batch 128 --skip-tiny --rounds 60
  part "training: batch 512, eager"
  limited 90 python3 bench/bench_train.py --device cuda --batch 512 --skip-tiny --no-diffusers --steps 20
  part "training: batch 128 and 512 with torch.compile (the first window holds the compilation)"
  limited 150 python3 bench/bench_train.py --device cuda --batch 128 --skip-tiny --no-diffusers --compile
  limited 120 python3 bench/bench_train.py --device cuda --batch 512 --skip-tiny --no-diffusers --compile --steps 20
else
  echo "skipped: no CUDA device (on a CPU: python bench/bench_train.py)"
fi

part "sampling: ddpm-cifar10 at batch 500 (DDPM-1000, DDIM-50, DPM-Solver++-20), per-image noise streams on and off"
if [ "$gpu" = 1 ]; then
  limited 150 python3 bench/bench_sample.py --device cuda --preset ddpm-cifar10 --channels 3 --batch-size 500
  limited 90 python3 bench/bench_sample.py --device cuda --preset ddpm-cifar10 --channels 3 --batch-size 500 \
    --only ddim,dpm-solver++ --shared-noise
else
  echo "skipped: no CUDA device (on a CPU: python bench/bench_sample.py)"
fi

part "torchrun: one rank ($([ "$gpu" = 1 ] && echo NCCL || echo gloo)), 6 steps on synthetic data"
runs=$(mktemp -d)
device=$([ "$gpu" = 1 ] && echo cuda || echo cpu)
limited 120 python3 -m torch.distributed.run --standalone --nproc_per_node=1 -m workbench train --plain \
  --set run.dir="$runs" --set run.device=$device --set dataset.name=synthetic --set dataset.count=256 \
  --set train.steps=6 --set train.batch_size=8 --set train.log_every=2 --set train.sample_every=0 \
  --set sample.steps=10
ls "$runs"/*/checkpoints/latest.pt >/dev/null 2>&1 && echo "torchrun smoke: checkpoint written" || echo "torchrun smoke: NO checkpoint"
rm -rf "$runs"

part "done in $((SECONDS - started)) s"
