"""NumPy ``.npy``: the array alone, axes guessed from its dimensions on reading (``default_axes``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from livedenoise.imageio.image import AXES, Image, ImageFileError, default_axes
from livedenoise.imageio.registry import ImageFormat


def read_npy(path: Path, name: str | None = None) -> Image:
    """The array of a ``.npy`` file (never a pickle). Raises ImageFileError."""
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ImageFileError(f"{path}: not a NumPy .npy array ({err}).", path=path) from None
    return Image(data, default_axes(data.ndim), axes_guessed=data.ndim > 2)


def write_npy(path: Path, image: Image) -> None:
    """The array alone, axes in the standard order (calibration is not kept)."""
    np.save(path, image.in_order(AXES).data)


FORMAT = ImageFormat("npy", "NumPy (.npy)", (".npy",), read_npy, write_npy)
