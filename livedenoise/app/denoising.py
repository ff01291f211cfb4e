"""Offline denoising of an image file or an in-memory array (2D, time series or z-stack) with a
saved model, start to end.

Checks, reading, the engine, denoising (``inference.denoised_frames``: overlapping windows, every
output kept) and writing, once, for the command line, the napari plugin, the viewer and scripts:
``denoise_file`` reads and writes around ``denoise_array``'s work. Front ends follow along through
the task's ``Events``, stop it with a ``cancel`` event, and show errors as they are: every one says
what is wrong and what to do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from livedenoise.app.session import engine_attrs
from livedenoise.errors import LivedenoiseError
from livedenoise.events import Events, Progress, events_or_new
from livedenoise.frames import FrameIndex, FrameInfo, RunLayout
from livedenoise.imageio import (
    Image,
    as_frames,
    check_writable,
    describe,
    from_frames,
    guess_note,
    image_format,
    list_images,
    read_image,
    write_image,
)
from livedenoise.inference import (
    Engine,
    check_finite,
    check_frame_size,
    denoised_frames,
    load_engine,
)
from livedenoise.model import find_model, load_card, model_paths
from livedenoise.paths import output_refusal
from livedenoise.storage import RunStore, StoredRun, is_run_store, open_run

R = TypeVar("R")
LOADING = "loading the engine (a model's first use exports or builds it)"


class DenoiseError(LivedenoiseError, ValueError):
    """A request the files rule out (the output exists or is the input, channels the model lacks);
    frames too small for the model are the engine's ``InputError``, the same rule as live runs."""


class DenoiseCancelled(LivedenoiseError, RuntimeError):
    """The caller stopped the denoising (its ``cancel`` event was set); nothing was written."""


def output_exists(output: Path) -> DenoiseError:
    """The error for an output that exists and may not be replaced (``overwrite`` is off)."""
    return DenoiseError(
        f"{output} exists", path=output, option="overwrite", hint="overwrite replaces it"
    )


@dataclass(frozen=True)
class DenoiseResult:
    """What was denoised, with what, and what was written: one line each, for people."""

    input: str  # e.g. "TYX 60x256x256 uint16 as 60 frame(s) of 1 channel(s)"
    engine: str  # Engine.describe()
    output: str  # e.g. "TYX 60x256x256 uint16"


def denoise_file(
    model: Path | str,
    input: Path | str,
    output: Path | str,
    *,
    image: str | None = None,
    backend: str = "auto",
    window: int = 8,
    stride: int | None = None,
    axes: str | None = None,
    float32: bool = False,
    overwrite: bool = False,
    tta: bool = False,
    events: Events | None = None,
) -> DenoiseResult:
    """Denoise the image at ``input`` with ``model`` and write it to ``output``.

    ``output`` is .tif (ImageJ hyperstack), .ome.tif, .npy or .ome.zarr; ``image`` chooses an image
    inside an OME-Zarr collection (``raw/p0`` of a run store). A livedenoise run store without
    ``image`` and an .ome.zarr ``output``: every raw image is denoised into a new run store of the
    same layout (raw images, timings and metadata copied). ``stride`` (1 to ``window``; default half
    the window) is the frames between overlapping windows. ``axes`` (letters from TZCYX)
    overrides the file's own. The output keeps the input's calibration and dtype (float32 with
    ``float32``), axes in the standard order. A single-channel model denoises each channel of a
    multi-channel image on its own. ``tta`` averages each window's 8 orientations (``Engine.tta``):
    8 times the time, for a small gain (README, Test-time augmentation).

    ``events``: ``started(input)``; ``status`` with the input line once it is read, then a
    ``progress`` of unknown total while the engine loads (minutes on a model's first use), then
    ``status`` with the engine line; ``progress`` after each frame (``what`` "denoising");
    ``finished(DenoiseResult)`` or ``failed(error)``. Raises DenoiseError, ImageFileError,
    ModelFileError, BackendError, InputError or OSError, each with a message for people, and all but
    the last before any frame is denoised.
    """
    options = (image, (backend, tta), (window, stride), axes, float32, overwrite)
    return reported(
        events_or_new(events),
        Path(input),
        lambda events: _denoise_file(model, Path(input), Path(output), *options, events),
    )


def denoise_array(
    model: Path | str,
    data: npt.ArrayLike,
    axes: str,
    *,
    backend: str = "auto",
    window: int = 8,
    stride: int | None = None,
    float32: bool = False,
    tta: bool = False,
    name: str = "the image",
    events: Events | None = None,
    cancel: threading.Event | None = None,
) -> np.ndarray:
    """``data``, whose dimensions ``axes`` names (letters from TZCYX), denoised with ``model``: what
    ``denoise_file`` writes for a file holding it, in ``data``'s own axes and shape.

    The options are ``denoise_file``'s; ``name`` names the image in messages (a layer's name).
    ``cancel``: set it from any thread to stop before the next frame; the call then raises
    DenoiseCancelled. ``events`` as ``denoise_file``'s, ``started`` with ``data``, ``finished`` with
    the denoised array. Raises DenoiseError, ImageFileError (axes that do not fit ``data``),
    ModelFileError, BackendError or InputError before any frame is denoised.
    """

    def work(events: Events) -> np.ndarray:
        check_stride(stride, window)
        source = Image(np.asarray(data), axes.upper())
        return _denoise_image(
            model, source, name, (backend, tta), (window, stride), float32, events, cancel
        )[0].data

    return reported(events_or_new(events), data, work)


def reported(events: Events, subject: object, work: Callable[[Events], R]) -> R:
    """``work(events)`` between ``started(subject)`` and ``finished(result)``, or ``failed(error)``
    before its error propagates: every offline task reports its ends the same way."""
    events.started.emit(subject)
    try:
        result = work(events)
    except Exception as error:
        events.failed.emit(error)
        raise
    events.finished.emit(result)
    return result


def show_engine(events: Events, engine_line: str) -> None:
    """The engine is ready: the spinner that ``loading_engine`` started gives way to its line."""
    events.status.emit(f"engine: {engine_line}")


def loading_engine(events: Events) -> None:
    """A progress of unknown total: loading can take minutes (a model's first use exports or
    builds it), and a front end that shows nothing then looks stuck."""
    events.progress.emit(Progress(0, None, LOADING))


def _denoise_file(
    model: Path | str,
    input: Path,
    output: Path,
    image: str | None,
    backend: tuple[str, bool],
    windows: tuple[int, int | None],
    axes: str | None,
    float32: bool,
    overwrite: bool,
    events: Events,
) -> DenoiseResult:
    """``denoise_file``'s work; ``backend`` is (backend, tta), ``windows`` (window, stride)."""
    check_stride(windows[1], windows[0])
    output_format = image_format(Path(output.name))  # no known format: fails before any work
    check_output(output, input, model)  # before "exists": overwriting must not be the way round it
    if output.exists() and not overwrite:
        raise output_exists(output)
    run = open_run(input) if image is None and is_run_store(input) else None
    if run is not None:
        if output_format != "zarr" or output.exists():
            raise DenoiseError(
                f"{input} is a livedenoise run store of {len(run.raw)} image(s): give a new OUTPUT "
                "ending .ome.zarr to denoise every raw image into a new run store",
                path=input,
                option="image",
                hint="or choose one image of it, e.g. raw/p0",
            )
        return _denoise_run(model, input, run, output, backend, windows, events)
    source = read_image(input, image)
    if axes:
        source = source.with_axes(axes)
    check_writable(output, output_dtype(source, float32))
    result, read, engine = _denoise_image(
        model, source, str(input), backend, windows, float32, events, None
    )
    write_image(output, result)
    return DenoiseResult(read, engine, describe(result.in_order()))


def _denoise_image(
    model: Path | str,
    source: Image,
    name: str,
    backend: tuple[str, bool],
    windows: tuple[int, int | None],
    float32: bool,
    events: Events,
    cancel: threading.Event | None,
) -> tuple[Image, str, str]:
    """``source`` denoised, checked before the engine loads; with the input's and the engine's
    lines for people. ``name`` names it in messages; ``backend``, ``windows``: _denoise_file's."""
    frames = as_frames(source)
    check_finite(frames)  # before the engine loads and measures itself
    n, c, h, w = frames.shape
    read = f"{describe(source)} as {n} frame(s) of {c} channel(s)"
    if source.axes_guessed:
        read += f" ({guess_note(source)})"
    events.status.emit(f"{name}: {read}")
    check_frame_size(h, w, f"{name}: ", " (or check the axes, if they were misread)")
    check_channels(name, c, load_card(model).config.channels, axes_option=True)
    loading_engine(events)
    window = min(windows[0], n)
    engine = load_engine(model, backend[0], window=window, frame_size=(h, w), tta=backend[1])
    show_engine(events, engine.describe())
    denoised = _denoise_frames(engine, frames, windows, events, cancel)
    data = from_frames(to_dtype(denoised, output_dtype(source, float32)), source)
    return replace(source, data=data), read, engine.describe()


def _denoise_run(
    model: Path | str,
    input: Path,
    run: StoredRun,
    output: Path,
    backend: tuple[str, bool],
    windows: tuple[int, int | None],
    events: Events,
) -> DenoiseResult:
    """Every raw image of ``run`` copied into a new run store at ``output`` with its denoised twin.

    Each image slides the window along t (or z for a single time point), channel by channel for a
    single-channel model; stage positions, channel names, acquisition times and the run's metadata
    are kept, the model and backend are the new ones. ``backend``, ``windows``: _denoise_file's."""
    window = windows[0]
    names = [name for name in list_images(input) if name.startswith("raw/")]
    images = [read_image(input, name) for name in names]  # (t, c, z, y, x) each
    read = f"run store of {len(images)} raw image(s): " + ", ".join(
        f"{name} {describe(image)}" for name, image in zip(names, images, strict=True)
    )
    events.status.emit(f"{input}: {read}")
    for name, image in zip(names, images, strict=True):
        height, width = image.data.shape[-2:]
        check_frame_size(height, width, f"{input}/{name}: ")
    layout = RunLayout(**run.attrs["layout"])
    axis = "t" if max(image.data.shape[0] for image in images) > 1 else "z"
    loading_engine(events)
    frame_size = tuple(images[0].data.shape[-2:])
    engine = load_engine(model, backend[0], window=window, frame_size=frame_size, tta=backend[1])
    show_engine(events, engine.describe())
    attrs = {
        key: value
        for key, value in run.attrs.items()
        if key not in ("layout", "images", "interval_s", "summary", "complete")
    }
    attrs.update(
        engine_attrs(engine), window={"size": window, "axis": axis}, denoised_from=str(input)
    )
    store = RunStore(output, layout, attrs)
    total = sum(int(np.prod(image.data.shape[:3])) for image in images)
    done, start = 0, time.monotonic()
    for name, image in zip(names, images, strict=True):
        p = int(name.removeprefix("raw/p"))
        for info in _frame_infos(run, p, image):
            store.write_raw(image.data[info.index.t, info.index.c, info.index.z], info)
        data = image.data if axis == "t" else image.data.transpose(2, 1, 0, 3, 4)
        for k in range(data.shape[2]):  # each z-plane's time series (or the one z-stack)
            denoised = _denoise_frames(engine, data[:, :, k], windows, None, None)
            for n, c in np.ndindex(denoised.shape[:2]):
                t, z = (n, k) if axis == "t" else (k, n)
                store.write_denoised(
                    FrameIndex(t, p, c, z), denoised[n, c], time.monotonic() - start, np.nan
                )
                done += 1
                events.progress.emit(Progress(done, total, "denoising"))
    store.close({"frames": total, "denoised": done})
    return DenoiseResult(read, engine.describe(), f"{len(images)} raw and denoised image(s)")


def _frame_infos(run: StoredRun, p: int, image: Image) -> list[FrameInfo]:
    """What the store records with each raw frame of image ``p``: place, time, stage and channel."""
    t_n, c_n, z_n, h, w = image.data.shape
    y, x = image.translation.get("Y", 0.0), image.translation.get("X", 0.0)
    px = image.scale.get("X", 1.0)
    stage = (x + w / 2 * px, y + h / 2 * px, 0.0)  # the field's centre, as Micro-Manager gives it
    described = {d["name"]: d for d in run.attrs.get("images", [])}.get(f"p{p}", {})
    channels = image.channels or [f"channel {c}" for c in range(c_n)]
    acquired = run.timing["acquired_s"]
    infos = []
    for seq, (t, c, z) in enumerate(np.ndindex(t_n, c_n, z_n)):
        index = FrameIndex(t, p, c, z)
        recorded = all(i < n for i, n in zip((t, p, c, z), acquired.shape, strict=True))
        arrived = acquired[t, p, c, z] if recorded else np.nan
        metadata = {
            "channel": channels[c],
            **{k: described.get(k) for k in ("position", "position_name", "z_step_um")},
        }
        infos.append(FrameInfo(seq, index, float(arrived), stage, metadata))
    return infos


def _denoise_frames(
    engine: Engine,
    frames: np.ndarray,
    windows: tuple[int, int | None],
    events: Events | None,
    cancel: threading.Event | None,
) -> np.ndarray:
    """``[N, C, H, W]`` denoised together, or channel by channel for a single-channel engine, in
    windows of ``windows`` (window, stride); ``progress`` per frame on ``events``, if given.
    Raises DenoiseCancelled before the next frame once ``cancel`` is set."""
    n, c = frames.shape[:2]
    window, stride = windows
    out = np.empty(frames.shape, dtype=np.float32)
    together = engine.channels == c  # else channel by channel: they are independent fluorophores
    parts = [frames] if together else [frames[:, k] for k in range(c)]
    done = 0
    for k, part in enumerate(parts):
        for i, frame in enumerate(denoised_frames(engine, part, window, stride=stride)):
            if cancel is not None and cancel.is_set():
                raise DenoiseCancelled("denoising was cancelled; nothing was written")
            out[i if together else (i, k)] = frame
            done += 1
            if events is not None:
                events.progress.emit(Progress(done, n * len(parts), "denoising"))
    return out


def check_stride(stride: int | None, window: int) -> None:
    """Raise DenoiseError for a stride the windows cannot be laid at, before any work."""
    if stride is not None and not 1 <= stride <= window:
        raise DenoiseError(
            f"a stride of {stride} frame(s) does not fit windows of {window} frame(s)",
            option="stride",
            value=stride,
            hint=f"give 1..{window}, or none for half the window, rounded up",
        )


def check_output(output: Path, input: Path, model: Path | str) -> None:
    """Raise DenoiseError for an OUTPUT that is, holds or lies inside the INPUT or the model's files
    (writing it, or replacing it when overwriting, would destroy them), or that cannot be written."""
    inputs = [("INPUT", input), *(("model", path) for path in model_paths(find_model(model)))]
    if refused := output_refusal(output, inputs, "OUTPUT"):
        raise DenoiseError(refused, path=output)


def check_channels(input: str | Path, count: int, channels: int, axes_option: bool = False) -> None:
    """Raise DenoiseError unless a ``channels``-channel model can denoise ``count`` channels (a
    single-channel model takes any number, one at a time). ``axes_option``: the caller can give the
    input's axes (``axes``), which may have been misread."""
    if channels not in (1, count):
        misread = ", or check the axes, if they were misread" if axes_option else ""
        raise DenoiseError(
            f"{input} has {count} channel(s) but the model takes {channels}",
            path=input,
            option="axes" if axes_option else None,
            hint=f"use a model trained for these channels{misread}",
        )


def output_dtype(source: Image, float32: bool) -> np.dtype:
    """What a denoised ``source`` is written as: its own dtype, or float32 if asked for."""
    return np.dtype(np.float32) if float32 else source.data.dtype


def to_dtype(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Denoised float32 in the output dtype: integers are rounded and clipped to their range."""
    if dtype.kind == "f":
        return y.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.rint(y), info.min, info.max).astype(dtype)
