"""One acquisition run on disk: raw and denoised images side by side in one OME-Zarr store.

Layout (OME-NGFF 0.5, bioformats2raw collection, one image per stage position)::

    run.ome.zarr/            ome: bioformats2raw.layout; livedenoise: model card, backend, settings, stats
      OME/                   ome.series: ["raw/p0", "denoised/p0", "raw/p1", ...]
      raw/p0/0               (t, c, z, y, x) acquired frames, the camera's dtype
      denoised/p0/0          (t, c, z, y, x) float32, NaN until denoised
      timing/                acquired_s, denoised_s, latency_ms: (t, p, c, z) float64 per frame

One chunk per frame, so every frame is a file the moment it is written: a stopped or crashed run leaves a
store that opens and holds every frame written so far. Only one thread (the writer) may call the write
methods.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from livedenoise.frames import FrameIndex, RunLayout
from livedenoise.storage.ngff import NGFF_VERSION, image_attrs

TIMINGS = ("acquired_s", "denoised_s", "latency_ms")
# LZ4 with bit-shuffling: on microscope frames about 4x faster to write than zarr's default zstd and
# smaller too (scripts/bench_pipeline.py), which decides the highest frame rate the writer sustains.
FRAME_CODEC = BloscCodec(cname="lz4", clevel=1, shuffle="bitshuffle")


class RunStore:
    """Writes frames and their timings as they arrive; reads raw frames back for a lagging denoiser."""

    def __init__(self, path: str | Path, layout: RunLayout, attrs: dict[str, Any]) -> None:
        self.path = Path(path)
        self.layout = layout
        if self.path.exists():
            raise FileExistsError(f"{self.path} exists already: choose a new --out path")
        root = zarr.open_group(self.path, mode="w-", zarr_format=3)
        series = []
        info = np.iinfo(layout.dtype) if np.dtype(layout.dtype).kind in "ui" else None
        value_range = (0.0, float(info.max)) if info else (0.0, 1.0)
        shape = (
            layout.timepoints,
            len(layout.channels),
            layout.slices,
            layout.height,
            layout.width,
        )
        chunks = (1, 1, 1, layout.height, layout.width)
        scale = (
            layout.interval_s,
            1.0,
            layout.z_step_um,
            layout.pixel_size_um,
            layout.pixel_size_um,
        )
        self.raw: list[zarr.Array] = []
        self.denoised: list[zarr.Array] = []
        for p in range(layout.positions):
            for kind, dtype, fill in (("raw", layout.dtype, 0), ("denoised", "float32", np.nan)):
                name = f"{kind}/p{p}"
                image = root.create_group(name)
                image.attrs.update(
                    image_attrs(f"{kind} p{p}", "tczyx", scale, layout.channels, value_range)
                )
                arr = image.create_array(
                    "0",
                    shape=shape,
                    chunks=chunks,
                    dtype=dtype,
                    fill_value=fill,
                    compressors=FRAME_CODEC,
                    dimension_names=list("tczyx"),
                )
                (self.raw if kind == "raw" else self.denoised).append(arr)
                series.append(name)
        ome_group = root.create_group("OME")
        ome_group.attrs["ome"] = {"version": NGFF_VERSION, "series": series}
        timing_shape = (layout.timepoints, layout.positions, len(layout.channels), layout.slices)
        timing = root.create_group("timing")
        self._timing = {
            name: timing.create_array(
                name, shape=timing_shape, chunks=timing_shape, dtype="float64", fill_value=np.nan
            )
            for name in TIMINGS
        }
        self._timing_buffer = {name: np.full(timing_shape, np.nan) for name in TIMINGS}
        self._last_flush = time.monotonic()
        root.attrs.update(
            {
                "ome": {"version": NGFF_VERSION, "bioformats2raw.layout": 3},
                "livedenoise": {**attrs, "layout": asdict(layout), "complete": False},
            }
        )
        self._root = root

    # -- writing (writer thread only) ------------------------------------------------------------

    def _ensure_timepoint(self, t: int) -> None:
        current = self.raw[0].shape[0]
        if t < current:
            return
        new_t = max(t + 1, 2 * current)
        for arr in (*self.raw, *self.denoised):
            arr.resize((new_t, *arr.shape[1:]))
        for name, buf in self._timing_buffer.items():
            grown = np.full((new_t, *buf.shape[1:]), np.nan)
            grown[: buf.shape[0]] = buf
            self._timing_buffer[name] = grown
            self._timing[name].resize(grown.shape)

    def write_raw(self, index: FrameIndex, frame: np.ndarray, acquired_s: float) -> None:
        self._ensure_timepoint(index.t)
        self.raw[index.p][index.t, index.c, index.z] = frame
        self._timing_buffer["acquired_s"][index] = acquired_s
        self._maybe_flush()

    def write_denoised(
        self, index: FrameIndex, frame: np.ndarray, denoised_s: float, latency_s: float
    ) -> None:
        self._ensure_timepoint(index.t)
        self.denoised[index.p][index.t, index.c, index.z] = frame
        self._timing_buffer["denoised_s"][index] = denoised_s
        self._timing_buffer["latency_ms"][index] = latency_s * 1e3
        self._maybe_flush()

    def read_raw(self, index: FrameIndex) -> np.ndarray:
        return np.asarray(self.raw[index.p][index.t, index.c, index.z])

    def _maybe_flush(self, every_s: float = 1.0) -> None:
        if time.monotonic() - self._last_flush >= every_s:
            self.flush()

    def flush(self) -> None:
        """Write the per-frame timings (frames themselves are on disk as soon as they are written)."""
        for name, buf in self._timing_buffer.items():
            self._timing[name][...] = buf
        self._last_flush = time.monotonic()

    def close(self, summary: dict[str, Any], timepoints: int | None = None) -> None:
        """Flush, trim unused timepoints (live mode), and record the run's statistics."""
        if timepoints is not None and timepoints < self.raw[0].shape[0]:
            for arr in (*self.raw, *self.denoised):
                arr.resize((timepoints, *arr.shape[1:]))
            for name in TIMINGS:
                self._timing_buffer[name] = self._timing_buffer[name][:timepoints]
                self._timing[name].resize(self._timing_buffer[name].shape)
        self.flush()
        meta = dict(self._root.attrs["livedenoise"])
        meta.update(summary=summary, complete=True)
        self._root.attrs["livedenoise"] = meta


class StoredRun(NamedTuple):
    """A run read back: per-position raw and denoised arrays, timings and the run's metadata."""

    raw: list[zarr.Array]
    denoised: list[zarr.Array]
    timing: dict[str, np.ndarray]
    attrs: dict[str, Any]


def open_run(path: str | Path) -> StoredRun:
    """Open a run written by :class:`RunStore` (complete or not) for reading."""
    root = zarr.open_group(Path(path), mode="r")
    meta = dict(root.attrs["livedenoise"])
    positions = meta["layout"]["positions"]
    return StoredRun(
        raw=[root[f"raw/p{p}/0"] for p in range(positions)],
        denoised=[root[f"denoised/p{p}/0"] for p in range(positions)],
        timing={name: np.asarray(root[f"timing/{name}"]) for name in TIMINGS},
        attrs=meta,
    )
