"""An image in memory: an array, one axis letter per dimension, and what the file said about it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from livedenoise.errors import LivedenoiseError

AXES = "TZCYX"  # the standard order (ImageJ's hyperstack order; NGFF puts C before Z)


class ImageFileError(LivedenoiseError, ValueError):
    """A file that cannot be read or written as an image; the message names it and says why."""


@dataclass
class Image:
    """``data`` with axes from ``TZCYX`` (time, z, channel, y, x) and its physical calibration.

    ``scale`` is the size of one step along an axis and ``translation`` the position of the first
    pixel, both in ``units`` (NGFF unit names: ``"micrometer"``, ``"second"``); an axis a file left
    uncalibrated is missing from them (and so is an axis the image lacks). ``channels`` names the
    channels when the file does.
    ``axes_guessed`` is True when the file did not name its axes.
    """

    data: np.ndarray
    axes: str
    scale: dict[str, float] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    translation: dict[str, float] = field(default_factory=dict)
    channels: list[str] = field(default_factory=list)
    axes_guessed: bool = False
    rgb: bool = False

    def __post_init__(self) -> None:
        check_axes(self.axes, self.data.shape)
        if self.rgb and ("C" not in self.axes or self.data.shape[self.axes.index("C")] != 3):
            raise ImageFileError(f"an RGB image has 3 channels (C); this one is {describe(self)}.")
        self.scale = {a: v for a, v in self.scale.items() if a in self.axes}
        self.units = {a: v for a, v in self.units.items() if a in self.axes}
        self.translation = {a: v for a, v in self.translation.items() if a in self.axes}

    def with_axes(self, axes: str) -> Image:
        """The same data read with other axes (a user's override); calibration of renamed axes is dropped."""
        axes = axes.upper()
        check_axes(axes, self.data.shape)
        kept = {a for a, b in zip(axes, self.axes, strict=True) if a == b}
        return replace(
            self,
            axes=axes,
            scale={a: v for a, v in self.scale.items() if a in kept},
            units={a: v for a, v in self.units.items() if a in kept},
            translation={a: v for a, v in self.translation.items() if a in kept},
            axes_guessed=False,
            rgb=self.rgb and "C" in kept,
        )

    def in_order(self, order: str = AXES) -> Image:
        """The image with its axes transposed into ``order`` (axes it lacks are skipped); a view."""
        axes = "".join(a for a in order if a in self.axes)
        data = np.transpose(self.data, [self.axes.index(a) for a in axes])
        return replace(self, data=data, axes=axes)


def check_axes(axes: str, shape: tuple[int, ...]) -> None:
    """Raise ImageFileError unless ``axes`` names each dimension of ``shape`` once, Y and X included."""
    if len(axes) != len(shape):
        raise ImageFileError(
            f"axes {axes!r} name {len(axes)} dimensions but the image has {len(shape)} "
            f"(shape {shape}).",
            option="axes",
            value=axes,
        )
    unknown = sorted(set(axes) - set(AXES))
    if unknown or len(set(axes)) != len(axes) or not {"Y", "X"} <= set(axes):
        raise ImageFileError(
            f"axes {axes!r}: give one letter per dimension from {AXES} (time, z, channel, y, x), "
            "each at most once, Y and X included.",
            option="axes",
            value=axes,
        )


def default_axes(ndim: int) -> str:
    """Axes assumed for an array that names none: YX, TYX, TCYX, TZCYX."""
    if not 2 <= ndim <= 5:
        raise ImageFileError(
            f"an image has 2 to 5 dimensions ({AXES[-2:]} to {AXES}), this one has {ndim}."
        )
    return {2: "YX", 3: "TYX", 4: "TCYX", 5: "TZCYX"}[ndim]


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
    stacks = _stack_axes(image)
    return "".join([*stacks, *("C" if "C" in image.axes else ""), "Y", "X"])


def _stack_axes(image: Image) -> str:
    """The image's time and z axes, the one frames run along first (the longer): ``"TZ"``, ``"Z"``, ``""``.

    Raises ImageFileError for both a time and a z axis longer than 1: a denoiser slides over one of
    them.
    """
    stacks = sorted((a for a in "TZ" if a in image.axes), key=lambda a: -_size(image, a)[0])
    if len(stacks) == 2 and _size(image, stacks[1])[0] > 1:
        raise ImageFileError(
            f"image {describe(image)} has both time (T) and z (Z) axes; the model slides over one. "
            "Denoise each time point's z-stack (or each z-plane's time series) as its own file."
        )
    return "".join(stacks)


def _size(image: Image, axes: str) -> tuple[int, ...]:
    return tuple(image.data.shape[image.axes.index(a)] for a in axes)


def guess_note(image: Image) -> str:
    """What was guessed and how to override it, for an image whose file names no axes; else ``""``."""
    if not image.axes_guessed:
        return ""
    other = image.axes.translate(str.maketrans("TZ", "ZT"))
    example = f" (e.g. {other})" if other != image.axes else ""
    return (
        f"axes {image.axes} guessed: the file does not name them; if they are wrong, give the "
        f"axes{example}"
    )


def describe(image: Image) -> str:
    """``TYX 60x256x256 uint16``: for messages."""
    return f"{image.axes} {'x'.join(map(str, image.data.shape))} {image.data.dtype}"
