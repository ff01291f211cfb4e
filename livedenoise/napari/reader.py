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
    """One ``Layer`` as napari's layer data: channels split by ``channel_axis`` into one layer each,
    in the file's colours, with scale, stage translation and units per axis.

    A tile's first channel covers what lies below it and its other channels add to it (napari's
    multi-channel blending), so channels mix while overlapping tiles show the later tile, as the
    live mosaic does, rather than the two tiles added up.
    """
    axes = layer.axes.replace("C", "")
    meta = {"source": str(layer.source), "image": layer.image, "kind": layer.kind}
    per_channel: dict[str, list[Any]] = {
        "name": [f"{layer.name} {channel}" for channel in layer.channels],
        "contrast_limits": list(layer.contrast_limits),
        "metadata": [{"livedenoise": {**meta, "channel": c}} for c in layer.channels],
        "blending": ["translucent_no_depth"] + ["additive"] * (len(layer.channels) - 1),
    }
    if all(layer.colors):
        per_channel["colormap"] = list(layer.colors)
    kwargs: dict[str, Any] = {
        "scale": [layer.scale.get(a, 1.0) for a in axes],
        "translate": [layer.translate.get(a, 0.0) for a in axes],
        "units": [layer.units.get(a, "pixel") for a in axes],
        "axis_labels": list(axes.lower()),
        "visible": layer.visible,
    }
    if "C" in layer.axes:
        kwargs.update(per_channel, channel_axis=layer.axes.index("C"))
    else:  # one channel, one layer: single values
        kwargs.update({key: values[0] for key, values in per_channel.items()})
    return layer.data, kwargs, "image"


def _paths(path: PathOrPaths) -> list[Path]:
    return [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]
