"""The breaking point: the fewest averages at which the model's output is still good enough.

Two criteria say what "good enough" is (``Criterion``):

- ``reference`` (the default, the question a microscopist asks and the experiment of the CNNT paper,
  Rehman et al., Sci Rep 14:18184, 2024): the denoised average of n frames is at least as good as the
  raw reference protocol it would replace. Judged on the lower end of the 95% confidence interval of
  the paired difference over crops: denoised PSNR and SSIM at n minus the raw reference protocol's must
  stay above minus the tolerance (a non-inferiority test).
- ``plateau``: the denoised quality is within the tolerance of its own plateau. Quality can only improve
  with more signal, so the denoised PSNR and SSIM over the ladder are first made robust: a running median
  of three rungs (Tukey's rule at the ends, except that the fewest averages are never scored higher than
  measured), then the closest non-decreasing curve (isotonic regression); the plateau is its top. A
  model whose output keeps improving with input SNR never holds a plateau below the reference.

A number of averages n qualifies when

- the criterion is met at n and at every measured n' > n below the reference protocol,
- the model is safe at n and at every larger n (no more of the sample's structure in its residual than
  the structure tolerance, ``residual.py``),
- the model beats the raw average at n: its PSNR gain's 95% lower bound exceeds ``MIN_GAIN_DB``,
- and n is below the reference protocol.

The breaking point is the fewest qualifying n, always a rung of the measured ladder; with none, the
model gives no benefit and there is no breaking point (the reference protocol is kept). With several
fields, n must qualify on every one (``combine``). A stricter tolerance (any of the three) only removes
qualifying n, so it never yields fewer averages.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

import numpy as np
from pydantic import BaseModel, Field
from scipy.optimize import isotonic_regression

from livedenoise.calibration.analysis import Rung
from livedenoise.calibration.residual import STRUCTURE_LIMIT, unsafe

MIN_GAIN_DB = 0.2  # a gain below this is not a benefit anyone would see


class Criterion(str, Enum):
    """What the denoised quality at n must reach (module docstring)."""

    reference = "reference"
    plateau = "plateau"


class Tolerance(BaseModel):
    """How far below its target (the raw reference protocol, or the denoised plateau) the denoised
    quality may fall, and how much of the sample's structure the model may change (``residual.py``)."""

    psnr_db: float = Field(0.5, gt=0)
    ssim: float = Field(0.01, gt=0)
    structure: float = Field(STRUCTURE_LIMIT, gt=0)


class RungTest(BaseModel):
    """The evidence at one rung: which test it passed."""

    averages: int
    below_reference: bool
    quality: bool  # the criterion's target is met at this rung
    safe: bool  # the residual check passes at this rung
    helps: bool  # the model beats the raw average here
    qualifies: bool  # all of the module docstring's conditions


class Verdict(BaseModel):
    """The breaking point (None: no measured rung qualifies), why, and each rung's evidence."""

    criterion: Criterion
    breaking_point: int | None
    reason: str
    unsafe: list[int]  # averages at which the residual carries the sample's structure
    tests: list[RungTest]

    @property
    def benefit(self) -> bool:
        return self.breaking_point is not None


def robust_curve(values: Sequence[float]) -> np.ndarray:
    """Running median of three (Tukey's end-point rule), then the closest non-decreasing curve."""
    x = np.asarray(values, dtype=np.float64)
    y = x.copy()
    if x.size >= 3:
        y[1:-1] = np.median(np.stack([x[:-2], x[1:-1], x[2:]]), axis=0)
        y[0] = min(x[0], np.median([x[0], y[1], 3 * y[1] - 2 * y[2]]))  # never raise the cheapest
        y[-1] = np.median([x[-1], y[-2], 3 * y[-2] - 2 * y[-3]])
    return isotonic_regression(y).x


def plateau_curves(rungs: Sequence[Rung]) -> tuple[np.ndarray, np.ndarray]:
    """The robust denoised PSNR (dB) and SSIM curves; their last values are the plateau."""
    return (
        robust_curve([r.denoised.psnr.mean for r in rungs]),
        robust_curve([r.denoised.ssim.mean for r in rungs]),
    )


def _meets(rungs: Sequence[Rung], tolerance: Tolerance, criterion: Criterion) -> np.ndarray:
    if criterion is Criterion.reference:
        return np.array(
            [
                r.vs_reference.psnr.low >= -tolerance.psnr_db
                and r.vs_reference.ssim.low >= -tolerance.ssim
                for r in rungs
            ]
        )
    psnr, ssim = plateau_curves(rungs)
    return (psnr >= psnr[-1] - tolerance.psnr_db) & (ssim >= ssim[-1] - tolerance.ssim)


def _plural(n: float) -> str:
    return f"{n:g} average" + ("" if n == 1 else "s")


def find_breaking_point(
    rungs: Sequence[Rung],
    tolerance: Tolerance,
    reference_averages: float,
    criterion: Criterion = Criterion.reference,
) -> Verdict:
    """The breaking point of a measured ladder (rules in the module docstring).

    ``reference_averages`` is the reference protocol in frames at the fastest setting.
    """
    below = np.array([r.averages < reference_averages for r in rungs])
    quality = _meets(rungs, tolerance, criterion)
    safe = np.array([not unsafe(r.structure.mean, r.chance, tolerance.structure) for r in rungs])
    helps = np.array([r.gain_psnr.low > MIN_GAIN_DB for r in rungs])
    quality_above = np.logical_and.accumulate((quality | ~below)[::-1])[::-1]
    safe_above = np.logical_and.accumulate(safe[::-1])[::-1]
    qualifies = quality_above & safe_above & helps & below
    tests = [
        RungTest(
            averages=r.averages,
            below_reference=bool(b),
            quality=bool(q),
            safe=bool(s),
            helps=bool(h),
            qualifies=bool(ok),
        )
        for r, b, q, s, h, ok in zip(rungs, below, quality, safe, helps, qualifies, strict=True)
    ]
    unsafe_at = [r.averages for r, ok in zip(rungs, safe, strict=True) if not ok]
    if qualifies.any():
        rung = rungs[int(np.argmax(qualifies))]
        if criterion is Criterion.reference:
            target = (
                f"is at least as good as the raw reference protocol ({_plural(reference_averages)}): "
                f"the 95% lower bounds of denoised minus reference are {rung.vs_reference.psnr.low:+.2f} "
                f"dB PSNR and {rung.vs_reference.ssim.low:+.3f} SSIM at {rung.averages}, within the "
                f"tolerance of {tolerance.psnr_db:g} dB and {tolerance.ssim:g}"
            )
        else:
            psnr, ssim = plateau_curves(rungs)
            target = (
                f"holds within {tolerance.psnr_db:g} dB PSNR and {tolerance.ssim:g} SSIM of its "
                f"plateau ({psnr[-1]:.2f} dB, {ssim[-1]:.3f})"
            )
        reason = (
            f"from {_plural(rung.averages)} up the denoised result {target}; the residual keeps "
            f"within the structure tolerance, and the model beats the raw average by "
            f"{rung.gain_psnr.mean:.2f} dB there"
        )
        return Verdict(
            criterion=criterion,
            breaking_point=rung.averages,
            reason=reason,
            unsafe=unsafe_at,
            tests=tests,
        )
    candidates = helps & below
    if not candidates.any():
        why = (
            f"the model does not beat the raw average by {MIN_GAIN_DB:g} dB PSNR (95% confidence) "
            "at any setting below the reference"
        )
    elif not (candidates & quality_above).any():
        why = (
            "its result is not as good as the raw reference protocol at any setting below it"
            if criterion is Criterion.reference
            else "its quality does not reach its plateau below the reference"
        )
    else:
        why = f"the residual shows the sample's structure (unsafe) at {unsafe_at} averages"
    return Verdict(
        criterion=criterion,
        breaking_point=None,
        reason=f"no benefit: {why}",
        unsafe=unsafe_at,
        tests=tests,
    )


def combine(verdicts: Sequence[Verdict], names: Sequence[str]) -> Verdict:
    """One verdict for several fields measured on the same ladder: a rung qualifies on all or none."""
    if len(verdicts) == 1:
        return verdicts[0]
    tests = [
        RungTest(
            averages=rung[0].averages,
            **{
                key: all(getattr(t, key) for t in rung)
                for key in ("below_reference", "quality", "safe", "helps", "qualifies")
            },
        )
        for rung in zip(*(v.tests for v in verdicts), strict=True)
    ]
    own = ", ".join(
        f"{name}: {v.breaking_point if v.benefit else 'none'}"
        for name, v in zip(names, verdicts, strict=True)
    )
    first = next((t.averages for t in tests if t.qualifies), None)
    if first is None:
        reason = f"no benefit: no rung of the measured ladder qualifies on every field ({own})"
    else:
        reason = f"{_plural(first)} is the fewest that qualifies on every one of the {len(verdicts)} fields ({own})"
    return Verdict(
        criterion=verdicts[0].criterion,
        breaking_point=first,
        reason=reason,
        unsafe=sorted({n for v in verdicts for n in v.unsafe}),
        tests=tests,
    )
