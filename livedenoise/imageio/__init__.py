"""Reading and writing images: TIFF (ImageJ, OME, plain), NumPy ``.npy`` and OME-Zarr.

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
from livedenoise.imageio.omezarr import NGFF_ORDER, create_zarr, list_images, read_zarr, write_zarr
from livedenoise.imageio.tiff import check_tiff_dtype, read_tiff, write_tiff

__all__ = [
    "AXES",
    "NGFF_ORDER",
    "Image",
    "ImageFileError",
    "as_frames",
    "check_axes",
    "check_writable",
    "create_zarr",
    "describe",
    "from_frames",
    "guess_note",
    "image_format",
    "list_images",
    "read_image",
    "read_zarr",
    "write_image",
]


def image_format(path: Path) -> str:
    """``"tiff"``, ``"npy"`` or ``"zarr"`` from the name (a zarr group needs no suffix to be read).

    Raises ImageFileError for any other name.
    """
    name = path.name.lower()
    if name.endswith((".tif", ".tiff")):
        return "tiff"
    if name.endswith(".npy"):
        return "npy"
    if name.endswith(".zarr") or (path / "zarr.json").is_file() or (path / ".zgroup").is_file():
        return "zarr"
    raise ImageFileError(
        f"{path}: unknown image format {path.suffix or '(no suffix)'!r}; "
        "use .tif/.tiff, .ome.tif, .npy or .ome.zarr."
    )


def read_image(path: str | Path, name: str | None = None) -> Image:
    """Read a TIFF, ``.npy`` or OME-Zarr (0.4 or 0.5) image into memory.

    ``name`` chooses an image inside an OME-Zarr collection (``raw/p0`` of a run store) or a series of
    a TIFF (its number from 0, or its name). Raises ImageFileError for a missing or unreadable file,
    one that holds no intensities, a ``name`` that is not there, or a file of several images without
    ``name`` (the message lists them).
    """
    path = Path(path)
    if not path.exists():
        raise ImageFileError(f"{path}: no such file.")
    kind = image_format(path)
    if name is not None and kind == "npy":
        raise ImageFileError(
            f"{path}: a .npy holds one image; --image chooses one inside an OME-Zarr collection "
            "or a TIFF of several series."
        )
    if kind == "zarr":
        image = read_zarr(path, name)
    else:
        image = _read_npy(path) if kind == "npy" else read_tiff(path, name)
    if image.data.dtype.kind not in "uif":
        raise ImageFileError(
            f"{path}: holds {image.data.dtype} values, not integer or floating-point intensities."
        )
    return image


def _read_npy(path: Path) -> Image:
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ImageFileError(f"{path}: not a NumPy .npy array ({err}).") from None
    return Image(data, default_axes(data.ndim), axes_guessed=data.ndim > 2)


def check_writable(path: Path, dtype: np.dtype) -> None:
    """Raise ImageFileError unless ``path``'s suffix names a format that can hold ``dtype``."""
    kind = image_format(Path(path.name))  # by its name alone: an output need not exist yet
    if kind == "tiff":
        check_tiff_dtype(path, np.dtype(dtype))


def write_image(path: str | Path, image: Image) -> None:
    """Write ``image`` in the format its suffix names, axes in the standard order; replaces a file.

    Raises ImageFileError for an unknown suffix or a dtype the format cannot hold.
    """
    path = Path(path)
    kind = image_format(Path(path.name))
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "tiff":
        write_tiff(path, image)
    elif kind == "npy":
        np.save(path, image.in_order(AXES).data)
    else:
        write_zarr(path, image)
