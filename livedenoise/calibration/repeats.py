"""Repeated frames of one field: recorded through a Micro-Manager core, or read from a recorded stack.

Calibration needs many noisy recordings of the same, unchanging field, taken at the fastest setting, so
that averaging the first n of them reproduces what the microscope would record with n times the
averaging. Only standard Micro-Manager calls are used (setProperty, snapImage, getImage), so the same
code runs on the simulated microscope and on real hardware.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pymmcore_plus import CMMCorePlus

from livedenoise.calibration.choose import Control
from livedenoise.calibration.errors import CalibrationError
from livedenoise.events import Events, Progress, events_or_new
from livedenoise.imageio import ImageFileError, as_frames, describe, read_image

MIN_REPEATS = 4  # 2 inputs (a ladder of 1, 2) and a reference of 2 frames: the least that compares
MIN_SIDE = 32  # pixels: smaller frames leave crops too small for SSIM


@dataclass
class Repeats:
    """``[R, H, W]`` frames of one field, and where they came from (device and field, or file)."""

    frames: np.ndarray
    source: str
    field: dict[str, str] = field(default_factory=dict)


def check_frames(frames: np.ndarray, origin: str) -> None:
    """Refuse a recording the calibration cannot use, saying what it needs instead."""
    if frames.ndim != 3:
        raise CalibrationError(
            f"{origin}: repeats are a stack of 2D frames [R, H, W]; got shape {frames.shape}."
        )
    count, height, width = frames.shape
    if count < MIN_REPEATS:
        raise CalibrationError(
            f"{origin}: {count} repeated frame(s) are too few; calibration splits them into inputs and "
            f"an independent reference and needs at least {MIN_REPEATS} (64 is typical)."
        )
    if min(height, width) < MIN_SIDE:
        raise CalibrationError(
            f"{origin}: frames of {height}x{width} are too small; use at least {MIN_SIDE}x{MIN_SIDE}."
        )


def load_repeats(path: str | Path, image_name: str | None = None) -> Repeats:
    """A recorded repeat stack (TIFF, .npy or OME-Zarr) with one time (or z) axis and one channel.

    ``image_name`` chooses the image in a file of several (``read_image``'s ``name``: ``raw/p0`` of a
    run store, a TIFF's series).
    """
    try:
        image = read_image(path, image_name)
    except ImageFileError as err:
        raise CalibrationError.from_error(err) from None
    stacked = [
        a for a, n in zip(image.axes, image.data.shape, strict=True) if a not in "YX" and n > 1
    ]
    if len(stacked) != 1 or stacked[0] == "C":
        raise CalibrationError(
            f"{path}: {describe(image)} is not one stack of repeated frames; give a single-channel "
            "time series (TYX) of one field."
        )
    frames = as_frames(image)[:, 0]  # the one stack axis; axes of length 1 fold away
    check_frames(frames, str(path))
    return Repeats(frames, f"stack {Path(path).name}", {"file": str(path)})


def check_repeat_count(count: int) -> None:
    """Raise CalibrationError for fewer repeats than a calibration can compare."""
    if count < MIN_REPEATS:
        raise CalibrationError(
            f"{count} repeats are too few",
            option="repeats",
            value=count,
            hint=f"calibration needs at least {MIN_REPEATS}, 64 is typical",
        )


def acquire_repeats(
    core: CMMCorePlus,
    count: int,
    control: Control,
    events: Events | None = None,
    what: str = "repeats",
) -> Repeats:
    """``count`` frames of the current field at the control's fastest value; the value is restored after.

    Frames are snapped one after the other with nothing moved in between. A real sample bleaches while
    it is scanned: the analysis reports the signal lost between the input and reference frames.
    ``events`` gets ``progress`` (frames recorded, as ``what``, from 0).
    """
    check_repeat_count(count)
    events = events_or_new(events)
    frames = []
    events.progress.emit(Progress(0, count, what))
    with control.held(core, control.base):
        for done in range(1, count + 1):
            core.snapImage()
            frames.append(np.array(core.getImage(), copy=True))
            events.progress.emit(Progress(done, count, what))
    stack = np.stack(frames)
    check_frames(stack, f"camera {core.getCameraDevice()}")
    return Repeats(stack, f"camera {core.getCameraDevice()}", describe_field(core))


def describe_field(core: CMMCorePlus) -> dict[str, str]:
    """Where the repeats were taken: stage position, focus, channel, pixel size, frame size."""
    info: dict[str, str] = {"camera": str(core.getCameraDevice())}
    if core.getXYStageDevice():
        x, y = core.getXYPosition()
        info["xy_um"] = f"{x:.2f}, {y:.2f}"
    if core.getFocusDevice():
        info["z_um"] = f"{core.getPosition():.2f}"
    if group := core.getChannelGroup():
        info["channel"] = f"{group}={core.getCurrentConfig(group)}"
    if pixel := core.getPixelSizeUm():
        info["pixel_um"] = f"{pixel:g}"
    info["frame"] = f"{core.getImageWidth()}x{core.getImageHeight()}"
    return info
