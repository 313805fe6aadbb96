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
# A pretrained-style backbone on the GPU (issue 19): resnet18 from a weights file, bf16
# autocast, channels-last; frozen features computed once on the GPU, then the folds.
weights="$(mktemp -d)/resnet18.pth"
"$PY" -c "import sys, timm, torch; torch.save(timm.create_model('resnet18').state_dict(), sys.argv[1])" "$weights"
start=$(date +%s)
"$PY" -m raycv.cli run experiments/two_stage_fusion_gpu.yaml --overwrite --output runs/gpu-resnet18 \
  --set image.backbone=resnet18 --set "image.weights=$weights" --set resources.bf16=true \
  --set pretrain.unfreeze_depth=2 --set stage2.unfreeze_depth=2
echo "resnet18 run on the GPU: $(( $(date +%s) - start )) s"
