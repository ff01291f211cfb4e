"""``livedenoise denoise``: denoise an image file (2D, time series or z-stack) with a saved model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from livedenoise.cli.common import Backend, console, fail
from livedenoise.imageio import Image, ImageFileError, check_axes, describe, read_image, write_image
from livedenoise.inference import BackendError, Engine, InputError, load_engine
from livedenoise.model import ModelFileError, load_card


def as_frames(image: Image) -> tuple[np.ndarray, str]:
    """The image as ``[N, C, Y, X]`` (N frames of the time or z axis) and the axes it came from."""
    stacks = [a for a in "TZ" if a in image.axes]
    if len(stacks) > 1:
        raise ImageFileError(
            f"image {describe(image)} has both time (T) and z (Z) axes; the model slides over one. "
            "Denoise each time point's z-stack (or each z-plane's time series) as its own file."
        )
    order = [*stacks, *("C" if "C" in image.axes else ""), "Y", "X"]
    data = np.transpose(image.data, [image.axes.index(a) for a in order])
    if not stacks:
        data = data[None]
    if "C" not in image.axes:
        data = data[:, None]
    return data, "".join(order)


def from_frames(frames: np.ndarray, order: str, image: Image) -> np.ndarray:
    """Undo ``as_frames``: back to the image's own axis order."""
    if "C" not in order:
        frames = frames[:, 0]
    if not set(order) & set("TZ"):
        frames = frames[0]
    return np.transpose(frames, [order.index(a) for a in image.axes])


def window_start(i: int, n: int, t: int) -> int:
    """First frame of the ``t``-frame window centred on frame ``i`` of ``n``, kept inside the stack."""
    return min(max(i - t // 2, 0), n - t)


def to_dtype(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Denoised float32 in the output dtype: integers are rounded and clipped to their range."""
    if dtype.kind == "f":
        return y.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.rint(y), info.min, info.max).astype(dtype)


def denoise_frames(
    engine: Engine, frames: np.ndarray, window: int, dtype: np.dtype, progress: Progress
) -> np.ndarray:
    """Each frame of ``[N, C, Y, X]`` denoised in the window of ``window`` frames centred on it."""
    n = frames.shape[0]
    t = min(window, n)
    out = np.empty(frames.shape, dtype=dtype)
    task = progress.add_task("denoising", total=n)
    start, result = -1, None
    for i in range(n):
        s = window_start(i, n, t)
        if s != start:  # near the stack's ends several frames share one window
            start, result = s, engine.denoise(frames[None, s : s + t])[0]
        out[i] = to_dtype(result[i - s], dtype)
        progress.advance(task)
    return out


def denoise(
    model: Annotated[Path, typer.Argument(help="A model: NAME, NAME.safetensors or NAME.json.")],
    input: Annotated[Path, typer.Argument(help="Image to denoise: .tif, .npy or .ome.zarr.")],
    output: Annotated[Path, typer.Argument(help="Where to write: .tif, .npy or .ome.zarr.")],
    backend: Annotated[Backend, typer.Option(help="Inference engine.")] = Backend.auto,  # type: ignore[valid-type]
    window: Annotated[
        int, typer.Option("--window", "-t", min=1, help="Frames (or z-planes) per window, T.")
    ] = 8,
    axes: Annotated[
        str | None,
        typer.Option(
            help="Axis letters of the input from TZCYX, e.g. ZYX (default: from the file)."
        ),
    ] = None,
    float32: Annotated[
        bool, typer.Option("--float32", help="Write float32 instead of the input's dtype.")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace OUTPUT if it exists.")] = False,
) -> None:
    """Denoise a 2D image, time series or z-stack; each frame sees the T frames centred on it."""
    if output.exists() and not overwrite:
        raise fail(f"{output} exists; pass --overwrite to replace it.")
    if output.resolve() == input.resolve():
        raise fail("OUTPUT is the INPUT; write the denoised image to a new file.")
    try:
        image = read_image(input)
        if axes:
            check_axes(axes.upper(), image.data.shape)
            image.axes = axes.upper()
        frames, order = as_frames(image)
    except ImageFileError as err:
        raise fail(str(err)) from None
    n, c, h, w = frames.shape
    console.print(f"{input}: {describe(image)} as {n} frame(s) of {c} channel(s)")
    try:
        channels = load_card(model).config.channels
        if c != channels:
            raise fail(
                f"{input} has {c} channel(s) but the model takes {channels}; "
                "use a model trained for these channels, or --axes if the axes were misread."
            )
        with console.status("loading the engine (a model's first use exports or builds it)"):
            engine = load_engine(model, backend.value, window=min(window, n), frame_size=(h, w))
    except (ModelFileError, BackendError) as err:
        raise fail(str(err)) from None
    console.print(f"engine: {engine.describe()}")
    dtype = np.dtype(np.float32) if float32 else image.data.dtype
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    try:
        with Progress(*columns, TimeRemainingColumn(), console=console) as progress:
            out = denoise_frames(engine, frames, window, dtype, progress)
        result = Image(from_frames(out, order, image), image.axes, image.scale, image.units)
        write_image(output, result)
    except (InputError, ImageFileError, OSError) as err:
        raise fail(str(err)) from None
    console.print(f"wrote {output}: {describe(result)}")


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel="Denoising")(denoise)
