"""Offline denoising of an image file (2D, time series or z-stack) with a saved model, start to end.

Checks, reading, the engine, denoising (``inference.denoise_stack``: each frame in the window centred
on it) and writing, once, for the command line, the viewer and scripts. Front ends follow along through
callbacks and show errors as they are: every one says what is wrong and what to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from livedenoise.imageio import (
    Image,
    as_frames,
    check_axes,
    describe,
    from_frames,
    read_image,
    write_image,
)
from livedenoise.inference import denoise_stack, load_engine
from livedenoise.model import load_card


class DenoiseError(ValueError):
    """A request the files rule out (the output exists or is the input, channels the model lacks)."""


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
    backend: str = "auto",
    window: int = 8,
    axes: str | None = None,
    float32: bool = False,
    overwrite: bool = False,
    on_read: Callable[[str], None] | None = None,
    on_loaded: Callable[[str], None] | None = None,
    on_frame: Callable[[int, int], None] | None = None,
) -> DenoiseResult:
    """Denoise the image at ``input`` with ``model`` and write it to ``output`` (.tif, .npy, .ome.zarr).

    ``axes`` (letters from TZCYX) overrides the file's own; the output keeps the input's axes, physical
    sizes and dtype (float32 with ``float32``). ``on_read(input line)`` comes once the input is read,
    before the engine loads (which can take minutes on a model's first use); ``on_loaded(engine
    line)`` once it has; ``on_frame(done, total)`` after each frame. Raises DenoiseError,
    ImageFileError, ModelFileError, BackendError, InputError or OSError, each with a message for people.
    """
    input, output = Path(input), Path(output)
    if output.exists() and not overwrite:
        raise DenoiseError(f"{output} exists; pass --overwrite to replace it.")
    if output.resolve() == input.resolve():
        raise DenoiseError("OUTPUT is the INPUT; write the denoised image to a new file.")
    image = read_image(input)
    if axes:
        check_axes(axes.upper(), image.data.shape)
        image.axes = axes.upper()
    frames = as_frames(image)
    n, c, h, w = frames.shape
    read = f"{describe(image)} as {n} frame(s) of {c} channel(s)"
    if on_read is not None:
        on_read(read)
    channels = load_card(model).config.channels
    if c != channels:
        raise DenoiseError(
            f"{input} has {c} channel(s) but the model takes {channels}; "
            "use a model trained for these channels, or --axes if the axes were misread."
        )
    engine = load_engine(model, backend, window=min(window, n), frame_size=(h, w))
    if on_loaded is not None:
        on_loaded(engine.describe())
    progress = None if on_frame is None else (lambda done: on_frame(done, n))
    denoised = denoise_stack(engine, frames, window, progress)
    dtype = np.dtype(np.float32) if float32 else image.data.dtype
    result = Image(
        from_frames(to_dtype(denoised, dtype), image), image.axes, image.scale, image.units
    )
    write_image(output, result)
    return DenoiseResult(read, engine.describe(), describe(result))


def to_dtype(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Denoised float32 in the output dtype: integers are rounded and clipped to their range."""
    if dtype.kind == "f":
        return y.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.rint(y), info.min, info.max).astype(dtype)
