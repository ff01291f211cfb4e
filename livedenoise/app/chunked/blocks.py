"""The block plan of a chunked run: which frames each task reads, denoises (or copies) and writes.

The input is cut into blocks of frames along its stack axis (t; z for a z-stack), one block per
channel for a single-channel model and per z-plane of a time series; a run store's raw images are
copied in blocks of the same size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from livedenoise.app.denoising import DenoiseError
from livedenoise.imageio import Image, describe, list_images, read_zarr
from livedenoise.inference import check_frame_size
from livedenoise.storage import is_run_store


@dataclass(frozen=True)
class Block:
    """One task: frames ``start..stop`` along ``axis`` of one array, at ``fixed`` indices elsewhere."""

    source: str  # array path in the input, e.g. "0" or "raw/p0/0"
    target: str  # array path in the output
    axes: str  # the array's axes in NGFF order, lower case, e.g. "tczyx"
    axis: str  # the stack axis, "t" or "z"
    fixed: tuple[tuple[str, int], ...]  # e.g. (("c", 0), ("z", 3))
    start: int
    stop: int
    total: int  # frames along the stack axis
    denoise: bool = True  # False: copied as it is (a run store's raw images)

    def selection(self, first: int, last: int) -> tuple[slice | int, ...]:
        fixed = dict(self.fixed)
        return tuple(
            slice(first, last) if a == self.axis else fixed.get(a, slice(None)) for a in self.axes
        )

    def kept_axes(self) -> str:
        """Axes of a selection: the array's, less the fixed ones."""
        return "".join(a for a in self.axes if a not in dict(self.fixed))

    def frame_axes(self) -> str:
        """The order frames take: stack axis, channel when left, y, x."""
        return "".join(a for a in (self.axis, "c", "y", "x") if a in self.kept_axes())

    @property
    def channel(self) -> int:
        return dict(self.fixed).get("c", -1)


def plan_blocks(
    input: Path, image: str | None, channels: int, block_frames: int
) -> tuple[list[Block], list[Image], list[str]]:
    """The blocks of a run, the images they read (lazy) and those images' names in the input.

    A run store (no ``image``): every raw image, denoised along t (z where no image has more than one
    time point), plus copy blocks for the raw images themselves. Raises DenoiseError,
    ImageFileError or InputError (frames too small) for an input this path cannot take.
    """
    if image is None and is_run_store(input):
        names = [n for n in list_images(input) if n.startswith("raw/")]
        images = [read_zarr(input, name, lazy=True) for name in names]
        axis = "t" if max(img.data.shape[0] for img in images) > 1 else "z"
        blocks: list[Block] = []
        for name, img in zip(names, images, strict=True):
            p = name.removeprefix("raw/")
            source = _array_path(img)
            blocks += _blocks(img, source, f"denoised/{p}/0", axis, channels, block_frames, True)
            blocks += _blocks(img, source, source, axis, channels, block_frames, False)
        return blocks, images, names
    img = read_zarr(input, image, lazy=True)
    sizes = dict(zip(img.axes, img.data.shape, strict=True))
    stacks = "".join(a.lower() for a in "TZ" if a in sizes and sizes[a] > 1)
    if not stacks:
        raise DenoiseError(
            f"{input}: a single frame ({describe(img)}); chunked denoising splits recordings "
            "along time or z",
            path=input,
            option="workers",
            hint="denoise it in one process, with neither workers nor a scheduler",
        )
    # a time-lapse of z-stacks: each z-plane's time series, as a run store's images are denoised
    blocks = _blocks(img, _array_path(img), "0", stacks[0], channels, block_frames, True)
    return blocks, [img], [image or ""]


def _array_path(img: Image) -> str:
    """Where a lazily read image's array lies in its store (e.g. ``raw/p0/0``)."""
    assert isinstance(img.data, zarr.Array), "read with lazy=True"
    return img.data.path


def _blocks(
    img: Image,
    source: str,
    target: str,
    axis: str,
    channels: int,
    block_frames: int,
    denoise: bool,
) -> list[Block]:
    axes = img.axes.lower()
    shape = dict(zip(axes, img.data.shape, strict=True))
    check_frame_size(shape["y"], shape["x"], f"{source}: ")
    looped = [a for a in axes if a not in (axis, "y", "x") and (a != "c" or channels == 1)]
    n = shape[axis]
    blocks = []
    for index in np.ndindex(*(shape[a] for a in looped)):
        fixed = tuple(zip(looped, map(int, index), strict=True))
        for start in range(0, n, block_frames):
            stop = min(start + block_frames, n)
            blocks.append(Block(source, target, axes, axis, fixed, start, stop, n, denoise))
    return blocks
