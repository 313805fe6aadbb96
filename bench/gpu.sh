#!/usr/bin/env bash
# GPU benchmark, for a lent GPU machine (or any CUDA box): the default experiment with 4
# folds sequentially on the GPU, on Ray with one GPU per fold, and on Ray with the 4 folds
# packed on one GPU (resources.per_fold.gpu=0.25). Prints walls and speed-ups.
#   bash bench/gpu.sh [folds]        (PYTHON=... to use another interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
folds="${1:-4}"
PY="${PYTHON:-python3}"
if ! "$PY" -c "import raycv" 2>/dev/null; then
  "$PY" -m pip install --quiet -e . # keeps the machine's CUDA torch
fi
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
PYTHONUNBUFFERED=1 "$PY" bench/executors.py --gpu --folds "$folds"
