"""TIFF files: ImageJ hyperstacks, OME-TIFF and plain stacks, read and written with tifffile.

Axes and calibration come from tifffile's series and its ImageJ or OME metadata: pixel size
(ImageJ resolution and unit, OME PhysicalSize), z spacing, frame interval and origin (ImageJ
``xorigin``, OME plane positions). A plain TIFF says nothing of either; its axes are guessed. A file of
several series (positions of an OME-TIFF) is read one series at a time, chosen by number or name:
never silently the first. RGB samples are the channels of a colour image and are written back as RGB.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from livedenoise.imageio.image import AXES, Image, ImageFileError
from livedenoise.imageio.registry import ImageFormat

# the dtypes an ImageJ hyperstack holds
IMAGEJ_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))

# tifffile's letters that name an axis of ours; any other letter (I: pages, Q: unknown, S: samples
# that are not RGB, as tifffile stores a 4-plane stack as RGB plus one extra sample unless told
# otherwise) is guessed: T, then C, Z
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


def read_tiff(path: Path, series: str | None = None) -> Image:
    """One series of a TIFF, with its axes and calibration. Raises ImageFileError.

    ``series`` is the series' number (from 0) or name; it may be left out only for a file of one series.
    """
    try:
        with tifffile.TiffFile(path) as tif:
            index = _series_index(path, tif.series, series)
            chosen = tif.series[index]
            data = chosen.asarray()
            rgb = _is_rgb(chosen)
            if tif.is_ome:
                calibration = _ome_calibration(tif.ome_metadata or "", index)
            elif tif.is_imagej:
                calibration = _imagej_calibration(tif.imagej_metadata or {}, tif.pages.first)
            else:
                calibration = {}
    except ImageFileError:
        raise
    except (tifffile.TiffFileError, ValueError, IndexError) as err:
        raise ImageFileError(f"{path}: not a readable TIFF image ({err}).", path=path) from None
    axes, guessed = _letters(chosen.axes, rgb)
    try:
        return Image(data, axes, axes_guessed=guessed, rgb=rgb, **calibration)
    except ImageFileError as err:
        raise ImageFileError(
            f"{path}: TIFF axes {chosen.axes!r} read as {axes!r}: {err}",
            path=path,
            option="axes",
            hint="give the image's axes",
        ) from None


def _series_index(path: Path, series: list[tifffile.TiffPageSeries], chosen: str | None) -> int:
    """The index of the series ``chosen`` names (number or name); the only one when it is None."""
    if chosen is None and len(series) == 1:
        return 0
    names = [s.name for s in series]
    if chosen is not None and chosen in names:
        return names.index(chosen)
    if chosen is not None and chosen.isdigit() and int(chosen) < len(series):
        return int(chosen)
    listed = "; ".join(
        f"{i}: {_letters(s.axes, _is_rgb(s))[0]} {'x'.join(map(str, s.shape))}"
        + (f" {s.name!r}" if s.name else "")
        for i, s in enumerate(series)
    )
    wrong = "" if chosen is None else f"has no series {chosen!r}: it "
    raise ImageFileError(
        f"{path} {wrong}holds {len(series)} series (images: {listed}); choose one by its number "
        "or name",
        path=path,
        option="image",
        value=chosen,
    )


def _is_rgb(series: tifffile.TiffPageSeries) -> bool:
    """Whether the series' samples (S) are the red, green and blue of a colour image."""
    page = series.keyframe
    return (
        "S" in series.axes
        and page.photometric == tifffile.PHOTOMETRIC.RGB
        and page.samplesperpixel == 3
    )


def _letters(tiff_axes: str, rgb: bool) -> tuple[str, bool]:
    """Our axes for tifffile's letters (RGB samples are channels), and whether any had to be guessed."""
    known = [_TIFF_LETTERS.get(a, "C" if a == "S" and rgb else None) for a in tiff_axes]
    guesses = iter(a for a in "TCZ" if a not in known)
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


def _ome_calibration(xml: str, index: int) -> dict[str, Any]:
    """Calibration of the OME image ``index`` (one per series)."""
    images = tifffile.xml2dict(xml).get("OME", {}).get("Image", {})
    images = images if isinstance(images, list) else [images]
    pixels = images[index].get("Pixels", {}) if index < len(images) else {}
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
            "name the output .ome.tif (OME-TIFF holds any), or write float32",
            path=path,
            option="float32",
            value=dtype,
        )


def write_tiff(path: Path, image: Image) -> None:
    """An ImageJ hyperstack, or OME-TIFF for a name ending ``.ome.tif``, axes in TZCYX order.

    An RGB image stays RGB (samples last, photometric RGB); as ImageJ holds RGB as 8 bits only, other
    RGB images are written with OME metadata whatever the name. Raises ImageFileError for a dtype an
    ImageJ hyperstack cannot hold (see ``check_tiff_dtype``).
    """
    image = image.in_order("TZYXC" if image.rgb else AXES)
    check_tiff_dtype(path, image.data.dtype)
    axes = image.axes.replace("C", "S") if image.rgb else image.axes
    photometric = "rgb" if image.rgb else "minisblack"
    if is_ome_name(path) or (image.rgb and image.data.dtype != np.uint8):
        ome = _ome_metadata(image, axes)
        tifffile.imwrite(path, image.data, ome=True, photometric=photometric, metadata=ome)
        return
    metadata: dict[str, Any] = {"axes": axes}
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
    tifffile.imwrite(
        path,
        image.data,
        imagej=True,
        photometric=photometric,
        resolution=resolution,
        metadata=metadata,
    )


def _ome_metadata(image: Image, axes: str) -> dict[str, Any]:
    """OME metadata of ``image`` written with tifffile's ``axes`` (S for RGB samples)."""
    metadata: dict[str, Any] = {"axes": axes}
    for axis in "XYZ":
        if axis in image.scale and image.units.get(axis) in _OME_UNIT:
            metadata[f"PhysicalSize{axis}"] = image.scale[axis]
            metadata[f"PhysicalSize{axis}Unit"] = _OME_UNIT[image.units[axis]]
    if "T" in image.scale and image.units.get("T") in _OME_UNIT:
        metadata["TimeIncrement"] = image.scale["T"]
        metadata["TimeIncrementUnit"] = _OME_UNIT[image.units["T"]]
    if image.channels and "C" in axes:
        metadata["Channel"] = {"Name": list(image.channels)}
    planes = int(np.prod([n for a, n in zip(axes, image.data.shape, strict=True) if a in "TZC"]))
    for axis, offset in image.translation.items():
        if axis in "XYZ" and image.units.get(axis) in _OME_UNIT:
            metadata.setdefault("Plane", {})[f"Position{axis}"] = [offset] * planes
            metadata["Plane"][f"Position{axis}Unit"] = [_OME_UNIT[image.units[axis]]] * planes
    return metadata


FORMAT = ImageFormat(
    "tiff",
    "TIFF (.tif; .ome.tif for OME-TIFF)",
    (".tif", ".tiff"),
    read_tiff,
    write_tiff,
    check_writable=check_tiff_dtype,
    several=True,
)
