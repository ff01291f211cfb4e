"""Run stores read back, recognised, and derived: a new store laid out like a recorded one.

``RunStore`` writes a run as its frames arrive; the chunked path fills a store whose arrays exist
from the start (Dask workers write blocks of frames into them). Both layouts come from this package
(``run_store``'s docstring describes it), so no other layer writes a run store's groups by hand.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import zarr

from livedenoise.storage.ngff import json_object
from livedenoise.storage.run_store import FRAME_CODEC, TIMINGS


class StoredRun(NamedTuple):
    """A run read back: per-image raw and denoised arrays, timings and the run's metadata."""

    raw: list[zarr.Array]
    denoised: list[zarr.Array]
    timing: dict[str, np.ndarray]
    attrs: dict[str, Any]


def is_run_store(path: Path) -> bool:
    """Whether ``path`` is a livedenoise run store (complete or not): a Zarr group with livedenoise
    metadata and a list of its image series. The one test every layer uses."""
    try:
        root = zarr.open_group(path, mode="r")
        series = json_object(root["OME"].attrs.get("ome")).get("series")
        return "livedenoise" in root.attrs and isinstance(series, list)
    except (OSError, KeyError, ValueError, TypeError):  # zarr's not-found errors are OSErrors
        return False


def open_run(path: str | Path) -> StoredRun:
    """Open a run written by :class:`RunStore` (complete or not) for reading."""
    root = zarr.open_group(Path(path), mode="r")
    series = [str(name) for name in json_object(root["OME"].attrs["ome"])["series"]]
    return StoredRun(
        raw=[_array(root, f"{name}/0") for name in series if name.startswith("raw/")],
        denoised=[_array(root, f"{name}/0") for name in series if name.startswith("denoised/")],
        timing={name: np.asarray(_array(root, f"timing/{name}")) for name in TIMINGS},
        attrs=dict(json_object(root.attrs["livedenoise"])),
    )


def create_store_like(source: Path, output: Path, attrs: Mapping[str, Any]) -> None:
    """A new, empty run store at ``output`` laid out like the run store ``source``.

    Kept from ``source``: its metadata (less its summary: the new store is not complete yet) updated
    by ``attrs``, its image series and OME-XML, its acquisition times (the other timings are NaN:
    nothing was denoised live). Each raw image gets an empty raw array of its shape and dtype and a
    float32 denoised twin of NaN, one chunk per frame; ``mark_complete`` once they are filled.
    """
    before = zarr.open_group(source, mode="r")
    root = zarr.open_group(output, mode="w-", zarr_format=3)
    meta = {
        k: v
        for k, v in json_object(before.attrs["livedenoise"]).items()
        if k not in ("summary", "complete")
    }
    root.attrs.update(
        {"ome": before.attrs["ome"], "livedenoise": {**meta, **attrs, "complete": False}}
    )
    root.create_group("OME").attrs.update(before["OME"].attrs.asdict())
    xml = source / "OME" / "METADATA.ome.xml"
    if xml.is_file():
        shutil.copyfile(xml, output / "OME" / "METADATA.ome.xml")
    timing = root.create_group("timing")
    for name in TIMINGS:  # acquisition times are the recording's; denoising here was not live
        values = np.asarray(_array(before, f"timing/{name}"))
        kept = values if name == "acquired_s" else np.full(values.shape, np.nan)
        timing.create_array(name, data=kept, chunks=kept.shape)
    names = [
        str(name)
        for name in json_object(before["OME"].attrs["ome"])["series"]
        if str(name).startswith("raw/")
    ]
    for name in names:
        raw = _array(before, f"{name}/0")
        frame = (1,) * (raw.ndim - 2) + raw.shape[-2:]
        p = name.removeprefix("raw/")
        for kind, dtype, fill in (("raw", raw.dtype, 0), ("denoised", np.float32, np.nan)):
            like = f"{kind}/{p}" if f"{kind}/{p}" in before else name
            group = root.create_group(f"{kind}/{p}")
            group.attrs.update(before[like].attrs.asdict())
            group.create_array(
                "0",
                shape=raw.shape,
                dtype=dtype,
                chunks=frame,
                fill_value=fill,
                compressors=FRAME_CODEC,
                dimension_names=list("tczyx"),  # a run store's images all are
            )


def mark_complete(output: Path, summary: Mapping[str, Any]) -> None:
    """Record a filled store as complete, with its ``summary`` (frames written and denoised)."""
    root = zarr.open_group(output, mode="r+")
    meta = dict(json_object(root.attrs["livedenoise"]))
    meta.update(summary=dict(summary), complete=True)
    root.attrs["livedenoise"] = meta


def _array(group: zarr.Group, path: str) -> zarr.Array:
    """The array at ``path`` inside ``group``; TypeError for a group there (not a run store)."""
    node = group[path]
    if not isinstance(node, zarr.Array):
        raise TypeError(f"{path}: expected an array, found a group")
    return node
