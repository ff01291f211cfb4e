"""Reading and writing images in the registered formats: TIFF (ImageJ, OME, plain), NumPy ``.npy``
and OME-Zarr, each one module registered in ``registry`` (a new format: a module and one
``register`` line below, or ``register`` from a plug-in).

An image is an array plus one axis letter per dimension from ``TZCYX`` (time, z, channel, y, x) and
what the file said about it: pixel size, z step and time interval with their units, the first pixel's
position, channel names (``Image``). Axes come from the file's metadata; where it names none (a plain
TIFF stack, a ``.npy``) they are guessed (``Image.axes_guessed``, ``guess_note`` says so). A file of
several images (an OME-Zarr collection, a TIFF of several series) is read one image at a time, chosen
by name. Writers keep all of it, axes in the standard order: TIFF as an ImageJ hyperstack (OME-TIFF
for names ending ``.ome.tif``; an RGB image stays RGB), OME-Zarr as an NGFF 0.5 image with scale and
translation; ``.npy`` keeps the array alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from livedenoise.imageio import npy, omezarr, tiff
from livedenoise.imageio.image import (
    AXES,
    Image,
    ImageFileError,
    as_frames,
    check_axes,
    default_axes,
    describe,
    from_frames,
    guess_note,
)
from livedenoise.imageio.omezarr import NGFF_ORDER, create_zarr, read_zarr
from livedenoise.imageio.registry import ImageFormat, format_of, formats, known_formats, register

register(tiff.FORMAT)
register(npy.FORMAT)
register(omezarr.FORMAT)

__all__ = [
    "AXES",
    "NGFF_ORDER",
    "Image",
    "ImageFileError",
    "ImageFormat",
    "as_frames",
    "check_axes",
    "check_writable",
    "create_zarr",
    "default_axes",
    "describe",
    "format_of",
    "formats",
    "from_frames",
    "guess_note",
    "image_format",
    "known_formats",
    "list_images",
    "read_image",
    "read_zarr",
    "register",
    "write_image",
]


def image_format(path: Path) -> str:
    """The name of ``path``'s format (``"tiff"``, ``"npy"``, ``"zarr"``, ...): by its name, or for
    an existing path without a known suffix by what it holds (a zarr group). Raises ImageFileError
    for any other."""
    return format_of(path).name


def read_image(path: str | Path, name: str | None = None) -> Image:
    """Read an image of any registered format into memory.

    ``name`` chooses an image inside a file of several (``raw/p0`` of a run store, a series of a
    TIFF: its number from 0, or its name). Raises ImageFileError for a missing or unreadable file,
    one that holds no intensities, a ``name`` that is not there or given for a format of one image per
    file, or a file of several images without ``name`` (the message lists them).
    """
    path = Path(path)
    if not path.exists():
        raise ImageFileError(f"{path}: no such file.", path=path)
    kind = format_of(path)
    if name is not None and not kind.several:
        raise ImageFileError(
            f"{path}: a {kind.title} file holds one image; an image name chooses one "
            "inside a file of several (an OME-Zarr collection, a TIFF of several series)",
            path=path,
            option="image",
            value=name,
        )
    image = kind.read(path, name)
    if image.data.dtype.kind not in "uif":
        raise ImageFileError(
            f"{path}: holds {image.data.dtype} values, not integer or floating-point intensities.",
            path=path,
        )
    return image


def list_images(path: Path) -> list[str]:
    """The names of the images of a file of several (a collection's ``["raw/p0", ...]``); ``[]``
    for one image, or a format that names none. Raises ImageFileError for an unknown format."""
    kind = format_of(path)
    return kind.list_images(path) if kind.list_images is not None else []


def check_writable(path: Path, dtype: np.dtype) -> None:
    """Raise ImageFileError unless ``path``'s suffix names a format that can hold ``dtype``."""
    kind = format_of(Path(path.name))  # by its name alone: an output need not exist yet
    if kind.check_writable is not None:
        kind.check_writable(path, np.dtype(dtype))


def write_image(path: str | Path, image: Image) -> None:
    """Write ``image`` in the format its suffix names, axes in the standard order; replaces a file.

    Raises ImageFileError for an unknown suffix or a dtype the format cannot hold.
    """
    path = Path(path)
    kind = format_of(Path(path.name))
    path.parent.mkdir(parents=True, exist_ok=True)
    kind.write(path, image)
