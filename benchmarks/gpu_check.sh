#!/usr/bin/env bash
# The prepared GPU check (issue 19): about 5 minutes on one H100 / H200 with no internet.
#   bash benchmarks/gpu_check.sh [OUT_DIR]
# 1. R50-FPN fine-tuning images/s (ours vs a bare torchvision loop, identical batches, bf16 autocast), peak memory,
#    evaluation time, and the estimated GPU-hours of the torchvision-profile book  -> OUT_DIR/gpu_check.json
# 2. a 1-GPU torchrun with an NCCL process group (init, all_reduce, barrier)       -> OUT_DIR/nccl_check.txt
# What the channels_last layout of engine.prepare_model buys (a third timed arm, about +50% of step 1's time):
#   python benchmarks/gpu_check.py --out OUT_DIR --size 512 --images 256 --repeats 2 --compare-layouts
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-_build/gpu_check}}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, \
'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
timeout 420 python benchmarks/gpu_check.py --out "$OUT" --size 512 --images 256 --repeats 2 2>&1 | tee "$OUT/gpu_check.log"
timeout 120 torchrun --standalone --nproc_per_node 1 benchmarks/nccl_check.py 2>&1 | tee "$OUT/nccl_check.txt"
