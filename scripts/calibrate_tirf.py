"""Offline calibration of the real TIRF repeats, for the README: table, plot and profile.

    python scripts/calibrate_tirf.py [--model backbone-small] [--backend onnxruntime]

The same as

    livedenoise calibrate --model backbone-small --from-stack \\
        ../shared/data/repeats/tirf_microtubules_20x5ms.tif --frame-ms 5 --out tirf --overwrite

(20 sCMOS frames of 5 ms: 10 inputs and a 10-frame reference, so the ladder is 1..10 frames and the
reference protocol is the raw 10-frame average, the longest these repeats measure), then the plot is
copied to docs/calibration_tirf.png and the summary and markdown table printed for the README.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from livedenoise.calibration.profile import load_profile
from livedenoise.calibration.report import PLOT, markdown_table, summary
from livedenoise.cli import app

ROOT = Path(__file__).resolve().parents[1]
STACK = Path("../shared/data/repeats/tirf_microtubules_20x5ms.tif")  # from the repository root
FRAME_MS = 5.0  # exposure of each recorded frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("backbone-small"))
    parser.add_argument("--backend", default="onnxruntime")
    args = parser.parse_args()
    os.chdir(ROOT)  # paths in the profile and report are relative to the repository root
    out = Path("calibration/tirf")
    command = ["calibrate", "--model", str(args.model), "--from-stack", str(STACK)]
    command += ["--frame-ms", str(FRAME_MS), "--backend", args.backend, "--out", "tirf"]
    if code := app([*command, "--overwrite"], standalone_mode=False):
        sys.exit(code)  # the command printed why
    shutil.copyfile(out / PLOT, Path("docs/calibration_tirf.png"))
    profile = load_profile(out)
    print("\nplot: docs/calibration_tirf.png; summary and table for the README:\n")
    print("\n".join(summary(profile)) + "\n")
    print(markdown_table(profile.measurement, profile.verdict))


if __name__ == "__main__":
    main()
