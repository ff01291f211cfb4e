"""The image-format registry: each format is one module that registers one ``ImageFormat``.

``livedenoise.imageio`` reads, writes and checks files only through this registry, so a new format
(a module defining its reader and writer, plus one ``register`` line) reaches ``denoise``,
calibration and fine-tuning alike, and the lists of formats users read are drawn from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from livedenoise.imageio.image import Image, ImageFileError


@dataclass(frozen=True)
class ImageFormat:
    """One image format: how to recognise, read, write and check a file of it.

    Args:
        name: short name (``"tiff"``, ``"zarr"``); what ``image_format`` returns.
        title: what users read in lists of formats, e.g. ``"TIFF (.tif, .ome.tif)"``.
        suffixes: lower-case name endings that mean this format (``".tif"``, ``".ome.zarr"``).
        read: ``read(path, name)``: the image ``name`` of the file (None: its only image).
        write: ``write(path, image)``: ``image`` at ``path``, replacing what is there.
        check_writable: raises ImageFileError if the format cannot hold a dtype (before any work).
        list_images: the names of the images of a file that holds several, else ``[]``.
        recognise: whether an existing path whose name has no known suffix is of this format.
        several: whether a file can hold several images, chosen by name.
    """

    name: str
    title: str
    suffixes: tuple[str, ...]
    read: Callable[[Path, str | None], Image]
    write: Callable[[Path, Image], None]
    check_writable: Callable[[Path, np.dtype], None] | None = None
    list_images: Callable[[Path], list[str]] | None = None
    recognise: Callable[[Path], bool] | None = None
    several: bool = False


_REGISTRY: dict[str, ImageFormat] = {}


def register(image_format: ImageFormat) -> ImageFormat:
    """Make ``image_format`` known to every reader and writer of livedenoise (replacing one of its
    name); returns it."""
    _REGISTRY[image_format.name] = image_format
    return image_format


def formats() -> list[ImageFormat]:
    """The registered formats, in the order they were registered."""
    return list(_REGISTRY.values())


def known_formats() -> str:
    """The formats for users: ``"TIFF (.tif, .ome.tif), NumPy (.npy) or OME-Zarr (.ome.zarr)"``."""
    titles = [f.title for f in _REGISTRY.values()]
    return ", ".join(titles[:-1]) + " or " + titles[-1] if len(titles) > 1 else "".join(titles)


def format_of(path: Path) -> ImageFormat:
    """The format ``path``'s name ends with (the longest suffix wins), else the format that
    recognises the existing path. Raises ImageFileError for any other."""
    name = path.name.lower()
    matches = [(len(s), f) for f in _REGISTRY.values() for s in f.suffixes if name.endswith(s)]
    if matches:
        return max(matches, key=lambda match: match[0])[1]
    for image_format in _REGISTRY.values():
        if image_format.recognise is not None and image_format.recognise(path):
            return image_format
    if path.is_dir():
        what = "a folder, not an OME-Zarr image or run store"
    else:
        what = f"unknown image format {path.suffix or '(no suffix)'!r}"
    raise ImageFileError(
        f"{path}: {what}; use {known_formats()}.",
        path=path,
        value=path.suffix,
    )
