"""One acquisition run on disk: raw and denoised images side by side in one OME-Zarr store.

Layout (OME-NGFF 0.5, bioformats2raw collection, one image per stage position or grid tile)::

    run.ome.zarr/            ome: bioformats2raw.layout; livedenoise: model card, settings, images, stats
      OME/                   ome.series: ["raw/p0", "denoised/p0", "raw/p1", ...]
        METADATA.ome.xml     one OME Image per series, ID "Image:raw/p0" etc. (napari-ome-zarr's list)
      raw/p0/0               (t, c, z, y, x) acquired frames, the detector's own dtype; a frame
                             never written reads as the fill value (``unwritten_value``)
      denoised/p0/0          (t, c, z, y, x) float32, NaN until denoised
      timing/                acquired_s, denoised_s, latency_ms: (t, p, c, z) float64 per frame;
                             acquired_s is NaN for every frame never written: the record of
                             which frames a stopped or failed run holds

An image is created by its first frame, which sets its frame shape and dtype, and grows along t, c and z
as frames arrive: the store holds what the run delivers, whatever the camera said before it started. A
frame whose shape or dtype differs from its image's is refused (``FrameMismatch``), never cast. Each image
carries its stage position as an NGFF translation, and a display window from its data.

ome-zarr-py (0.18) lists no image at a bioformats2raw root, whatever its series paths, and its
``finder`` and ome-zarr-models read only numbered series (``0``, ``1``, ...); napari-ome-zarr (0.10)
opens the root through ``OME/METADATA.ome.xml``, taking each Image's ID after ``Image:`` as the
image's path. So the XML names the series paths, in the order of ``OME``'s ``series``, and every
path opens as an NGFF image on its own.

One chunk per frame, so every frame is a file the moment it is written: a stopped or crashed run leaves a
store that opens and holds every frame written so far. Only one thread (the writer) may call the write
methods.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from livedenoise.errors import LivedenoiseError
from livedenoise.frames import FrameIndex, FrameInfo, RunLayout
from livedenoise.paths import unwritable_folder
from livedenoise.storage.ngff import NGFF_VERSION, image_attrs, json_object, set_windows

TIMINGS = ("acquired_s", "denoised_s", "latency_ms")
# LZ4 with bit-shuffling: on microscope frames about 4x faster to write than zarr's default zstd and
# smaller too (scripts/bench_pipeline.py), which decides the highest frame rate the writer sustains.
FRAME_CODEC = BloscCodec(cname="lz4", clevel=1, shuffle="bitshuffle")


def _larger(needed: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    return any(n > m for n, m in zip(needed, shape, strict=True))


def _grown(shape: tuple[int, ...], needed: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(m if n <= m else max(n, 2 * m) for m, n in zip(shape, needed, strict=True))


def unwritten_value(dtype: np.dtype) -> float | int:
    """What a frame never written reads as, never a real zero: NaN for float frames, the type's
    largest value for integer ones (a frame saturated everywhere, not data). The timings' NaN
    ``acquired_s`` says for certain which frames were never written."""
    dtype = np.dtype(dtype)
    return np.nan if dtype.kind == "f" else int(np.iinfo(dtype).max)


class OutputPathError(LivedenoiseError, ValueError):
    """An output location a run cannot be written to; ``option`` is the parameter that chooses it."""


class StoreExists(OutputPathError, FileExistsError):
    """A run's output that exists already: a run never writes over another's."""


def check_new_store(path: Path) -> None:
    """Refuse a run's output before anything is acquired: it exists, is not named ``.zarr``, lies
    inside another Zarr store (it would become part of it), or its folder cannot be written
    (read-only, missing permissions). Raises StoreExists or OutputPathError (``option="out"``, the
    acquisition's parameter for it)."""
    option = "out"
    if path.exists():
        raise StoreExists(
            f"{path} exists already", path=path, option=option, hint="choose a new path"
        )
    if not path.name.endswith(".zarr"):
        raise OutputPathError(
            f"{path}: a run is saved as OME-Zarr",
            path=path,
            option=option,
            hint="name it NAME.ome.zarr",
        )
    if store := next((p for p in path.absolute().parents if (p / "zarr.json").is_file()), None):
        raise OutputPathError(
            f"{path} lies inside the Zarr store {store}, which it would change",
            path=path,
            option=option,
            hint="choose a path outside it",
        )
    if refused := unwritable_folder(path):
        raise OutputPathError(
            f"cannot write in {refused[0]} ({refused[1]})",
            path=path,
            option=option,
            hint="choose another path",
        )


class FrameMismatch(LivedenoiseError, ValueError):
    """A frame whose shape or dtype differs from the image it belongs to."""


@dataclass
class _Image:
    """One stage position's raw and denoised arrays and what the store records about them."""

    number: int
    raw: zarr.Array
    denoised: zarr.Array
    translation_um: tuple[float, float]  # (y, x) of the first pixel
    position: str
    z_step_um: float  # its own: a stage position's sub-sequence may have its own z plan
    position_name: str | None = None  # the name the sequence gave its stage position
    channels: list[str] = field(default_factory=list)
    low: dict[int, float] = field(default_factory=dict)  # per channel, for the display window
    high: dict[int, float] = field(default_factory=dict)
    extent: list[int] = field(default_factory=lambda: [0, 0, 0])  # t, c, z written

    def describe(self) -> dict[str, Any]:
        return {
            "name": f"p{self.number}",
            "position": self.position,
            "position_name": self.position_name,
            "z_step_um": self.z_step_um,
            "shape": list(self.raw.shape[-2:]),
            "dtype": str(self.raw.dtype),
            "channels": self.channels,
            "translation_um": list(self.translation_um),
        }


class RunStore:
    """Writes frames and their timings as they arrive; reads raw frames back for a lagging denoiser."""

    def __init__(self, path: str | Path, layout: RunLayout, attrs: dict[str, Any]) -> None:
        self.path = Path(path)
        self.layout = layout
        check_new_store(self.path)
        self._root = zarr.open_group(self.path, mode="w-", zarr_format=3)
        self._images: dict[int, _Image] = {}
        self._series: list[str] = []
        self._ome = self._root.create_group("OME")
        self._ome.attrs["ome"] = {"version": NGFF_VERSION, "series": []}
        shape = (layout.timepoints, 1, layout.channels, layout.slices)
        self._timing_group = self._root.create_group("timing")
        self._timing = {
            name: self._timing_group.create_array(
                name, shape=shape, chunks=shape, dtype="float64", fill_value=np.nan
            )
            for name in TIMINGS
        }
        self._timing_buffer: dict[str, np.ndarray] = {
            name: np.full(shape, np.nan) for name in TIMINGS
        }
        self._last_flush = time.monotonic()
        self._write_ome_xml()  # imports ome-types now, not in the writer thread mid-run
        self._root.attrs.update(
            {
                "ome": {"version": NGFF_VERSION, "bioformats2raw.layout": 3},
                "livedenoise": {**attrs, "layout": asdict(layout), "complete": False},
            }
        )

    # -- images ------------------------------------------------------------------------------------

    def _scale(self, image: _Image, interval_s: float | None = None) -> tuple[float, ...]:
        layout = self.layout
        t = interval_s or layout.interval_s or 1.0
        return (t, 1.0, image.z_step_um, layout.pixel_size_um, layout.pixel_size_um)

    def _image_attrs(self, image: _Image, kind: str, interval_s: float | None = None) -> dict:
        """NGFF attributes of one image: scale, the stage translation, channels and their windows."""
        high = max(image.high.values(), default=1.0)
        attrs = image_attrs(
            f"{kind} p{image.number}",
            "tczyx",
            self._scale(image, interval_s),
            image.channels or ["default"],
            (min(image.low.values(), default=0.0), high),
        )
        multiscale = attrs["ome"]["multiscales"][0]
        y, x = image.translation_um
        multiscale["datasets"][0]["coordinateTransformations"].append(
            {"type": "translation", "translation": [0.0, 0.0, 0.0, y, x]}
        )
        channels = range(max(len(image.channels), 1))
        set_windows(
            attrs["ome"], {c: (image.low.get(c, 0.0), image.high.get(c, high)) for c in channels}
        )
        return attrs

    def _create_image(self, frame: np.ndarray, info: FrameInfo) -> _Image:
        number = info.index.p
        h, w = frame.shape
        px = self.layout.pixel_size_um
        stage = info.stage_um or (0.0, 0.0, 0.0)
        # the stage position is the centre of the field of view (Micro-Manager's convention)
        translation = (stage[1] - h / 2 * px, stage[0] - w / 2 * px)
        shape = (self.layout.timepoints, self.layout.channels, self.layout.slices, h, w)
        arrays = []
        raw_fill = unwritten_value(frame.dtype)
        for kind, dtype, fill in (("raw", frame.dtype, raw_fill), ("denoised", "float32", np.nan)):
            group = self._root.create_group(f"{kind}/p{number}")
            arrays.append(
                group.create_array(
                    "0",
                    shape=shape,
                    chunks=(1, 1, 1, h, w),
                    dtype=dtype,
                    fill_value=fill,
                    compressors=FRAME_CODEC,
                    dimension_names=list("tczyx"),
                )
            )
        meta = info.metadata
        image = _Image(
            number,
            arrays[0],
            arrays[1],
            translation,
            str(meta.get("position") or ""),
            float(meta.get("z_step_um") or self.layout.z_step_um),
            meta.get("position_name"),
        )
        for kind in ("raw", "denoised"):
            self._root[f"{kind}/p{number}"].attrs.update(self._image_attrs(image, kind))
        self._images[number] = image
        self._series += [f"raw/p{number}", f"denoised/p{number}"]
        self._ome.attrs["ome"] = {"version": NGFF_VERSION, "series": self._series}
        self._ome_xml_stale = True  # rewritten at the next flush, at most once a second
        return image

    def _image_for(self, frame: np.ndarray, info: FrameInfo) -> _Image:
        image = self._images.get(info.index.p) or self._create_image(frame, info)
        if frame.shape != image.raw.shape[-2:] or frame.dtype != image.raw.dtype:
            raise FrameMismatch(
                f"frame {info.index} is {frame.shape[0]}x{frame.shape[1]} {frame.dtype} but image "
                f"p{image.number} holds {image.raw.shape[-2]}x{image.raw.shape[-1]} "
                f"{image.raw.dtype}: the ROI, binning or bit depth changed during the run"
            )
        return image

    def _grow(self, image: _Image, index: FrameIndex) -> None:
        """Make room for ``index`` in the image and the timings (doubling, so growth is rare)."""
        wanted = (index.t + 1, index.c + 1, index.z + 1)
        for arr in (image.raw, image.denoised):
            if _larger(wanted, arr.shape[:3]):
                arr.resize((*_grown(arr.shape[:3], wanted), *arr.shape[3:]))
        image.extent = [max(e, n) for e, n in zip(image.extent, wanted, strict=True)]
        needed = (index.t + 1, index.p + 1, index.c + 1, index.z + 1)
        for name, buf in self._timing_buffer.items():
            if _larger(needed, buf.shape):
                grown = np.full(_grown(buf.shape, needed), np.nan)
                grown[tuple(slice(0, m) for m in buf.shape)] = buf
                self._timing_buffer[name] = grown
                self._timing[name].resize(grown.shape)

    # -- writing (writer thread only) ------------------------------------------------------------

    def write_raw(self, frame: np.ndarray, info: FrameInfo) -> None:
        """Write an acquired frame at its index; its image is created by its first frame.

        Raises ``FrameMismatch`` for a frame of another shape or dtype than its image's.
        """
        image = self._image_for(frame, info)
        index = info.index
        self._grow(image, index)
        image.raw[index.t, index.c, index.z] = frame
        channel = str(info.metadata.get("channel") or f"channel {index.c}")
        while len(image.channels) <= index.c:
            image.channels.append(f"channel {len(image.channels)}")
        image.channels[index.c] = channel
        lo, hi = float(frame.min()), float(frame.max())
        image.low[index.c] = min(lo, image.low.get(index.c, lo))
        image.high[index.c] = max(hi, image.high.get(index.c, hi))
        self._timing_buffer["acquired_s"][index.t, index.p, index.c, index.z] = info.arrived_s
        self._maybe_flush()

    def write_denoised(
        self, index: FrameIndex, frame: np.ndarray, denoised_s: float, latency_s: float
    ) -> None:
        self._images[index.p].denoised[index.t, index.c, index.z] = frame
        timing = (index.t, index.p, index.c, index.z)
        self._timing_buffer["denoised_s"][timing] = denoised_s
        self._timing_buffer["latency_ms"][timing] = latency_s * 1e3
        self._maybe_flush()

    def read_raw(self, index: FrameIndex) -> np.ndarray:
        return np.asarray(self._images[index.p].raw[index.t, index.c, index.z])

    def _maybe_flush(self, every_s: float = 1.0) -> None:
        if time.monotonic() - self._last_flush >= every_s:
            self.flush()

    def flush(self) -> None:
        """Write the per-frame timings (frames themselves are on disk as soon as they are written)."""
        for name, buf in self._timing_buffer.items():
            self._timing[name][...] = buf
        if self._ome_xml_stale:
            self._write_ome_xml()
        self._last_flush = time.monotonic()

    def _write_ome_xml(self, interval_s: float | None = None) -> None:
        """``OME/METADATA.ome.xml``: one OME Image per series, its ID ``Image:`` + the series path,
        with the arrays' present sizes, pixel type, physical sizes and channel names. Replaced in one
        step, so a crash never leaves half a file."""
        from ome_types import OME, to_xml
        from ome_types.model import Channel, Image, MetadataOnly, Pixels

        layout = self.layout
        images = []
        for path in self._series:
            kind, name = path.split("/")
            image = self._images[int(name[1:])]
            arr = image.raw if kind == "raw" else image.denoised
            t, c, z, y, x = arr.shape
            names = image.channels + [f"channel {i}" for i in range(len(image.channels), c)]
            dtype = np.dtype(arr.dtype)
            pixel_type = {"float32": "float", "float64": "double"}.get(dtype.name, dtype.name)
            pixels = Pixels(
                id=f"Pixels:{path}",
                dimension_order="XYZCT",  # fastest first: the arrays are (t, c, z, y, x)
                type=pixel_type,
                size_x=x,
                size_y=y,
                size_z=z,
                size_c=c,
                size_t=t,
                physical_size_x=layout.pixel_size_um,
                physical_size_y=layout.pixel_size_um,
                physical_size_z=image.z_step_um,
                time_increment=interval_s,
                channels=[
                    Channel(id=f"Channel:{path}:{i}", name=names[i], samples_per_pixel=1)
                    for i in range(c)
                ],
                metadata_only=MetadataOnly(),
            )
            images.append(Image(id=f"Image:{path}", name=f"{kind} {name}", pixels=pixels))
        xml = to_xml(OME(images=images, creator="livedenoise"))
        target = self.path / "OME" / "METADATA.ome.xml"
        partial = target.with_name(target.name + ".partial")
        partial.write_text(xml, encoding="utf-8")
        os.replace(partial, target)
        self._ome_xml_stale = False

    def _measured_interval(self) -> float | None:
        """Median time between timepoints of the first image's first frame, in seconds."""
        acquired = self._timing_buffer["acquired_s"][:, 0, 0, 0]
        steps = np.diff(acquired[np.isfinite(acquired)])
        return float(np.median(steps)) if steps.size and np.median(steps) > 0 else None

    def close(self, summary: dict[str, Any]) -> None:
        """Trim every image to what was written, record the metadata and the run's statistics."""
        for image in self._images.values():
            for arr in (image.raw, image.denoised):
                arr.resize((*image.extent, *arr.shape[3:]))
        t, c, z = (
            max((img.extent[i] for img in self._images.values()), default=0) for i in range(3)
        )
        p = max(self._images, default=-1) + 1
        for name in TIMINGS:
            self._timing_buffer[name] = self._timing_buffer[name][:t, :p, :c, :z]
            self._timing[name].resize(self._timing_buffer[name].shape)
        self.flush()
        interval = self.layout.interval_s or self._measured_interval()
        for image in self._images.values():
            for kind in ("raw", "denoised"):
                self._root[f"{kind}/p{image.number}"].attrs.update(
                    self._image_attrs(image, kind, interval)
                )
        self._write_ome_xml(interval)
        meta = dict(json_object(self._root.attrs["livedenoise"]))
        meta.update(
            images=[image.describe() for image in self._images.values()],
            interval_s=interval,
            summary=summary,
            complete=True,
        )
        self._root.attrs["livedenoise"] = meta
