"""Seamless tiling: run a window in overlapping tiles and blend them with linear ramps.

Frames larger than a backend takes at once (its TensorRT profile, or memory) are cut into tiles of one
size. A tile's outer ``margin`` pixels, where the tile's own border rather than the image shapes the result,
get zero weight, the next ``ramp`` pixels a linear ramp up, the rest full weight. Neighbouring tiles share
their ramps exactly, so the weights sum to one (they are normalised anyway, for the last tile of a row,
which is shifted to end on the frame border). Tiles start on multiples of the U-net's stride: a tile that
started elsewhere would see a differently phased down-sampling grid and give a different result.

A purely convolutional network would be reproduced exactly once the margin reaches its receptive-field
radius. CNNT is not purely local: instance norm and the attention weights are computed over the whole
tile, so tiled and untiled results differ by however much those statistics differ between a tile and the
frame. Large tiles keep that small; the tests measure it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from livedenoise.model import CNNTConfig
from livedenoise.model.cnnt import SIZE_MULTIPLE


def receptive_radius(cfg: CNNTConfig) -> int:
    """Radius, in full-resolution pixels, of the convolutional receptive field of an output pixel.

    An upper bound: the 3x3 convolutions on the path of the values (a block's projection, and per cell the
    attention's v and output convs and the mixer's two convs; q and k only set frame-global attention
    weights) at the pixel size of their level (1, 2, 4, 2, 1), the pre- and post-conv, and one source
    pixel each way per bilinear resampling.
    """
    block = 1 + 4 * cfg.cells_per_block
    level_scales = (1, 2, 4, 2, 1)
    resampling = 1 + 2 + 4 + 2
    return block * sum(level_scales) + 2 + resampling


def _round_up(n: int) -> int:
    return -(-n // SIZE_MULTIPLE) * SIZE_MULTIPLE


@dataclass(frozen=True)
class Tiling:
    """Square tiles of ``tile`` pixels overlapping by ``overlap = 2 * margin + ramp``."""

    tile: int
    margin: int
    ramp: int

    def __post_init__(self) -> None:
        if self.tile % SIZE_MULTIPLE or self.overlap % SIZE_MULTIPLE:
            raise ValueError(
                f"tile {self.tile} and overlap {self.overlap} must be multiples of {SIZE_MULTIPLE}"
            )
        if self.ramp < 1 or self.tile <= self.overlap:
            raise ValueError(
                f"tile {self.tile} px must exceed its overlap {self.overlap} px "
                f"(2 x margin {self.margin} + ramp {self.ramp}, ramp >= 1)"
            )

    @property
    def overlap(self) -> int:
        return 2 * self.margin + self.ramp

    def starts(self, size: int) -> list[int]:
        """Tile origins along an axis of ``size`` pixels (a multiple of the stride), evenly spread.

        As few tiles as cover the axis with at least ``overlap`` between neighbours; the first starts
        on the first pixel, the last ends on the last.
        """
        if size <= self.tile:
            return [0]
        span = size - self.tile
        n = -(-span // (self.tile - self.overlap)) + 1
        return [i * span // (n - 1) // SIZE_MULTIPLE * SIZE_MULTIPLE for i in range(n)]

    def weights(self, start: int, length: int, size: int) -> np.ndarray:
        """Blend weights of one tile along one axis; full weight up to a frame border."""
        ramp = np.arange(1, self.ramp + 1, dtype=np.float32) / (self.ramp + 1)
        edge = np.concatenate([np.zeros(self.margin, dtype=np.float32), ramp])
        w = np.ones(length, dtype=np.float32)
        if start > 0:
            w[: edge.size] = edge
        if start + length < size:
            w[-edge.size :] = np.minimum(w[-edge.size :], edge[::-1])
        return w


def choose_tiling(
    cfg: CNNTConfig, max_size: int, ramp: int = 16, overlap_share: float = 0.5
) -> Tiling:
    """The tiling for a backend that takes at most ``max_size`` pixels a side.

    The margin is the receptive-field radius, so the convolutional part of the result is exact and the
    only difference left is the tiles' own normalisation and attention statistics. Small tiles would
    then be mostly overlap, so the margin shrinks until the overlap is at most ``overlap_share`` of
    the tile.
    """
    tile = max_size - max_size % SIZE_MULTIPLE
    ramp = min(ramp, tile // 4)
    margin = receptive_radius(cfg)
    while margin > 0 and 2 * margin + ramp > int(tile * overlap_share):
        margin //= 2
    return Tiling(tile=tile, margin=margin, ramp=ramp + (-(2 * margin + ramp)) % SIZE_MULTIPLE)


def frame_tiling(cfg: CNNTConfig, max_size: int, height: int, width: int) -> Tiling:
    """The tiling of a ``height`` x ``width`` frame: overlaps of up to half a tile, or of a quarter
    where that takes fewer tiles and still leaves a margin.

    Every backend computes a tile's overlap again. The backbone's 128 px tiles of a 512 px frame: 36
    with up to half (2.25x the frame's pixels), 25 with a quarter (1.56x), 1.5x faster on the CPU at
    the same PSNR (README, Performance). Where a quarter saves no tile, the wider margin keeps the
    convolutions exact further into each tile.
    """
    wide = choose_tiling(cfg, max_size)
    lean = choose_tiling(cfg, max_size, overlap_share=0.25)

    def count(tiling: Tiling) -> int:
        return len(tiling.starts(_round_up(height))) * len(tiling.starts(_round_up(width)))

    return lean if lean.margin > 0 and count(lean) < count(wide) else wide


def run_tiled(
    fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, tiling: Tiling, tiles_per_call: int = 1
) -> np.ndarray:
    """Apply ``fn`` to ``x`` of shape ``[B, ..., H, W]`` tile by tile and blend the outputs (float32).

    The frame is first padded to a multiple of the stride by repeating its last row and column, as the
    network pads a whole frame, so every tile starts on the same sampling grid as the untiled run.
    ``fn`` takes up to ``tiles_per_call`` tiles at once, stacked along the batch axis (``[k * B, ...]``,
    tile by tile): on a GPU one call of all the tiles of a frame costs about what one tile does.
    """
    if tiles_per_call < 1:
        raise ValueError(f"tiles_per_call must be at least 1, got {tiles_per_call}")
    h0, w0 = x.shape[-2:]
    pad = [(0, 0)] * (x.ndim - 2) + [(0, _round_up(h0) - h0), (0, _round_up(w0) - w0)]
    x = np.pad(x, pad, mode="edge")
    b, (h, w) = x.shape[0], x.shape[-2:]
    th, tw = min(tiling.tile, h), min(tiling.tile, w)
    regions = [
        (..., slice(y0, y0 + th), slice(x0, x0 + tw))
        for y0 in tiling.starts(h)
        for x0 in tiling.starts(w)
    ]
    out = np.zeros(x.shape, dtype=np.float32)
    total = np.zeros((h, w), dtype=np.float32)
    for first in range(0, len(regions), tiles_per_call):
        group = regions[first : first + tiles_per_call]
        y = fn(np.concatenate([x[region] for region in group]))
        for i, region in enumerate(group):
            rows, cols = region[1:]
            weight = np.outer(tiling.weights(rows.start, th, h), tiling.weights(cols.start, tw, w))
            out[region] += y[i * b : (i + 1) * b] * weight
            total[rows, cols] += weight
    out /= total
    return out[..., :h0, :w0]
