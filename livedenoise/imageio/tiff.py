"""TIFF files: ImageJ hyperstacks, OME-TIFF and plain stacks, read and written with tifffile.

Axes and calibration come from tifffile's first series and its ImageJ or OME metadata: pixel size
(ImageJ resolution and unit, OME PhysicalSize), z spacing, frame interval and origin (ImageJ
``xorigin``, OME plane positions). A plain TIFF says nothing of either; its axes are guessed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from livedenoise.imageio.image import AXES, Image, ImageFileError

# the dtypes an ImageJ hyperstack holds
IMAGEJ_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))

# tifffile's letters that name an axis of ours; any other letter (I: pages, Q: unknown, S: samples,
# as tifffile stores any 3-plane stack as RGB planes unless told otherwise) is guessed: T, then C, Z
_TIFF_LETTERS = {"T": "T", "Z": "Z", "C": "C", "Y": "Y", "X": "X"}

# units as TIFF metadata spells them -> NGFF names; ImageJ's and OME's spelling for writing
_UNITS = {
    "micrometer": ("um", "µm", "\\u00B5m", "micron", "microns"),
    "nanometer": ("nm",),
    "millimeter": ("mm",),
    "centimeter": ("cm",),
    "meter": ("m",),
    "second": ("s", "sec", "seconds"),
    "millisecond": ("ms", "msec"),
    "microsecond": ("us", "µs"),
    "minute": ("min",),
    "hour": ("h", "hr"),
}
_NGFF_UNIT = {s.lower(): name for name, spellings in _UNITS.items() for s in (name, *spellings)}
_IMAGEJ_UNIT = {"micrometer": "um", "nanometer": "nm", "millimeter": "mm", "centimeter": "cm"}
_OME_UNIT = {"micrometer": "µm", "second": "s", "millisecond": "ms", "microsecond": "µs"}
_SECONDS = {"second": 1.0, "millisecond": 1e-3, "microsecond": 1e-6, "minute": 60.0, "hour": 3600.0}


def is_ome_name(path: Path) -> bool:
    return path.name.lower().endswith((".ome.tif", ".ome.tiff"))


def read_tiff(path: Path) -> Image:
    """The first series of a TIFF, with its axes and calibration. Raises ImageFileError."""
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            data = series.asarray()
            if tif.is_ome:
                calibration = _ome_calibration(tif.ome_metadata or "")
            elif tif.is_imagej:
                calibration = _imagej_calibration(tif.imagej_metadata or {}, tif.pages.first)
            else:
                calibration = {}
    except (tifffile.TiffFileError, ValueError, IndexError) as err:
        raise ImageFileError(f"{path}: not a readable TIFF image ({err}).") from None
    axes, guessed = _letters(series.axes)
    try:
        return Image(data, axes, axes_guessed=guessed, **calibration)
    except ImageFileError as err:
        raise ImageFileError(
            f"{path}: TIFF axes {series.axes!r} read as {axes!r}: {err} Give the axes with --axes."
        ) from None


def _letters(tiff_axes: str) -> tuple[str, bool]:
    """Our axes for tifffile's letters, and whether any had to be guessed (T, then C, then Z)."""
    known = [_TIFF_LETTERS.get(a) for a in tiff_axes]
    spare = [a for a in "TCZ" if a not in known]
    if "S" in tiff_axes and "C" in spare:  # samples (RGB) are channels more likely than frames
        spare.insert(0, spare.pop(spare.index("C")))
    guesses = iter(spare)
    axes = "".join(a or next(guesses, "?") for a in known)
    return axes, None in known


def _unit(text: Any) -> str | None:
    return _NGFF_UNIT.get(str(text).strip().lower()) if text else None


def _imagej_calibration(meta: dict[str, Any], page: tifffile.TiffPage) -> dict[str, Any]:
    scale: dict[str, float] = {}
    units: dict[str, str] = {}
    translation: dict[str, float] = {}
    unit = _unit(meta.get("unit"))
    if unit is not None:
        x_per_unit, y_per_unit = page.get_resolution()
        scale.update(X=1 / x_per_unit, Y=1 / y_per_unit)
        if "spacing" in meta:
            scale["Z"] = float(meta["spacing"])
        units.update(dict.fromkeys("ZYX", unit))
        for axis in "ZYX":
            origin = meta.get(f"{axis.lower()}origin")
            if origin is not None and axis in scale:
                translation[axis] = -float(origin) * scale[axis]
    interval = meta.get("finterval") or (1 / meta["fps"] if meta.get("fps") else None)
    if interval:
        scale["T"] = float(interval)
        units["T"] = _unit(meta.get("tunit")) or "second"
    return {"scale": scale, "units": units, "translation": translation}


def _ome_calibration(xml: str) -> dict[str, Any]:
    image = tifffile.xml2dict(xml).get("OME", {}).get("Image", {})
    pixels = (image[0] if isinstance(image, list) else image).get("Pixels", {})
    scale: dict[str, float] = {}
    units: dict[str, str] = {}
    translation: dict[str, float] = {}
    for axis in "XYZ":
        if f"PhysicalSize{axis}" in pixels:
            scale[axis] = float(pixels[f"PhysicalSize{axis}"])
            units[axis] = _unit(pixels.get(f"PhysicalSize{axis}Unit", "µm")) or "micrometer"
    if "TimeIncrement" in pixels:
        scale["T"] = float(pixels["TimeIncrement"])
        units["T"] = _unit(pixels.get("TimeIncrementUnit", "s")) or "second"
    planes = pixels.get("Plane", [])
    plane = planes[0] if isinstance(planes, list) and planes else planes or {}
    for axis in "XYZ":
        if f"Position{axis}" in plane:
            translation[axis] = float(plane[f"Position{axis}"])
            units.setdefault(axis, _unit(plane.get(f"Position{axis}Unit", "µm")) or "micrometer")
    channels = pixels.get("Channel", [])
    names = [c.get("Name", "") for c in (channels if isinstance(channels, list) else [channels])]
    return {
        "scale": scale,
        "units": units,
        "translation": translation,
        "channels": names if all(names) else [],
    }


def check_tiff_dtype(path: Path, dtype: np.dtype) -> None:
    """Raise ImageFileError if ``path`` names an ImageJ TIFF, which cannot hold ``dtype``."""
    if not is_ome_name(path) and dtype not in IMAGEJ_DTYPES:
        raise ImageFileError(
            f"{path}: an ImageJ TIFF holds uint8, uint16 or float32 values, not {dtype}; "
            "name the output .ome.tif (OME-TIFF holds any), or write float32 (--float32)."
        )


def write_tiff(path: Path, image: Image) -> None:
    """An ImageJ hyperstack, or OME-TIFF for a name ending ``.ome.tif``, axes in TZCYX order.

    Raises ImageFileError for a dtype an ImageJ hyperstack cannot hold (see ``check_tiff_dtype``).
    """
    image = image.in_order(AXES)
    check_tiff_dtype(path, image.data.dtype)
    if is_ome_name(path):
        tifffile.imwrite(
            path, image.data, ome=True, photometric="minisblack", metadata=_ome_metadata(image)
        )
        return
    metadata: dict[str, Any] = {"axes": image.axes}
    resolution = None
    unit = _IMAGEJ_UNIT.get(image.units.get("X", ""))
    if unit and {"X", "Y"} <= image.scale.keys():
        resolution = (1 / image.scale["X"], 1 / image.scale["Y"])
        metadata["unit"] = unit
        if "Z" in image.scale and image.units.get("Z") == image.units["X"]:
            metadata["spacing"] = image.scale["Z"]
        for axis, offset in image.translation.items():
            if axis in "ZYX" and axis in image.scale and image.units.get(axis) == image.units["X"]:
                metadata[f"{axis.lower()}origin"] = -offset / image.scale[axis]
    if "T" in image.scale and image.units.get("T") in _SECONDS:
        metadata["finterval"] = image.scale["T"] * _SECONDS[image.units["T"]]
    tifffile.imwrite(path, image.data, imagej=True, resolution=resolution, metadata=metadata)


def _ome_metadata(image: Image) -> dict[str, Any]:
    metadata: dict[str, Any] = {"axes": image.axes}
    for axis in "XYZ":
        if axis in image.scale and image.units.get(axis) in _OME_UNIT:
            metadata[f"PhysicalSize{axis}"] = image.scale[axis]
            metadata[f"PhysicalSize{axis}Unit"] = _OME_UNIT[image.units[axis]]
    if "T" in image.scale and image.units.get("T") in _OME_UNIT:
        metadata["TimeIncrement"] = image.scale["T"]
        metadata["TimeIncrementUnit"] = _OME_UNIT[image.units["T"]]
    if image.channels and "C" in image.axes:
        metadata["Channel"] = {"Name": list(image.channels)}
    planes = int(np.prod(image.data.shape[:-2]))
    for axis, offset in image.translation.items():
        if axis in "XYZ" and image.units.get(axis) in _OME_UNIT:
            metadata.setdefault("Plane", {})[f"Position{axis}"] = [offset] * planes
            metadata["Plane"][f"Position{axis}Unit"] = [_OME_UNIT[image.units[axis]]] * planes
    return metadata
