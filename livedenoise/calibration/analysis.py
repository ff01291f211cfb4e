"""Measuring the model over a ladder of averages against an independent reference.

The repeats are split in two: the first half gives the inputs (the average of the first n frames, for each
n of the ladder), the second half's mean is the reference. A reference containing the input's own frames
would share its noise and flatter the result. The ladder (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, ...) ends at
all the input frames, so R repeats reach R/2 averages, and the reference's own noise (R/2 frames) caps
the quality any image can score: that ceiling is reported with the table.

Each n-average is denoised alone, as a window of one frame (T = 1). A live window of T frames at the
same setting gives the model more to work with, so the measurement is on the safe side, and the whole
ladder up to R/2 is reachable (windows of T n-averages would need T x n input frames).

Raw and denoised images are scored (PSNR, SSIM, NRMSE after an affine fit, ``livedenoise.metrics``)
on each crop of a grid over the field (2x2 to 4x4, crops of at least 16 px); the table gives the mean
over crops and its 95% confidence interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel
from scipy.stats import t as student_t

from livedenoise.calibration.errors import CalibrationError
from livedenoise.calibration.residual import structure_share
from livedenoise.inference import Engine, denoised_frames
from livedenoise.metrics import quality

WINDOW = 1  # frames per denoising window during calibration (see the module docstring)
# the reference's structure variance over its noise variance below which the field is empty
MIN_STRUCTURE = 1.0


class Interval(BaseModel):
    """A mean over crops and its 95% confidence interval."""

    mean: float
    low: float
    high: float


class Scores(BaseModel):
    psnr: Interval
    ssim: Interval
    nrmse: Interval


class Rung(BaseModel):
    """One step of the ladder: the average of ``averages`` frames, raw and denoised."""

    averages: int
    raw: Scores
    denoised: Scores
    gain_psnr: Interval  # denoised minus raw, paired per crop
    structure: Interval  # share of the reference's structure in the residual (residual.py)
    chance: float  # spread of the pooled share from chance alignment alone


class Measurement(BaseModel):
    """The ladder's results and what limits them."""

    inputs: int
    reference_frames: int
    crops: int
    window: int = WINDOW
    reference_ceiling_db: float  # the best PSNR any image can score against this noisy reference
    structure_to_noise: float  # the reference's structure variance over its noise variance
    # mean signal of the reference frames relative to the input frames, minus 1 (bleaching)
    signal_change: float
    rungs: list[Rung]


def ladder(inputs: int) -> list[int]:
    """1, 2, 3, 4, 6, 8, 12, 16, ... below ``inputs``, then ``inputs`` itself."""
    steps = {1, *(2**k for k in range(1, 31)), *(3 * 2**k for k in range(30))}
    return [n for n in sorted(steps) if n < inputs] + [inputs]


def ladder_for(repeats: int) -> list[int]:
    """The ladder a calibration of ``repeats`` frames measures: half of them are inputs."""
    return ladder(repeats // 2)


def crop_grid(height: int, width: int) -> list[tuple[slice, slice]]:
    """A g x g grid of crops, g from 2 (frames under 128 px) to 4 (256 px and more)."""
    g = max(2, min(4, min(height, width) // 64))
    ch, cw = height // g, width // g
    return [
        (slice(i * ch, (i + 1) * ch), slice(j * cw, (j + 1) * cw))
        for i in range(g)
        for j in range(g)
    ]


def interval(values: Sequence[float]) -> Interval:
    """Mean and 95% confidence interval (Student's t) of independent crop values."""
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    half = float(student_t.ppf(0.975, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return Interval(mean=mean, low=mean - half, high=mean + half)


def _scores(values: Sequence[tuple[float, float, float]]) -> Scores:
    psnr, ssim, nrmse = zip(*values, strict=True)
    return Scores(psnr=interval(psnr), ssim=interval(ssim), nrmse=interval(nrmse))


def measure(
    engine: Engine, frames: np.ndarray, on_rung: Callable[[Rung], None] = lambda rung: None
) -> Measurement:
    """Raw and denoised quality over the ladder for repeats ``[R, H, W]`` (checked by ``repeats``)."""
    half = frames.shape[0] // 2
    inputs = frames[:half].astype(np.float64)
    later = frames[half:].astype(np.float64)
    reference = later.mean(axis=0)
    noise_var = later.var(axis=0, ddof=1) / later.shape[0]  # of the reference's mean, per pixel
    structure = float((reference.var() - noise_var.mean()) / max(noise_var.mean(), 1e-12))
    if structure < MIN_STRUCTURE:
        raise CalibrationError(
            f"the field shows no structure above the noise of its reference (structure/noise "
            f"{structure:.2f}, needs {MIN_STRUCTURE:g}): calibrate on a field with sample in it, "
            "or record more repeats."
        )
    grid = crop_grid(*reference.shape)
    ceiling = [
        10 * np.log10((np.ptp(reference[c]) ** 2 or 1.0) / max(noise_var[c].mean(), 1e-12))
        for c in grid
    ]
    dark = np.percentile(reference, 1)
    change = (later.mean() - dark) / max(inputs.mean() - dark, 1e-12) - 1
    steps = ladder_for(frames.shape[0])
    sums = np.cumsum(inputs, axis=0)
    averages = np.stack([sums[n - 1] / n for n in steps]).astype(np.float32)
    rungs = []
    # each average alone (WINDOW = 1), scored as soon as it is denoised
    denoised_rungs = denoised_frames(engine, averages, WINDOW)
    for n, raw, denoised in zip(steps, averages, denoised_rungs, strict=True):
        raw_q = [quality(raw[c], reference[c]) for c in grid]
        den_q = [quality(denoised[c], reference[c]) for c in grid]
        shares, spreads = zip(
            *(
                structure_share(denoised[c], raw[c], reference[c], noise_var[c].mean())
                for c in grid
            ),
            strict=True,
        )
        chance = float(np.sqrt(np.sum(np.square(spreads)))) / len(grid)
        rung = Rung(
            averages=n,
            raw=_scores(raw_q),
            denoised=_scores(den_q),
            gain_psnr=interval([d.psnr - r.psnr for d, r in zip(den_q, raw_q, strict=True)]),
            structure=interval(shares),
            chance=chance,
        )
        rungs.append(rung)
        on_rung(rung)  # a viewer can draw the curve as it fills in
    return Measurement(
        inputs=half,
        reference_frames=later.shape[0],
        crops=len(grid),
        reference_ceiling_db=float(np.mean(ceiling)),
        structure_to_noise=structure,
        signal_change=float(change),
        rungs=rungs,
    )
