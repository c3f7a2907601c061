#!/usr/bin/env bash
# Rebuild the served model from ../shared/data and the offline MiniLM encoder:
#   pip install -e '.[train]' && models/build.sh
# About 70 minutes on 2 CPU cores. Stage 1 fine-tunes every head on all the
# data; stage 2 continues with a lower learning rate on the smaller tasks (and
# 12,000 sentiment tweets, so sentiment is not forgotten). Then the int8 export
# is written to models/social-minilm with its manifest, metrics and model card,
# and the fp32 variant to models/build/ for comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
python models/train.py --epochs 1 --seed 13 --out models/build/checkpoint.pt
python models/train.py --init models/build/checkpoint.pt --sentiment-sample 12000 --lr 3e-5 --head-lr 3e-4 \
  --seed 21 --out models/build/checkpoint-2.pt
TRAINING='{"stage_1": {"epochs": 1, "batch": 32, "lr_encoder": 5e-5, "lr_heads": 1e-3, "seed": 13, "steps": 2444, "data": "all heads, emotion x3"}, "stage_2": {"epochs": 1, "batch": 32, "lr_encoder": 3e-5, "lr_heads": 3e-4, "seed": 21, "steps": 1336, "data": "offensive, hate, emotion x3, 12000 sentiment"}, "max_length": 64, "loss": "class-weighted cross-entropy per task", "cpu_seconds_2_cores": 4001}'
python models/export.py --checkpoint models/build/checkpoint-2.pt --version 1.1.0 --training "$TRAINING"
python models/export.py --checkpoint models/build/checkpoint-2.pt --version 1.1.0 --fp32 \
  --out models/build/social-minilm-fp32 --training "$TRAINING"
python models/evaluate.py models/build/social-minilm-fp32 --vader
