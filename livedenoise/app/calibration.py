"""Calibrating a model: the one implementation the command line and the viewer drive.

    request = CalibrationRequest(model="sim-confocal-small", backend="onnxruntime")
    profile = calibrate_on_core(core, request, Recording(repeats=64), Path("calibration/NAME"))
    profile = calibrate_from_stack(RecordedStack(path=STACK), request, Path("calibration/OFF"))

Both load the engine, record (or read) the repeats, measure the ladder, choose the setting and write
the directory whole (``profile.json``, plot, report) or not at all. A mistake the user can fix raises
``CalibrationError`` with what to do; progress goes to a ``CalibrationProgress``, on the calling
thread (a Qt front end reads what it stores on its own timer).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from pymmcore_plus import CMMCorePlus

from livedenoise.calibration.analysis import Rung, ladder_for
from livedenoise.calibration.breaking import Tolerance
from livedenoise.calibration.choose import Control, device_control, frames_control, reference_value
from livedenoise.calibration.errors import CalibrationError
from livedenoise.calibration.profile import Profile, check_free
from livedenoise.calibration.repeats import Repeats, acquire_repeats, load_repeats
from livedenoise.calibration.run import DEFAULT_REFERENCE_AVERAGES, calibrate, save_calibration
from livedenoise.inference import BackendError, Engine, InputError, load_engine
from livedenoise.model import ModelFileError


class CalibrationRequest(BaseModel):
    """How to calibrate, wherever the repeats come from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: Path = Field(description="NAME, NAME.safetensors or NAME.json")
    backend: str = "auto"
    reference: float | None = Field(
        None,
        description="the usual protocol as a value of the averaging property (frames offline); "
        f"None: {DEFAULT_REFERENCE_AVERAGES} averages",
    )
    margin: float = Field(1.0, ge=0, description="added to the breaking point, in averages")
    tolerance: Tolerance = Field(default_factory=Tolerance)


class Recording(BaseModel):
    """On a microscope: how the repeats are recorded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repeats: int = Field(64, description="frames recorded (checked by acquire_repeats)")
    property: str | None = Field(
        None,
        description="[DEVICE.]PROPERTY that sets averaging; None: the camera's LineAverage, "
        "else its Exposure",
    )
    xy: tuple[float, float] | None = Field(None, description="stage position first, in um")


class RecordedStack(BaseModel):
    """Offline: a recorded repeat stack (.tif, .npy, .ome.zarr)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path
    frame_ms: float | None = Field(None, ge=0, description="its frame time, to report frame times")


class CalibrationProgress:
    """What a running calibration reports, in this order; each method does nothing unless overridden."""

    def engine(self, description: str) -> None:
        """The engine is loaded (as ``Engine.describe`` words it)."""

    def recording(self, setting: str, total: int) -> None:
        """``total`` repeats are about to be recorded at ``setting`` (``DEVICE.PROPERTY=VALUE``)."""

    def repeat(self, done: int, total: int) -> None:
        """``done`` of ``total`` repeats are recorded."""

    def ladder(self, total: int) -> None:
        """``total`` rungs are about to be denoised and scored."""

    def rung(self, rung: Rung, total: int) -> None:
        """One more rung of ``total`` is measured."""


def calibrate_on_core(
    core: CMMCorePlus,
    request: CalibrationRequest,
    recording: Recording,
    directory: Path,
    *,
    overwrite: bool = False,
    progress: CalibrationProgress | None = None,
) -> Profile:
    """Record repeats of the current field (at ``recording.xy`` if given) and calibrate on them.

    Writes ``directory``; raises ``CalibrationError`` before recording when it exists (unless
    ``overwrite``), the property, reference or model cannot be used, and after a device fault while
    recording, with nothing written.
    """
    progress = progress or CalibrationProgress()
    check_free(directory, overwrite)
    if recording.xy is not None:
        _move_to(core, recording.xy)
    control = device_control(core, recording.property)
    reference = reference_value(control, request.reference, DEFAULT_REFERENCE_AVERAGES)
    engine = _engine(request, (core.getImageHeight(), core.getImageWidth()), progress)
    repeats = _record(core, recording.repeats, control, progress)
    profile = _measure(
        engine, request, repeats, control, reference, partial(control.frame_ms, core), progress
    )
    save_calibration(directory, profile, overwrite)
    return profile


def calibrate_from_stack(
    stack: RecordedStack,
    request: CalibrationRequest,
    directory: Path,
    *,
    overwrite: bool = False,
    progress: CalibrationProgress | None = None,
) -> Profile:
    """Calibrate on a recorded repeat stack; the control is the number of frames averaged.

    Writes ``directory``; raises ``CalibrationError`` before any denoising when it exists (unless
    ``overwrite``) or the stack, reference or model cannot be used.
    """
    progress = progress or CalibrationProgress()
    check_free(directory, overwrite)
    repeats = load_repeats(stack.path)
    control = frames_control()
    reference = reference_value(control, request.reference, DEFAULT_REFERENCE_AVERAGES)
    engine = _engine(request, repeats.frames.shape[1:], progress)
    step = stack.frame_ms
    profile = _measure(
        engine,
        request,
        repeats,
        control,
        reference,
        lambda n: None if step is None else n * step,
        progress,
    )
    save_calibration(directory, profile, overwrite)
    return profile


def _move_to(core: CMMCorePlus, xy: tuple[float, float]) -> None:
    """Move the XY stage to ``xy`` (um) and wait until it is there."""
    stage = core.getXYStageDevice()
    if not stage:
        raise CalibrationError("--xy: this microscope has no XY stage.")
    core.setXYPosition(*xy)
    core.waitForDevice(stage)


def _record(
    core: CMMCorePlus, count: int, control: Control, progress: CalibrationProgress
) -> Repeats:
    """``count`` repeats at the control's fastest value; a device fault becomes a CalibrationError."""
    progress.recording(f"{control.label}={control.text(control.base)}", count)
    try:
        return acquire_repeats(core, count, control, lambda done: progress.repeat(done, count))
    except CalibrationError:
        raise
    except Exception as err:  # MMCore and device adapters raise their own types
        raise CalibrationError(
            f"recording the repeats failed ({err}); nothing was written."
        ) from err


def _engine(
    request: CalibrationRequest, frame_size: tuple[int, int], progress: CalibrationProgress
) -> Engine:
    """The model on its backend for single frames of ``frame_size`` (calibration denoises alone)."""
    try:
        engine = load_engine(request.model, request.backend, window=1, frame_size=frame_size)
    except (ModelFileError, BackendError) as err:
        raise CalibrationError(str(err)) from err
    progress.engine(engine.describe())
    return engine


def _measure(
    engine: Engine,
    request: CalibrationRequest,
    repeats: Repeats,
    control: Control,
    reference: float,
    frame_ms: Callable[[float], float | None],
    progress: CalibrationProgress,
) -> Profile:
    """The ladder, breaking point and choice; ``frame_ms`` gives the frame time at a value."""
    total = len(ladder_for(repeats.frames.shape[0]))
    progress.ladder(total)
    try:
        profile = calibrate(
            engine,
            str(request.model),
            repeats,
            control,
            reference,
            request.tolerance,
            request.margin,
            frame_ms,
            lambda rung: progress.rung(rung, total),
        )
    except InputError as err:
        raise CalibrationError(str(err)) from err
    return profile
