#!/usr/bin/env bash
# Train a backbone in resumable parts of MINUTES each (default 20) into engines/training/backbone-PRESET
# (default small), starting from the shipped backbone-PRESET if there is one, else from scratch; a part
# that is stopped loses only itself. Each part peaks at learning rate LR (default 1e-3); a model that
# has stopped improving at 1e-3 goes on at a lower one. Runs until stopped.
#   OMP_NUM_THREADS=1 nohup setsid nice -n 19 bash scripts/train_in_parts.sh 20 fast 3e-4 > train.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-20}"
preset="${2:-small}"
lr="${3:-1e-3}"
out="engines/training/backbone-$preset"
while true; do
    from=()
    if [ -f "$out.json" ]; then
        from=(--resume "$out")
    elif [ -f "livedenoise/weights/backbone-$preset.json" ]; then
        from=(--resume "livedenoise/weights/backbone-$preset")
    fi
    .venv/bin/python scripts/train_backbone.py --preset "$preset" "${from[@]}" --minutes "$minutes" --lr "$lr" --out "$out"
done
