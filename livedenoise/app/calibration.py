"""Calibrating a model: the one implementation the command line and the viewer drive.

    request = CalibrationRequest(model="sim-confocal-small", backend="onnxruntime", frames=500)
    profile = calibrate_on_core(core, request, Recording(positions=[(22.5, 22.5), (60, 20)]), OUT)
    profile = calibrate_from_stack(RecordedStack(paths=[STACK_A, STACK_B]), request, OUT2)
    profile = calibrate_repeats(frames, request)  # [R, H, W] in memory (a napari layer)
    apply_chosen(core, profile)  # the chosen setting, on the core it was measured on

Each loads the engine, records (or reads) the repeats of each field, measures the ladder on each and
chooses the setting that holds on all of them; the first two write the directory whole
(``profile.json``, plot, report) or not at all (``calibrate_on_core`` writes none when given None).
A mistake the user can fix raises ``CalibrationError`` with what to do. What they report goes to
``events`` (``livedenoise.events.Events``), emitted on the calling thread: ``status`` (the engine),
``progress`` (repeats recorded, rungs denoised, each stage from 0), ``measured`` (each rung), then
``finished(profile)`` or ``failed(error)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field
from pymmcore_plus import CMMCorePlus

from livedenoise.calibration.choose import (
    DEFAULT_REFERENCE_AVERAGES,
    Control,
    device_control,
    find_property,
    frames_control,
    reference_value,
)
from livedenoise.calibration.criteria import AnyCriterion, Reference, Tolerance
from livedenoise.calibration.errors import CalibrationError
from livedenoise.calibration.profile import Profile as Profile  # re-exported, for front ends
from livedenoise.calibration.profile import apply_profile, check_free, device_settings, differences
from livedenoise.calibration.repeats import (
    Repeats,
    acquire_repeats,
    check_frames,
    check_repeat_count,
    load_repeats,
)
from livedenoise.calibration.report import figure as figure  # the ladder plot, re-exported
from livedenoise.calibration.report import summary as summary  # the verdict's lines, re-exported
from livedenoise.calibration.run import calibrate, of_fields, save_calibration
from livedenoise.events import Events, events_or_new
from livedenoise.inference import BackendError, Engine, InputError, load_engine
from livedenoise.model import ModelFileError, find_model, model_paths
from livedenoise.paths import output_refusal


class CalibrationRequest(BaseModel):
    """How to calibrate, wherever the repeats come from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: Path = Field(description="NAME, NAME.safetensors or NAME.json")
    backend: str = "auto"
    reference: float | None = Field(
        None,
        description="the usual protocol as a value of the averaging property (frames offline); "
        f"None: {DEFAULT_REFERENCE_AVERAGES} averages, or the most the repeats measure if fewer",
    )
    criterion: AnyCriterion = Field(
        default_factory=Reference,
        description="what the denoised result must reach: a criterion of "
        "livedenoise.calibration.criteria, or its kind (reference, plateau)",
    )
    margin: float = Field(1.0, ge=0, description="added to the breaking point, in averages")
    tolerance: Tolerance = Field(default_factory=Tolerance)
    frames: int | None = Field(
        None, ge=1, description="frames of the planned acquisition, to report the time it saves"
    )
    tta: bool = Field(
        False,
        description="measure the model with test-time augmentation (Engine.tta, 8x the time), for "
        "data that will be denoised offline with it; live denoising never uses it",
    )


class Recording(BaseModel):
    """On a microscope: how the repeats are recorded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repeats: int = Field(64, description="frames recorded (checked by acquire_repeats)")
    property: str | None = Field(
        None,
        description="[DEVICE.]PROPERTY that sets averaging; None: the camera's LineAverage, "
        "else its Exposure",
    )
    positions: list[tuple[float, float]] = Field(
        default_factory=list,
        description="stage positions (um) of the fields, each recorded in turn; empty: the current field",
    )


class RecordedStack(BaseModel):
    """Offline: recorded repeat stacks (.tif, .npy, .ome.zarr), one per field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    paths: list[Path] = Field(min_length=1)
    frame_ms: float | None = Field(
        None, ge=0, description="their frame time, to report frame times"
    )
    image: str | None = Field(
        None,
        description="the image inside each file that holds several: a run store's raw/p0, a "
        "multi-series TIFF's series",
    )


def calibrate_on_core(
    core: CMMCorePlus,
    request: CalibrationRequest,
    recording: Recording,
    directory: Path | None,
    *,
    overwrite: bool = False,
    events: Events | None = None,
) -> Profile:
    """Record repeats of each field (the current one, or each of ``recording.positions``) and calibrate.

    Writes ``directory`` (None: nothing is written; ``apply_chosen`` sets the result); raises
    ``CalibrationError`` before recording when it exists (unless ``overwrite``) or cannot be written
    (``check_out``), the property, reference or model cannot be used, and after a device fault while
    recording, with nothing written.
    """
    events = events_or_new(events)
    with _reported(events):
        profile = _on_core(core, request, recording, directory, overwrite, events)
    events.finished.emit(profile)
    return profile


def _on_core(
    core: CMMCorePlus,
    request: CalibrationRequest,
    recording: Recording,
    directory: Path | None,
    overwrite: bool,
    events: Events,
) -> Profile:
    if directory is not None:
        check_out(directory, overwrite, request.model)
    if recording.positions and not core.getXYStageDevice():
        raise CalibrationError(
            "stage positions were given, but this microscope has no XY stage",
            option="positions",
        )
    check_repeat_count(recording.repeats)  # the reference below is drawn from them
    control = device_control(core, recording.property)
    reference = reference_value(control, request.reference, recording.repeats // 2)
    engine = _engine(request, (core.getImageHeight(), core.getImageWidth()), events)
    stops: list[tuple[float, float] | None] = list(recording.positions) or [None]
    fields = []
    for i, xy in enumerate(stops, start=1):
        if xy is not None:
            _move_to(core, xy)
        what = f"repeats at {control.label}={control.text(control.base)}" + of_fields(i, len(stops))
        fields.append(_record(core, recording.repeats, control, events, what))
    profile = _measure(
        engine, request, fields, control, reference, partial(control.frame_ms, core), events
    ).model_copy(update={"settings": device_settings(core)})  # what its choice holds for
    if directory is not None:
        save_calibration(directory, profile, overwrite)
    return profile


def averaging_properties(core: CMMCorePlus) -> list[str]:
    """The camera's properties a calibration on ``core`` can vary, as ``DEVICE.PROPERTY``: the
    default (``Recording.property`` None) first, then every other one ``device_control`` accepts
    (writable, numeric, with a fastest value); empty with no camera."""
    if not core.getCameraDevice():
        return []
    default = ".".join(find_property(core, None))
    camera = core.getCameraDevice()
    labels = [f"{camera}.{name}" for name in core.getDevicePropertyNames(camera)]
    return [default, *(label for label in labels if label != default and _accepted(core, label))]


def _accepted(core: CMMCorePlus, label: str) -> bool:
    try:
        device_control(core, label)
    except CalibrationError:
        return False
    return True


def apply_chosen(core: CMMCorePlus, profile: Profile) -> list[str]:
    """Set ``profile``'s chosen setting on ``core`` (``apply_profile``, as ``acquire`` applies a
    saved one), as a user's click asks: applied even where the camera's settings have changed
    since it was measured; returns those changes in words, to show beside it.

    Raises ``CalibrationError`` for an offline profile, or a property the core lacks or refuses.
    """
    apply_profile(core, profile, accept=True)
    return differences(profile, core, None)


def calibrate_from_stack(
    stack: RecordedStack,
    request: CalibrationRequest,
    directory: Path,
    *,
    overwrite: bool = False,
    events: Events | None = None,
) -> Profile:
    """Calibrate on recorded repeat stacks, one per field; the control is the number of frames averaged.

    Writes ``directory``; raises ``CalibrationError`` before any denoising when it exists (unless
    ``overwrite``) or cannot be written (``check_out``), a stack cannot be used (or its frames
    differ in size from the others'), or the reference or model cannot be used.
    """
    events = events_or_new(events)
    with _reported(events):
        profile = _from_stack(stack, request, directory, overwrite, events)
    events.finished.emit(profile)
    return profile


def _from_stack(
    stack: RecordedStack,
    request: CalibrationRequest,
    directory: Path,
    overwrite: bool,
    events: Events,
) -> Profile:
    check_out(directory, overwrite, request.model, stack.paths)
    fields = [load_repeats(path, stack.image) for path in stack.paths]
    profile = _of_fields(fields, request, stack.frame_ms, events)
    save_calibration(directory, profile, overwrite)
    return profile


def calibrate_repeats(
    frames: npt.ArrayLike,
    request: CalibrationRequest,
    *,
    name: str = "repeats",
    frame_ms: float | None = None,
    events: Events | None = None,
) -> Profile:
    """Calibrate on one field's repeats in memory, ``[R, H, W]``, as ``calibrate_from_stack`` does
    on a stack holding them; nothing is written (``save_calibration`` writes the result).

    ``name`` names them in messages and in the profile (a layer's name); ``frame_ms`` is their frame
    time. Raises ``CalibrationError`` before any denoising when the frames or the model cannot be used.
    """
    events = events_or_new(events)
    with _reported(events):
        data = np.asarray(frames)
        check_frames(data, name)
        profile = _of_fields([Repeats(data, name)], request, frame_ms, events)
    events.finished.emit(profile)
    return profile


def _of_fields(
    fields: list[Repeats],
    request: CalibrationRequest,
    frame_ms: float | None,
    events: Events,
) -> Profile:
    """The profile of recorded repeats, one stack per field; the control is the frames averaged."""
    sizes = {f.frames.shape[1:] for f in fields}
    if len(sizes) > 1:
        raise CalibrationError(
            f"the stacks' frames differ in size ({', '.join(f'{h}x{w}' for h, w in sizes)}); "
            "give stacks of one microscope setting."
        )
    control = frames_control()
    reference = reference_value(
        control, request.reference, min(f.frames.shape[0] for f in fields) // 2
    )
    engine = _engine(request, fields[0].frames.shape[1:], events)
    return _measure(
        engine,
        request,
        fields,
        control,
        reference,
        lambda n: None if frame_ms is None else n * frame_ms,
        events,
    )


def check_out(directory: Path, overwrite: bool, model: Path, stacks: Sequence[Path] = ()) -> None:
    """Refuse the output ``directory`` before any work: a place that is, holds or lies inside the
    model or a stack (replacing it would delete them), a folder that cannot be written, or an
    existing calibration (unless ``overwrite``). Raises CalibrationError."""
    inputs = [("model", path) for path in model_paths(find_model(model))]
    inputs += [("stack", path) for path in stacks]
    if refused := output_refusal(directory, inputs, "output folder"):
        raise CalibrationError(refused, path=directory, option="directory")
    check_free(directory, overwrite)


@contextmanager
def _reported(events: Events) -> Iterator[None]:
    """Emit ``failed`` with whatever stops the calibration, then let it propagate."""
    try:
        yield
    except Exception as err:
        events.failed.emit(err)
        raise


def _move_to(core: CMMCorePlus, xy: tuple[float, float]) -> None:
    """Move the XY stage to ``xy`` (um) and wait until it is there."""
    core.setXYPosition(*xy)
    core.waitForDevice(core.getXYStageDevice())


def _record(core: CMMCorePlus, count: int, control: Control, events: Events, what: str) -> Repeats:
    """``count`` repeats at the control's fastest value; a device fault becomes a CalibrationError."""
    try:
        return acquire_repeats(core, count, control, events, what)
    except CalibrationError:
        raise
    except Exception as err:  # MMCore and device adapters raise their own types
        raise CalibrationError(
            f"recording the repeats failed ({err}); nothing was written."
        ) from err


def _engine(request: CalibrationRequest, frame_size: tuple[int, int], events: Events) -> Engine:
    """The model on its backend for single frames of ``frame_size`` (calibration denoises alone)."""
    try:
        engine = load_engine(
            request.model, request.backend, window=1, frame_size=frame_size, tta=request.tta
        )
    except (ModelFileError, BackendError) as err:
        raise CalibrationError.from_error(err) from err
    events.status.emit(f"engine: {engine.describe()}")
    return engine


def _measure(
    engine: Engine,
    request: CalibrationRequest,
    fields: list[Repeats],
    control: Control,
    reference: float,
    frame_ms: Callable[[float], float | None],
    events: Events,
) -> Profile:
    """The ladder of each field, breaking point and choice; ``frame_ms`` gives the frame time at a value."""
    try:
        profile = calibrate(
            engine,
            str(request.model),
            fields,
            control,
            reference,
            request.tolerance,
            request.margin,
            frame_ms,
            criterion=request.criterion,
            planned_frames=request.frames,
            events=events,
        )
    except InputError as err:
        raise CalibrationError.from_error(err) from err
    return profile
