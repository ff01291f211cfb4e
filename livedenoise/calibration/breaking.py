"""The breaking point: the fewest averages at which the model's output is still good enough.

A criterion says what "good enough" is (``criteria/``: ``reference``, the default, and ``plateau``).

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

import numpy as np
from pydantic import BaseModel

from livedenoise.calibration.analysis import Rung
from livedenoise.calibration.criteria import AnyCriterion, Criterion, Reference, Tolerance
from livedenoise.calibration.criteria.base import averages_text
from livedenoise.calibration.residual import unsafe

MIN_GAIN_DB = 0.2  # a gain below this is not a benefit anyone would see


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

    criterion: AnyCriterion
    breaking_point: int | None
    reason: str
    unsafe: list[int]  # averages at which the residual carries the sample's structure
    tests: list[RungTest]

    @property
    def benefit(self) -> bool:
        return self.breaking_point is not None


def find_breaking_point(
    rungs: Sequence[Rung],
    tolerance: Tolerance,
    reference_averages: float,
    criterion: Criterion | None = None,
) -> Verdict:
    """The breaking point of a measured ladder (rules in the module docstring).

    ``reference_averages`` is the reference protocol in frames at the fastest setting; ``criterion``
    defaults to ``Reference()``.
    """
    criterion = criterion or Reference()
    below = np.array([r.averages < reference_averages for r in rungs])
    quality = criterion.meets(rungs, tolerance)
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
        target = criterion.target(rung, rungs, tolerance, reference_averages)
        reason = (
            f"from {averages_text(rung.averages)} up the denoised result {target}; the residual keeps "
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
        why = criterion.shortfall
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
        reason = f"{averages_text(first)} is the fewest that qualifies on every one of the {len(verdicts)} fields ({own})"
    return Verdict(
        criterion=verdicts[0].criterion,
        breaking_point=first,
        reason=reason,
        unsafe=sorted({n for v in verdicts for n in v.unsafe}),
        tests=tests,
    )
