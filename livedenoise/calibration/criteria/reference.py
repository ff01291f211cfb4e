"""The ``reference`` criterion (the default): at least as good as the raw reference protocol.

The question a microscopist asks and the experiment of the CNNT paper (Rehman et al., Sci Rep
14:18184, 2024): the denoised average of n frames is at least as good as the raw reference protocol it
would replace. Judged on the lower end of the 95% confidence interval of the paired difference over
crops: denoised PSNR and SSIM at n minus the raw reference protocol's must stay above minus the
tolerance (a non-inferiority test).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from livedenoise.calibration.analysis import Measurement, Rung
from livedenoise.calibration.criteria.base import (
    Criterion,
    Guide,
    Metric,
    Tolerance,
    averages_text,
)


class Reference(Criterion):
    """As good as the raw reference protocol (module docstring)."""

    kind: Literal["reference"] = "reference"
    description = (
        "the denoised result at n must be at least as good as the raw reference protocol (95% "
        "lower bound of the paired difference over crops within the tolerance)"
    )
    help = "the fewest averages whose denoised result is as good as the raw reference protocol"
    shortfall = "its result is not as good as the raw reference protocol at any setting below it"

    def meets(self, rungs: Sequence[Rung], tolerance: Tolerance) -> np.ndarray:
        return np.array(
            [
                r.vs_reference.psnr.low >= -tolerance.psnr_db
                and r.vs_reference.ssim.low >= -tolerance.ssim
                for r in rungs
            ],
            dtype=bool,
        )

    def target(
        self, rung: Rung, rungs: Sequence[Rung], tolerance: Tolerance, reference_averages: float
    ) -> str:
        return (
            f"is at least as good as the raw reference protocol ({averages_text(reference_averages)}): "
            f"the 95% lower bounds of denoised minus reference are {rung.vs_reference.psnr.low:+.2f} "
            f"dB PSNR and {rung.vs_reference.ssim.low:+.3f} SSIM at {rung.averages}, within the "
            f"tolerance of {tolerance.psnr_db:g} dB and {tolerance.ssim:g}"
        )

    def guide(self, measurement: Measurement, metric: Metric) -> Guide:
        target = getattr(measurement.reference_raw, metric)
        return Guide(
            "raw reference protocol",
            [measurement.reference_averages],
            [target.mean],
            [target.low],
            [target.high],
        )
