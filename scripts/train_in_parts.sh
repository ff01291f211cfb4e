#!/usr/bin/env bash
# Train a backbone in resumable parts of MINUTES each (default 20) into engines/training/backbone-PRESET
# (default small), starting from the shipped backbone-PRESET if there is one, else from scratch; a part
# that is stopped loses only itself. Runs until stopped.
#   OMP_NUM_THREADS=1 nohup setsid nice -n 19 bash scripts/train_in_parts.sh 20 fast > train.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-20}"
preset="${2:-small}"
out="engines/training/backbone-$preset"
while true; do
    from=()
    if [ -f "$out.json" ]; then
        from=(--resume "$out")
    elif [ -f "livedenoise/weights/backbone-$preset.json" ]; then
        from=(--resume "livedenoise/weights/backbone-$preset")
    fi
    .venv/bin/python scripts/train_backbone.py --preset "$preset" "${from[@]}" --minutes "$minutes" --out "$out"
done
