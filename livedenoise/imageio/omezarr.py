"""OME-Zarr: NGFF 0.4 and 0.5 images and bioformats2raw collections read, NGFF 0.5 images written.

Metadata is parsed by yaozarrs's NGFF models, arrays are read by zarr-python. A collection (a
bioformats2raw layout, as livedenoise run stores are) lists its images in ``OME/``; one is read by its
path inside the collection, e.g. ``raw/p0``. Images are written with one resolution level, axes in NGFF
order (t, c, z, y, x), one chunk per plane, scale and translation from the image's calibration and an
``omero`` display window from its data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np
import zarr
from pydantic import TypeAdapter, ValidationError
from yaozarrs import v04, v05

from livedenoise.imageio.image import Image, ImageFileError
from livedenoise.imageio.registry import ImageFormat
from livedenoise.storage.ngff import image_attrs

NGFF_ORDER = "TCZYX"


def _open(path: Path, name: str = "") -> zarr.Group:
    try:
        root = zarr.open_group(path, mode="r")
        return root[name] if name else root  # type: ignore[return-value]
    except (FileNotFoundError, KeyError, ValueError, TypeError) as err:
        if name and isinstance(err, KeyError) and (images := list_images(path)):
            raise ImageFileError(
                f"{path} has no image {name}; it has {', '.join(images)}",
                path=path,
                option="image",
                value=name,
            ) from None
        where = f"{path}/{name}" if name else str(path)
        raise ImageFileError(
            f"{where}: not a zarr group ({type(err).__name__}: {err}).", path=path
        ) from None


def _ome(group: zarr.Group) -> Any:
    """The group's NGFF metadata as a yaozarrs model (0.5 in ``ome``, 0.4 at the top), or None."""
    attrs = group.attrs.asdict()
    try:
        if "ome" in attrs:  # the union of 0.5 nodes, as yaozarrs's validate_ome_object takes it
            return TypeAdapter(v05.OMEMetadata).validate_python(attrs["ome"])
        return TypeAdapter(v04.OMEZarrGroupJSON).validate_python(attrs) if attrs else None
    except ValidationError:
        return None


def list_images(path: Path) -> list[str]:
    """The images of a bioformats2raw collection in its ``OME/`` series order (``["raw/p0", ...]``).

    Without a series list, the numbered images ``0``, ``1``, ... that exist. Empty for a path that is
    not a collection (an image itself, or no OME-Zarr at all).
    """
    root = _open(path)
    if not isinstance(_ome(root), (v05.Bf2Raw, v04.Bf2Raw)):
        return []
    listing = root.get("OME")
    series = _ome(listing) if isinstance(listing, zarr.Group) else None
    if isinstance(series, (v05.Series, v04.Series)):
        return list(series.series)
    names: list[str] = []
    while str(len(names)) in root:
        names.append(str(len(names)))
    return names


def read_zarr(path: Path, name: str | None = None, *, lazy: bool = False) -> Image:
    """An NGFF image: the group at ``path``, the image ``name`` inside it, or a collection's only image.

    ``lazy`` leaves the pixels on disk: ``Image.data`` is then the full-resolution ``zarr.Array``
    (indexing it reads only what is asked for), for recordings larger than memory. Raises
    ImageFileError for a path that holds no NGFF image, and for a collection of several images
    without ``name`` (the message lists them).
    """
    if name is None and (names := list_images(path)):
        if len(names) > 1:
            shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
            raise ImageFileError(
                f"{path} holds {len(names)} images ({shown}); choose one by its name",
                path=path,
                option="image",
            )
        name = names[0]
    group = _open(path, name or "")
    meta = _ome(group)
    where = f"{path}/{name}" if name else str(path)
    if not isinstance(meta, (v05.Image, v04.Image)):
        raise ImageFileError(
            f"{where}: not an OME-Zarr image (no NGFF multiscales metadata).", path=path
        )
    multiscale = meta.multiscales[0]
    dataset = multiscale.datasets[0]  # the full resolution
    axes = "".join(a.name.upper() for a in multiscale.axes)
    try:
        array = group[dataset.path]
        if not isinstance(array, zarr.Array):
            raise ImageFileError(f"{dataset.path} is a group, not an array")
        # lazy: the zarr.Array itself, indexed as an ndarray would be
        data = cast(np.ndarray, array) if lazy else np.asarray(array)
        image = Image(data, axes)
    except (KeyError, ImageFileError) as err:
        raise ImageFileError(
            f"{where}: not a readable OME-Zarr image ({err}).", path=path
        ) from None
    scale, translation = _transforms(
        [*dataset.coordinateTransformations, *(multiscale.coordinateTransformations or [])],
        len(axes),
    )
    image.scale = {a: s for a, s in zip(axes, scale, strict=True) if a != "C"}
    image.translation = {a: t for a, t in zip(axes, translation, strict=True) if t}
    image.units = {a: ax.unit for a, ax in zip(axes, multiscale.axes, strict=True) if ax.unit}
    channels = meta.omero.channels if meta.omero else []
    if "C" in axes and len(channels) == data.shape[axes.index("C")]:
        image.channels = [c.label or f"channel {i}" for i, c in enumerate(channels)]
    return image


def _transforms(transforms: list[Any], ndim: int) -> tuple[list[float], list[float]]:
    """Scale and translation of a chain of NGFF transforms, applied in order."""
    scale, translation = np.ones(ndim), np.zeros(ndim)
    for transform in transforms:
        if transform.type == "scale":
            scale *= transform.scale
            translation *= transform.scale
        elif transform.type == "translation":
            translation += transform.translation
    return scale.tolist(), translation.tolist()


def write_zarr(path: Path, image: Image) -> None:
    """``image`` as an NGFF 0.5 image group at ``path`` (zarr v3); an existing one is replaced."""
    image = image.in_order(NGFF_ORDER)
    data = image.data
    finite = data[np.isfinite(data)] if data.dtype.kind == "f" else data
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    array = create_zarr(path, image, data.dtype, (low, high))
    array[...] = data


def create_zarr(
    path: Path, like: Image, dtype: np.dtype, value_range: tuple[float, float]
) -> zarr.Array:
    """An empty NGFF 0.5 image at ``path`` shaped and calibrated like ``like``: its array to fill.

    ``like`` must be in NGFF axis order (``Image.in_order(NGFF_ORDER)``); its data is not read. One
    chunk per plane, so each frame is written (atomically, by zarr) on its own; ``value_range`` is
    the display window. An existing group at ``path`` is replaced.
    """
    axes = like.axes
    count = like.data.shape[axes.index("C")] if "C" in axes else 1
    group = zarr.open_group(path, mode="w", zarr_format=3)
    group.attrs.update(
        image_attrs(
            path.name.split(".")[0],
            axes.lower(),
            [like.scale.get(a, 1.0) for a in axes],
            like.channels or [f"channel {c}" for c in range(count)],
            value_range,
            units={a.lower(): unit for a, unit in like.units.items()},
            translation=[like.translation.get(a, 0.0) for a in axes] if like.translation else None,
        )
    )
    shape = tuple(like.data.shape)
    plane = (1,) * (len(shape) - 2) + shape[-2:]
    return group.create_array(
        "0", shape=shape, dtype=dtype, chunks=plane, dimension_names=list(axes.lower())
    )


def is_zarr_group(path: Path) -> bool:
    """Whether ``path`` is a zarr group (v3 or v2), whatever its name."""
    return (path / "zarr.json").is_file() or (path / ".zgroup").is_file()


FORMAT = ImageFormat(
    "zarr",
    "OME-Zarr (.ome.zarr)",
    (".zarr",),
    read_zarr,
    write_zarr,
    list_images=list_images,
    recognise=is_zarr_group,
    several=True,
)
