#!/usr/bin/env bash
# Train the backbone in resumable parts of MINUTES each (default 20) into engines/training/backbone-small,
# starting from the shipped backbone; a part that is stopped loses only itself. Runs until stopped.
#   OMP_NUM_THREADS=1 nohup setsid nice -n 19 bash scripts/train_in_parts.sh 20 > train.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-20}"
out=engines/training/backbone-small
while true; do
    from="$out"
    [ -f "$out.json" ] || from=livedenoise/weights/backbone-small
    .venv/bin/python scripts/train_backbone.py --resume "$from" --minutes "$minutes" --out "$out"
done
