"""Reading and writing images for offline denoising: TIFF, NumPy ``.npy`` and OME-Zarr.

An image is an array plus one axis letter per dimension from ``TZCYX`` (time, z, channel, y, x): a 2D
image is ``YX``, a time series ``TYX``, a z-stack ``ZYX``, with ``C`` for channels. OME-Zarr is written as
zarr v3 with OME-NGFF 0.5 ``ome`` metadata and one resolution level, axes in NGFF order (t, c, z, y, x),
one chunk per plane; physical pixel sizes read from OME-Zarr are written back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile
import zarr

from livedenoise.storage.ngff import image_attrs

AXES = "TZCYX"
NGFF_ORDER = "TCZYX"
# tifffile's letters for a stack of unknown meaning (I, Q) count as frames; samples (S, as in RGB) are
# channels
_TIFF_LETTERS = {"I": "T", "Q": "T", "S": "C"}


class ImageFileError(ValueError):
    """A file that cannot be read or written as an image; the message names it and says why."""


@dataclass
class Image:
    data: np.ndarray
    axes: str
    scale: dict[str, float] = field(default_factory=dict)  # physical size per axis (OME-Zarr)
    units: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_axes(self.axes, self.data.shape)


def check_axes(axes: str, shape: tuple[int, ...]) -> None:
    """Raise ImageFileError unless ``axes`` names each dimension of ``shape`` once, Y and X included."""
    if len(axes) != len(shape):
        raise ImageFileError(
            f"axes {axes!r} name {len(axes)} dimensions but the image has {len(shape)} "
            f"(shape {shape})."
        )
    unknown = sorted(set(axes) - set(AXES))
    if unknown or len(set(axes)) != len(axes) or not {"Y", "X"} <= set(axes):
        raise ImageFileError(
            f"axes {axes!r}: give one letter per dimension from {AXES} (time, z, channel, y, x), "
            "each at most once, Y and X included."
        )


def image_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".tif", ".tiff")):
        return "tiff"
    if name.endswith(".npy"):
        return "npy"
    if name.endswith(".zarr"):
        return "zarr"
    raise ImageFileError(
        f"{path}: unknown image format {path.suffix or '(no suffix)'!r}; "
        "use .tif/.tiff, .npy or .ome.zarr."
    )


def default_axes(ndim: int) -> str:
    """Axes assumed for an array that carries none (.npy): YX, TYX, TCYX, TZCYX."""
    if not 2 <= ndim <= 5:
        raise ImageFileError(
            f"an image has 2 to 5 dimensions ({AXES[-2:]} to {AXES}), this one has {ndim}."
        )
    return {2: "YX", 3: "TYX", 4: "TCYX", 5: "TZCYX"}[ndim]


def read_image(path: str | Path) -> Image:
    """Read a TIFF, .npy or OME-Zarr (0.4 or 0.5) image into memory."""
    path = Path(path)
    kind = image_format(path)
    if not path.exists():
        raise ImageFileError(f"{path}: no such file.")
    reader = {"tiff": _read_tiff, "npy": _read_npy, "zarr": _read_zarr}[kind]
    image = reader(path)
    if image.data.dtype.kind not in "uif":
        raise ImageFileError(
            f"{path}: holds {image.data.dtype} values, not integer or floating-point intensities."
        )
    return image


def _read_tiff(path: Path) -> Image:
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            letters = "".join(_TIFF_LETTERS.get(a, a) for a in series.axes)
            data = series.asarray()
    except (tifffile.TiffFileError, ValueError, IndexError) as err:
        raise ImageFileError(f"{path}: not a readable TIFF image ({err}).") from None
    try:
        return Image(data, letters)
    except ImageFileError as err:
        raise ImageFileError(
            f"{path}: TIFF axes {series.axes!r} read as {letters!r}: {err} "
            "Give the axes with --axes."
        ) from None


def _read_npy(path: Path) -> Image:
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ImageFileError(f"{path}: not a NumPy .npy array ({err}).") from None
    return Image(data, default_axes(data.ndim))


def _read_zarr(path: Path) -> Image:
    try:
        group = zarr.open_group(path, mode="r")
        attrs = group.attrs.asdict()
        multiscale = attrs.get("ome", attrs)["multiscales"][0]
        dataset = multiscale["datasets"][0]
        names = [a["name"] if isinstance(a, dict) else a for a in multiscale["axes"]]
        axes = "".join(n.upper() for n in names)
        data = np.asarray(group[dataset["path"]])
    except (KeyError, IndexError, TypeError, ValueError, FileNotFoundError) as err:
        raise ImageFileError(
            f"{path}: not an OME-Zarr image ({type(err).__name__}: {err})."
        ) from None
    scales = [
        t["scale"] for t in dataset.get("coordinateTransformations", []) if t["type"] == "scale"
    ]
    scale = dict(zip(axes, scales[0], strict=True)) if scales else {}
    units = {
        n.upper(): a["unit"]
        for n, a in zip(names, multiscale["axes"], strict=True)
        if isinstance(a, dict) and "unit" in a
    }
    return Image(data, axes, scale, units)


def write_image(path: str | Path, image: Image) -> None:
    """Write ``image`` in the format its suffix names; an existing file is replaced."""
    path = Path(path)
    kind = image_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "tiff":
        tifffile.imwrite(path, image.data, photometric="minisblack", metadata={"axes": image.axes})
    elif kind == "npy":
        np.save(path, image.data)
    else:
        _write_zarr(path, image)


def _write_zarr(path: Path, image: Image) -> None:
    axes = "".join(a for a in NGFF_ORDER if a in image.axes)
    data = np.transpose(image.data, [image.axes.index(a) for a in axes])
    scale = [float(image.scale.get(a, 1.0)) for a in axes]
    units = {a.lower(): unit for a, unit in image.units.items()}
    group = zarr.open_group(path, mode="w", zarr_format=3)
    group.attrs.update(image_attrs(path.name.split(".")[0], axes.lower(), scale, units=units))
    plane = (1,) * (data.ndim - 2) + data.shape[-2:]
    array = group.create_array(
        "0", shape=data.shape, dtype=data.dtype, chunks=plane, dimension_names=list(axes.lower())
    )
    array[...] = data


def as_frames(image: Image) -> np.ndarray:
    """The image as frames ``[N, C, Y, X]``, a view where the axes allow; ``from_frames`` undoes it.

    N runs along the time or z axis (1 for a 2D image); C is 1 without a channel axis. A time or z axis
    of length 1 beside the other folds into it. Raises ImageFileError for both a time and a z axis
    longer than 1: a denoiser slides over one of them.
    """
    order = _frame_order(image)
    data = np.transpose(image.data, [image.axes.index(a) for a in order])
    channels = _size(image, "C")[0] if "C" in image.axes else 1
    return data.reshape(-1, channels, *data.shape[-2:])


def from_frames(frames: np.ndarray, like: Image) -> np.ndarray:
    """Frames ``[N, C, Y, X]`` from ``as_frames(like)`` (any dtype) back in ``like``'s axes and shape."""
    order = _frame_order(like)
    stacked = frames.reshape(_size(like, order))
    return np.transpose(stacked, [order.index(a) for a in like.axes])


def _frame_order(image: Image) -> str:
    """The image's axes in frame order: stack axes (the longer first), channel, Y, X."""
    stacks = sorted((a for a in "TZ" if a in image.axes), key=lambda a: -_size(image, a)[0])
    if len(stacks) == 2 and _size(image, stacks[1])[0] > 1:
        raise ImageFileError(
            f"image {describe(image)} has both time (T) and z (Z) axes; the model slides over one. "
            "Denoise each time point's z-stack (or each z-plane's time series) as its own file."
        )
    return "".join([*stacks, *("C" if "C" in image.axes else ""), "Y", "X"])


def _size(image: Image, axes: str) -> tuple[int, ...]:
    return tuple(image.data.shape[image.axes.index(a)] for a in axes)


def describe(image: Image) -> str:
    """``TYX 60x256x256 uint16``: for messages."""
    return f"{image.axes} {'x'.join(map(str, image.data.shape))} {image.data.dtype}"
