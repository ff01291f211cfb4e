"""The breaking point: the fewest averages at which the model still delivers its best quality.

Quality can only improve with more signal, so the denoised PSNR and SSIM over the ladder are first made
robust: a running median of three rungs (Tukey's rule at the ends, except that the fewest averages are
never scored higher than measured) removes any single noisy point, then the closest non-decreasing
curve (isotonic regression) is fitted. The plateau is the top of that curve.
A number of averages n qualifies when

- the fitted PSNR and SSIM are within the tolerance of their plateau (from n up, as the fit only rises),
- the model is safe at n and at every larger n (no more of the sample's structure in its residual than
  the structure tolerance, ``residual.py``),
- the model beats the raw average at n: its PSNR gain's 95% lower bound exceeds ``MIN_GAIN_DB``,
- and n is below the reference protocol.

The breaking point is the fewest qualifying n. With none, the model gives no benefit and the breaking
point is the reference protocol. A stricter tolerance (any of the three) only removes qualifying n, so it
never yields fewer averages.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field
from scipy.optimize import isotonic_regression

from livedenoise.calibration.analysis import Rung
from livedenoise.calibration.residual import STRUCTURE_LIMIT, unsafe

MIN_GAIN_DB = 0.2  # a gain below this is not a benefit anyone would see


class Tolerance(BaseModel):
    """How far below its plateau the denoised quality may fall and still count as holding, and how
    much of the sample's structure the model may change (``residual.py``)."""

    psnr_db: float = Field(0.5, gt=0)
    ssim: float = Field(0.01, gt=0)
    structure: float = Field(STRUCTURE_LIMIT, gt=0)


class Verdict(BaseModel):
    """The breaking point, whether the model helps at all, and the curves it was read from."""

    breaking_point: float  # averages
    benefit: bool
    reason: str
    unsafe: list[int]  # averages at which the residual carries the sample's structure
    plateau_psnr: float
    plateau_ssim: float
    fitted_psnr: list[float]
    fitted_ssim: list[float]


def robust_curve(values: Sequence[float]) -> np.ndarray:
    """Running median of three (Tukey's end-point rule), then the closest non-decreasing curve."""
    x = np.asarray(values, dtype=np.float64)
    y = x.copy()
    if x.size >= 3:
        y[1:-1] = np.median(np.stack([x[:-2], x[1:-1], x[2:]]), axis=0)
        y[0] = min(x[0], np.median([x[0], y[1], 3 * y[1] - 2 * y[2]]))  # never raise the cheapest
        y[-1] = np.median([x[-1], y[-2], 3 * y[-2] - 2 * y[-3]])
    return isotonic_regression(y).x


def find_breaking_point(
    rungs: Sequence[Rung], tolerance: Tolerance, reference_averages: float
) -> Verdict:
    """The breaking point of a measured ladder (rules in the module docstring)."""
    psnr = robust_curve([r.denoised.psnr.mean for r in rungs])
    ssim = robust_curve([r.denoised.ssim.mean for r in rungs])
    holds = (psnr >= psnr[-1] - tolerance.psnr_db) & (ssim >= ssim[-1] - tolerance.ssim)
    safe = [not unsafe(r.structure.mean, r.chance, tolerance.structure) for r in rungs]
    safe_above = np.logical_and.accumulate(safe[::-1])[::-1]
    helps = np.array([r.gain_psnr.low > MIN_GAIN_DB for r in rungs])
    below = np.array([r.averages < reference_averages for r in rungs])
    qualifies = holds & safe_above & helps & below
    curves = {
        "unsafe": [r.averages for r, ok in zip(rungs, safe, strict=True) if not ok],
        "plateau_psnr": float(psnr[-1]),
        "plateau_ssim": float(ssim[-1]),
        "fitted_psnr": psnr.tolist(),
        "fitted_ssim": ssim.tolist(),
    }
    if qualifies.any():
        rung = rungs[int(np.argmax(qualifies))]
        reason = (
            f"from {rung.averages} average{'s' if rung.averages > 1 else ''} up the denoised "
            f"quality holds within {tolerance.psnr_db:g} dB PSNR and {tolerance.ssim:g} SSIM of "
            f"its plateau ({psnr[-1]:.2f} dB, {ssim[-1]:.3f}), the residual keeps within the "
            f"structure tolerance, and the model beats the raw average by "
            f"{rung.gain_psnr.mean:.2f} dB there"
        )
        return Verdict(breaking_point=rung.averages, benefit=True, reason=reason, **curves)
    if not (helps & below).any():
        why = (
            f"the model does not beat the raw average by {MIN_GAIN_DB:g} dB PSNR (95% confidence) "
            "at any setting below the reference"
        )
    elif curves["unsafe"]:
        why = f"the residual shows the sample's structure (unsafe) at {curves['unsafe']} averages"
    else:
        why = "its quality does not reach its plateau below the reference"
    reason = f"no benefit: {why}; keep the reference protocol ({reference_averages:g} averages)"
    return Verdict(breaking_point=reference_averages, benefit=False, reason=reason, **curves)
