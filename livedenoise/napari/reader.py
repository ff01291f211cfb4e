"""napari reader: a run store or a livedenoise output as image layers, lazily, tiles in place."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from livedenoise.app.layers import Layer, is_livedenoise_data, open_layers

LayerData = tuple[Any, dict[str, Any], str]
PathLike = str | Path
PathOrPaths = PathLike | Sequence[PathLike]


def get_reader(path: PathOrPaths) -> Callable[[PathOrPaths], list[LayerData]] | None:
    """``read`` where every path is a run store or livedenoise output; else None, so that napari
    offers the paths to its other readers (napari-ome-zarr, the built-ins)."""
    paths = _paths(path)
    return read if paths and all(is_livedenoise_data(p) for p in paths) else None


def read(path: PathOrPaths) -> list[LayerData]:
    """Every image of every path: raw layers first, denoised layers above them."""
    return [layer_data(layer) for p in _paths(path) for layer in open_layers(p)]


def layer_data(layer: Layer) -> LayerData:
    """One ``Layer`` as napari's layer data: channels split by ``channel_axis`` into one layer each
    (additive, so channels add up where they overlap), scale, stage translation and units per axis."""
    axes = layer.axes.replace("C", "")
    count = len(layer.channels)
    meta = {"source": str(layer.source), "image": layer.image, "kind": layer.kind}
    kwargs: dict[str, Any] = {
        "name": [f"{layer.name} {channel}" for channel in layer.channels],
        "scale": [layer.scale.get(a, 1.0) for a in axes],
        "translate": [layer.translate.get(a, 0.0) for a in axes],
        "units": [layer.units.get(a, "pixel") for a in axes],
        "axis_labels": list(axes.lower()),
        "contrast_limits": list(layer.contrast_limits),
        "metadata": [{"livedenoise": {**meta, "channel": c}} for c in layer.channels],
        "visible": layer.visible,
    }
    if count > 1:
        kwargs["blending"] = "additive"
    if "C" in layer.axes:
        kwargs["channel_axis"] = layer.axes.index("C")
    else:  # one layer: napari takes single values
        kwargs = {
            key: value[0] if key in ("name", "contrast_limits", "metadata") else value
            for key, value in kwargs.items()
        }
    return layer.data, kwargs, "image"


def _paths(path: PathOrPaths) -> list[Path]:
    return [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]
