"""Measuring the model over a ladder of averages against an independent reference.

The repeats are split in two: the first half gives the inputs (the average of the first n frames, for each
n of the ladder), the second half's mean is the reference. A reference containing the input's own frames
would share its noise and flatter the result. The ladder (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, ...) ends at
all the input frames, so R repeats reach R/2 averages, and the reference's own noise (R/2 frames) caps
the quality any image can score: that ceiling is reported with the table.

The user's reference protocol (n_ref averages, at most the inputs) is the raw average of the first n_ref
input frames, scored the same way; each rung's denoised result is compared with it crop by crop (paired
differences), which is what the reference criterion (``breaking.py``) judges.

Each n-average is denoised alone, as a window of one frame (T = 1). A live window of T frames at the
same setting gives the model more to work with, so the measurement is on the safe side, and the whole
ladder up to R/2 is reachable (windows of T n-averages would need T x n input frames).

Raw and denoised images are scored (PSNR, SSIM, NRMSE after an affine fit, ``livedenoise.metrics``)
on each crop of a grid over the field (2x2 to 4x4, crops of at least 16 px); the table gives the mean
over crops and its 95% confidence interval (Student's t). The per-crop values are kept, so that several
fields' crops can be pooled into one interval over crops and fields (``pool``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel
from scipy.stats import t as student_t

from livedenoise.calibration.errors import CalibrationError
from livedenoise.calibration.residual import structure_share
from livedenoise.events import Events, Progress, events_or_new
from livedenoise.inference import Engine, denoised_frames
from livedenoise.metrics import quality

WINDOW = 1  # frames per denoising window during calibration (see the module docstring)
# the reference's structure variance over its noise variance below which the field is empty
MIN_STRUCTURE = 1.0

Triple = tuple[float, float, float]  # PSNR (dB), SSIM, NRMSE of one crop


class Interval(BaseModel):
    """A mean over crops and its 95% confidence interval."""

    mean: float
    low: float
    high: float


class Scores(BaseModel):
    psnr: Interval
    ssim: Interval
    nrmse: Interval


class CropValues(BaseModel):
    """One rung's values per crop, which its intervals summarise."""

    raw: list[Triple]
    denoised: list[Triple]
    share: list[float]  # share of the reference's structure in the residual (residual.py)
    spread: list[float]  # its spread from chance alignment alone


class Rung(BaseModel):
    """One step of the ladder: the average of ``averages`` frames, raw and denoised."""

    averages: int
    raw: Scores
    denoised: Scores
    gain_psnr: Interval  # denoised minus raw, paired per crop
    vs_reference: Scores  # denoised minus the raw reference protocol, paired per crop
    structure: Interval  # share of the reference's structure in the residual (residual.py)
    chance: float  # spread of the pooled share from chance alignment alone
    crops: CropValues


class Measurement(BaseModel):
    """The ladder's results on one field (or several pooled) and what limits them."""

    fields: int = 1
    inputs: int
    reference_frames: int
    crops: int
    window: int = WINDOW
    reference_ceiling_db: float  # the best PSNR any image can score against this noisy reference
    structure_to_noise: float  # the reference's structure variance over its noise variance
    # mean signal of the reference frames relative to the input frames, minus 1 (bleaching)
    signal_change: float
    reference_averages: (
        int  # the reference protocol, as scored: the raw average of this many frames
    )
    reference_raw: Scores
    reference_crops: list[Triple]
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


def interval(values: Sequence[float] | np.ndarray) -> Interval:
    """Mean and 95% confidence interval (Student's t) of independent crop values."""
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    half = float(student_t.ppf(0.975, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return Interval(mean=mean, low=mean - half, high=mean + half)


def _scores(values: np.ndarray) -> Scores:
    return Scores(
        psnr=interval(values[:, 0]), ssim=interval(values[:, 1]), nrmse=interval(values[:, 2])
    )


def _rung(averages: int, crops: CropValues, reference: Sequence[Triple]) -> Rung:
    raw, den, ref = (
        np.asarray(v, dtype=np.float64) for v in (crops.raw, crops.denoised, reference)
    )
    return Rung(
        averages=averages,
        raw=_scores(raw),
        denoised=_scores(den),
        gain_psnr=interval(den[:, 0] - raw[:, 0]),
        vs_reference=_scores(den - ref),
        structure=interval(crops.share),
        chance=float(np.sqrt(np.sum(np.square(crops.spread)))) / len(crops.spread),
        crops=crops,
    )


def measure(
    engine: Engine,
    frames: np.ndarray,
    reference_averages: int,
    events: Events | None = None,
    what: str = "denoising the ladder",
) -> Measurement:
    """Raw and denoised quality over the ladder for repeats ``[R, H, W]`` (checked by ``repeats``).

    ``reference_averages`` is the reference protocol in frames; raises ``CalibrationError`` when it is
    beyond the R/2 inputs or the field shows no structure above its reference's noise. ``events``
    gets ``progress`` (rungs done of the ladder, as ``what``, from 0) and each rung as ``measured``.
    """
    events = events_or_new(events)
    half = frames.shape[0] // 2
    if not 1 <= reference_averages <= half:
        raise CalibrationError(
            f"a reference protocol of {reference_averages} averages cannot be scored from "
            f"{frames.shape[0]} repeats (they measure 1..{half}); record at least "
            f"{2 * reference_averages} repeats or give a shorter reference protocol."
        )
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
    steps = ladder(half)
    sums = np.cumsum(inputs, axis=0)
    protocol = sums[reference_averages - 1] / reference_averages
    reference_crops: list[Triple] = [quality(protocol[c], reference[c]) for c in grid]
    averages = np.stack([sums[n - 1] / n for n in steps]).astype(np.float32)
    rungs: list[Rung] = []
    events.progress.emit(Progress(0, len(steps), what))
    # each average alone (WINDOW = 1), scored as soon as it is denoised
    denoised_rungs = denoised_frames(engine, averages, WINDOW)
    for n, raw, denoised in zip(steps, averages, denoised_rungs, strict=True):
        shares = [
            structure_share(denoised[c], raw[c], reference[c], noise_var[c].mean()) for c in grid
        ]
        crops = CropValues(
            raw=[tuple(quality(raw[c], reference[c])) for c in grid],
            denoised=[tuple(quality(denoised[c], reference[c])) for c in grid],
            share=[s for s, _ in shares],
            spread=[s for _, s in shares],
        )
        rung = _rung(n, crops, reference_crops)
        rungs.append(rung)
        events.measured.emit(rung)  # a viewer can draw the curve as it fills in
        events.progress.emit(Progress(len(rungs), len(steps), what))
    return Measurement(
        inputs=half,
        reference_frames=later.shape[0],
        crops=len(grid),
        reference_ceiling_db=float(np.mean(ceiling)),
        structure_to_noise=structure,
        signal_change=float(change),
        reference_averages=reference_averages,
        reference_raw=_scores(np.asarray(reference_crops)),
        reference_crops=reference_crops,
        rungs=rungs,
    )


def pool(measurements: Sequence[Measurement]) -> Measurement:
    """Several fields' measurements of the same ladder as one: intervals over every field's crops.

    The ceiling is the crops' mean, the structure the least, the signal change the largest of any field.
    """
    if len(measurements) == 1:
        return measurements[0]
    first = measurements[0]
    reference = [c for m in measurements for c in m.reference_crops]
    rungs = [
        _rung(
            rung.averages,
            CropValues(
                **{
                    key: [v for m in measurements for v in getattr(m.rungs[i].crops, key)]
                    for key in CropValues.model_fields
                }
            ),
            reference,
        )
        for i, rung in enumerate(first.rungs)
    ]
    crops = sum(m.crops for m in measurements)
    return Measurement(
        fields=len(measurements),
        inputs=first.inputs,
        reference_frames=first.reference_frames,
        crops=crops,
        reference_ceiling_db=sum(m.reference_ceiling_db * m.crops for m in measurements) / crops,
        structure_to_noise=min(m.structure_to_noise for m in measurements),
        signal_change=max((m.signal_change for m in measurements), key=abs),
        reference_averages=first.reference_averages,
        reference_raw=_scores(np.asarray(reference)),
        reference_crops=reference,
        rungs=rungs,
    )
