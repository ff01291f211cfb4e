"""Offline denoising of an image file (2D, time series or z-stack) with a saved model, start to end.

Checks, reading, the engine, denoising (``inference.denoise_stack``: each frame in the window centred
on it) and writing, once, for the command line, the viewer and scripts. Front ends follow along through
callbacks and show errors as they are: every one says what is wrong and what to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from livedenoise.imageio import (
    as_frames,
    check_writable,
    describe,
    from_frames,
    image_format,
    read_image,
    write_image,
)
from livedenoise.inference import Engine, denoise_stack, load_engine
from livedenoise.model import load_card
from livedenoise.model.cnnt import MIN_SIZE


class DenoiseError(ValueError):
    """A request the files rule out (the output exists or is the input, channels the model lacks,
    frames too small for the model)."""


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
    axes: str | None = None,
    float32: bool = False,
    overwrite: bool = False,
    on_read: Callable[[str], None] | None = None,
    on_loaded: Callable[[str], None] | None = None,
    on_frame: Callable[[int, int], None] | None = None,
) -> DenoiseResult:
    """Denoise the image at ``input`` with ``model`` and write it to ``output``.

    ``output`` is .tif (ImageJ hyperstack), .ome.tif, .npy or .ome.zarr; ``image`` chooses an image
    inside an OME-Zarr collection (``raw/p0`` of a run store). ``axes`` (letters from TZCYX)
    overrides the file's own. The output keeps the input's calibration and dtype (float32 with
    ``float32``), axes in the standard order. A single-channel model denoises each channel of a
    multi-channel image on its own. ``on_read(input line)`` comes once the input is read, before the
    engine loads (which can take minutes on a model's first use); ``on_loaded(engine line)`` once it
    has; ``on_frame(done, total)`` after each frame. Raises DenoiseError, ImageFileError,
    ModelFileError, BackendError, InputError or OSError, each with a message for people, and all but
    the last before any frame is denoised.
    """
    input, output = Path(input), Path(output)
    image_format(Path(output.name))  # an output name of no known format fails before any work
    if output.exists() and not overwrite:
        raise DenoiseError(f"{output} exists; pass --overwrite to replace it.")
    if output.resolve() == input.resolve():
        raise DenoiseError("OUTPUT is the INPUT; write the denoised image to a new file.")
    source = read_image(input, image)
    if axes:
        source = source.with_axes(axes)
    frames = as_frames(source)
    n, c, h, w = frames.shape
    read = f"{describe(source)} as {n} frame(s) of {c} channel(s)"
    if source.axes_guessed:
        read += " (axes guessed: the file does not name them; --axes overrides)"
    if on_read is not None:
        on_read(read)
    if min(h, w) < MIN_SIZE:
        raise DenoiseError(
            f"{input}: frames of {h}x{w} px are smaller than the model's minimum of "
            f"{MIN_SIZE}x{MIN_SIZE} px, where it would make them worse; denoise whole frames "
            "(or check --axes if the axes were misread)."
        )
    dtype = np.dtype(np.float32) if float32 else source.data.dtype
    check_writable(output, dtype)
    channels = load_card(model).config.channels
    if channels not in (1, c):
        raise DenoiseError(
            f"{input} has {c} channel(s) but the model takes {channels}; "
            "use a model trained for these channels, or --axes if the axes were misread."
        )
    engine = load_engine(model, backend, window=min(window, n), frame_size=(h, w))
    if on_loaded is not None:
        on_loaded(engine.describe())
    denoised = _denoise_frames(engine, frames, window, on_frame)
    result = replace(source, data=from_frames(to_dtype(denoised, dtype), source))
    write_image(output, result)
    return DenoiseResult(read, engine.describe(), describe(result.in_order()))


def _denoise_frames(
    engine: Engine,
    frames: np.ndarray,
    window: int,
    on_frame: Callable[[int, int], None] | None,
) -> np.ndarray:
    """``[N, C, H, W]`` denoised together, or channel by channel for a single-channel engine."""
    n, c = frames.shape[:2]
    if engine.channels == c:
        progress = None if on_frame is None else (lambda done: on_frame(done, n))
        return denoise_stack(engine, frames, window, progress)
    out = np.empty(frames.shape, dtype=np.float32)
    for k in range(c):  # channels are independent fluorophores
        progress = None if on_frame is None else (lambda done, k=k: on_frame(k * n + done, c * n))
        out[:, k] = denoise_stack(engine, frames[:, k], window, progress)
    return out


def to_dtype(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Denoised float32 in the output dtype: integers are rounded and clipped to their range."""
    if dtype.kind == "f":
        return y.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.rint(y), info.min, info.max).astype(dtype)
