"""Offline calibration of the FMD test fields, one calibration per microscope, for the README.

    python scripts/calibrate_fmd.py [--model backbone-small] [--backend onnxruntime]

Each FMD test field (``../shared/data/fmd_test/noisy``, Zhang et al., CVPR 2019) holds 4 raw frames, so a
calibration splits them into inputs of 1 and 2 frames and a 2-frame reference, and the reference protocol
can be at most the raw 2-frame average. The fields of one microscope (confocal: 4 specimens, two-photon:
3, widefield: 2) are calibrated together, as ``livedenoise calibrate --from-stack A --from-stack B ...``
does; the plots go to docs/calibration_fmd_MICROSCOPE.png and the summaries and tables are printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from livedenoise.app import CalibrationRequest, RecordedStack, calibrate_from_stack
from livedenoise.calibration.report import PLOT, markdown_table, summary

ROOT = Path(__file__).resolve().parents[1]
FIELDS = Path("../shared/data/fmd_test/noisy")  # from the repository root
MICROSCOPES = ("Confocal", "TwoPhoton", "WideField")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("backbone-small"))
    parser.add_argument("--backend", default="onnxruntime")
    args = parser.parse_args()
    os.chdir(ROOT)  # paths in the profiles and reports are relative to the repository root
    request = CalibrationRequest(model=args.model, backend=args.backend)
    for microscope in MICROSCOPES:
        stacks = RecordedStack(paths=sorted(FIELDS.glob(f"{microscope}_*.tif")))
        out = Path("calibration") / f"fmd-{microscope.lower()}"
        profile = calibrate_from_stack(stacks, request, out, overwrite=True)
        plot = Path("docs") / f"calibration_fmd_{microscope.lower()}.png"
        shutil.copyfile(out / PLOT, plot)
        print(f"\n## {microscope}: {len(profile.fields)} fields, plot {plot}\n")
        print("\n".join(summary(profile)) + "\n")
        print(markdown_table(profile.measurement, profile.verdict))
        for field in profile.fields:
            print(f"\n{field.name}: {field.verdict.reason}\n")
            print(markdown_table(field.measurement, field.verdict))


if __name__ == "__main__":
    main()
