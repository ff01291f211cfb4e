"""What a run store or a livedenoise OME-Zarr output holds, as lazy layers for any viewer.

A run store (``livedenoise acquire``, ``demo``, or ``denoise`` of a run store) gives a raw and a
denoised layer per stage position or grid tile, each placed at the tile's stage position; a chunked
``denoise`` output gives its one denoised image. Pixels stay on disk (dask arrays over the zarr
arrays, one chunk per frame): opening a long run reads no frame but one plane per image, for the
display window. Front ends (the napari plugin, scripts) turn these descriptions into their layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import zarr

from livedenoise.app.chunked import PROGRESS
from livedenoise.errors import LivedenoiseError
from livedenoise.imageio import Image, list_images, read_zarr
from livedenoise.storage import is_run_store
from livedenoise.storage.run_store import unwritten_value

# a display window that ignores a few hot and dark pixels (percentiles of one plane)
WINDOW_PERCENTILES = (0.5, 99.9)


class NotLivedenoiseData(LivedenoiseError, ValueError):
    """A path that holds no run store and no livedenoise output."""


@dataclass(frozen=True)
class Layer:
    """One image as a viewer shows it: its pixels, where they lie, and how to display them.

    ``axes`` names each dimension of ``data`` (letters from ``TCZYX``); ``scale`` (one step) and
    ``translate`` (the first pixel's position) are per axis letter in ``units`` (micrometres,
    seconds); an axis they lack has step 1 and position 0. ``contrast_limits`` holds one display
    window per channel (None: none could be taken from the data), ``colors`` the colour the file
    gives each channel (``"#00ff00"``; None: none). ``image`` is the image's path inside the store
    (``raw/p0``), or ``""`` for an image on its own.
    """

    data: da.Array
    axes: str
    name: str
    kind: str  # "raw" or "denoised"
    channels: list[str]
    scale: dict[str, float] = field(default_factory=dict)
    translate: dict[str, float] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    contrast_limits: list[tuple[float, float] | None] = field(default_factory=list)
    colors: list[str | None] = field(default_factory=list)
    visible: bool = True
    source: Path = Path()
    image: str = ""


def _root(path: Path) -> zarr.Group | None:
    try:
        return zarr.open_group(path, mode="r")
    except (OSError, KeyError, ValueError, TypeError):  # zarr's not-found errors are OSErrors
        return None


def _attrs(node: zarr.Group | zarr.Array) -> dict[str, Any]:
    """A group's (or array's) attributes as plain JSON values."""
    return node.attrs.asdict()


def is_denoised_image(path: str | Path) -> bool:
    """Whether ``path`` is a single OME-Zarr image written by a chunked ``denoise`` (an NGFF
    image with the chunked run's progress record beside its pixels)."""
    root = _root(Path(path))
    return root is not None and "multiscales" in _attrs(root).get("ome", {}) and PROGRESS in root


def is_livedenoise_data(path: str | Path) -> bool:
    """Whether ``open_layers`` can open ``path``: cheap, reads metadata only."""
    return is_run_store(Path(path)) or is_denoised_image(path)


def open_layers(path: str | Path) -> list[Layer]:
    """Every image of a run store (raw and denoised per tile) or a livedenoise output, lazily.

    Raw layers come first and are hidden where a denoised twin lies over them. Each kind's channel
    shares one display window over all tiles, so tiles compare. Raises NotLivedenoiseData for a path
    that holds neither, and ImageFileError for an image that cannot be read.
    """
    path = Path(path)
    if is_run_store(path):
        layers = _run_store_layers(path)
    elif is_denoised_image(path):
        layers = [_layer(path, "", read_zarr(path, lazy=True), "denoised", path.name)]
    else:
        raise NotLivedenoiseData(
            f"{path} is neither a livedenoise run store nor a livedenoise OME-Zarr output",
            path=path,
            hint="open it with an OME-Zarr reader",
        )
    return _shared_windows(layers)


def _run_store_layers(path: Path) -> list[Layer]:
    run = _attrs(zarr.open_group(path, mode="r"))["livedenoise"]
    described = {d.get("name"): d for d in run.get("images", [])}
    names = list_images(path)
    kinds = {name.split("/")[0] for name in names}
    layers = []
    for kind in ("raw", "denoised"):
        for name in (n for n in names if n.startswith(f"{kind}/")):
            number = name.split("/")[1]
            label = f"{kind} {number}{_position_label(number, described.get(number, {}))}"
            image = read_zarr(path, name, lazy=True)
            visible = kind == "denoised" or "denoised" not in kinds
            layers.append(_layer(path, name, image, kind, label, visible))
    return layers


def _position_label(number: str, described: dict[str, Any]) -> str:
    """`` (Cell A)``, `` (p0 g1)``: the sequence's name for the image's position, if it adds one."""
    name = described.get("position_name") or described.get("position") or ""
    return f" ({name})" if name and name != number else ""


def _layer(
    path: Path, name: str, image: Image, kind: str, label: str, visible: bool = True
) -> Layer:
    data = da.from_zarr(image.data)
    count = data.shape[image.axes.index("C")] if "C" in image.axes else 1
    channels = image.channels or [f"channel {c}" for c in range(count)]
    return Layer(
        data,
        image.axes,
        label,
        kind,
        channels,
        dict(image.scale),
        dict(image.translation),
        dict(image.units),
        [_window(image, c) for c in range(count)],
        _colors(path, name, count),
        visible,
        path,
        name,
    )


def _colors(path: Path, name: str, count: int) -> list[str | None]:
    """Each channel's colour from the image's ``omero`` metadata (what Fiji and napari-ome-zarr
    show), as ``#rrggbb``."""
    group = zarr.open_group(path, mode="r")
    attrs = _attrs(group[name] if name else group)
    channels = attrs.get("ome", {}).get("omero", {}).get("channels", [])
    colors: list[str | None] = [None] * count
    for c, channel in enumerate(channels[:count]):
        if isinstance(color := channel.get("color"), str) and len(color) == 6:
            colors[c] = f"#{color.lower()}"
    return colors


def _window(image: Image, channel: int) -> tuple[float, float] | None:
    """Percentiles of one plane (the first time point's middle z-slice) of ``channel``, frames never
    written left out; None where the plane holds no data."""
    at = {
        "C": channel,
        "Z": image.data.shape[image.axes.index("Z")] // 2 if "Z" in image.axes else 0,
    }
    index = tuple(slice(None) if axis in "YX" else at.get(axis, 0) for axis in image.axes)
    plane = np.asarray(image.data[index], dtype=np.float64)
    values = plane[np.isfinite(plane) & (plane != unwritten_value(image.data.dtype))]
    if not values.size:
        return None
    low, high = np.percentile(values, WINDOW_PERCENTILES)
    return float(low), float(max(high, low + 1e-6))


def _shared_windows(layers: list[Layer]) -> list[Layer]:
    """Each kind's channel gets the widest window of its tiles (one range, so seams show data)."""
    shared: dict[tuple[str, str], tuple[float, float]] = {}
    for layer in layers:
        for channel, window in zip(layer.channels, layer.contrast_limits, strict=True):
            if window is not None:
                low, high = shared.get((layer.kind, channel), window)
                shared[layer.kind, channel] = (min(low, window[0]), max(high, window[1]))
    return [
        replace(layer, contrast_limits=[shared.get((layer.kind, c)) for c in layer.channels])
        for layer in layers
    ]


__all__ = [
    "Layer",
    "NotLivedenoiseData",
    "is_denoised_image",
    "is_livedenoise_data",
    "open_layers",
]
