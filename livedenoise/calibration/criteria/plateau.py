"""The ``plateau`` criterion: within the tolerance of the model's own plateau.

Quality can only improve with more signal, so the denoised PSNR and SSIM over the ladder are first made
robust: a running median of three rungs (Tukey's rule at the ends, except that the fewest averages are
never scored higher than measured), then the closest non-decreasing curve (isotonic regression); the
plateau is its top. A model whose output keeps improving with input SNR never holds a plateau below the
reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy.optimize import isotonic_regression

from livedenoise.calibration.analysis import Measurement, Rung
from livedenoise.calibration.criteria.base import Criterion, Guide, Metric, Tolerance


def robust_curve(values: Sequence[float]) -> np.ndarray:
    """Running median of three (Tukey's end-point rule), then the closest non-decreasing curve."""
    x = np.asarray(values, dtype=np.float64)
    y = x.copy()
    if x.size >= 3:
        y[1:-1] = np.median(np.stack([x[:-2], x[1:-1], x[2:]]), axis=0)
        y[0] = min(x[0], np.median([x[0], y[1], 3 * y[1] - 2 * y[2]]))  # never raise the cheapest
        y[-1] = np.median([x[-1], y[-2], 3 * y[-2] - 2 * y[-3]])
    return np.asarray(isotonic_regression(y).x)


def plateau_curves(rungs: Sequence[Rung]) -> tuple[np.ndarray, np.ndarray]:
    """The robust denoised PSNR (dB) and SSIM curves; their last values are the plateau."""
    return (
        robust_curve([r.denoised.psnr.mean for r in rungs]),
        robust_curve([r.denoised.ssim.mean for r in rungs]),
    )


class Plateau(Criterion):
    """Near the model's own best (module docstring)."""

    kind: Literal["plateau"] = "plateau"
    description = "the denoised result at n must be within the tolerance of its own plateau"
    help = "within the tolerance of the model's own best"
    shortfall = "its quality does not reach its plateau below the reference"

    def meets(self, rungs: Sequence[Rung], tolerance: Tolerance) -> np.ndarray:
        psnr, ssim = plateau_curves(rungs)
        return np.asarray(
            (psnr >= psnr[-1] - tolerance.psnr_db) & (ssim >= ssim[-1] - tolerance.ssim)
        )

    def target(
        self, rung: Rung, rungs: Sequence[Rung], tolerance: Tolerance, reference_averages: float
    ) -> str:
        psnr, ssim = plateau_curves(rungs)
        return (
            f"holds within {tolerance.psnr_db:g} dB PSNR and {tolerance.ssim:g} SSIM of its "
            f"plateau ({psnr[-1]:.2f} dB, {ssim[-1]:.3f})"
        )

    def guide(self, measurement: Measurement, metric: Metric) -> Guide:
        fitted = [float(v) for v in plateau_curves(measurement.rungs)[0 if metric == "psnr" else 1]]
        return Guide(
            "denoised, robust fit",
            [r.averages for r in measurement.rungs],
            fitted,
            fitted,
            fitted,
        )
