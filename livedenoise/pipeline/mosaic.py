"""A live mosaic of a tiled scan: tiles placed by stage position and pixel size, blended where they meet.

Convention (Micro-Manager's default pixel configuration): the stage position is the centre of the field
of view, image columns run with +x and rows with +y, all in micrometres.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import tifffile


def _ramp(n: int, width: int) -> np.ndarray:
    """1 inside, falling linearly to the edges over ``width`` pixels: overlapping tiles cross-fade."""
    i = np.arange(n, dtype=np.float32)
    return np.minimum(np.minimum(i + 1, n - i), width) / width


class Mosaic:
    """Per channel and z, a weighted sum and weight canvas that grow as tiles arrive anywhere."""

    def __init__(
        self, pixel_size_um: float, tile_shape: tuple[int, int], ramp_px: int | None = None
    ):
        if pixel_size_um <= 0:
            raise ValueError(
                "the pixel size must be positive: set the core's pixel size configuration"
            )
        self.pixel_size_um = pixel_size_um
        self.tile_shape = tile_shape
        h, w = tile_shape
        ramp = ramp_px or max(1, min(h, w) // 8)
        self._weight = np.outer(_ramp(h, ramp), _ramp(w, ramp))
        self._origin_px: tuple[int, int] | None = None  # canvas (row, col) of stage (0, 0)
        self._sum: dict[tuple[int, int], np.ndarray] = {}
        self._wsum: dict[tuple[int, int], np.ndarray] = {}
        self._shape = (0, 0)
        self.tiles = 0
        self._lock = threading.Lock()

    def _tile_corner(self, x_um: float, y_um: float) -> tuple[int, int]:
        h, w = self.tile_shape
        row = round(y_um / self.pixel_size_um - h / 2)
        col = round(x_um / self.pixel_size_um - w / 2)
        return row, col

    def _grow_to(self, row: int, col: int) -> None:
        """Make the canvases cover a tile whose top-left stage pixel is (row, col)."""
        h, w = self.tile_shape
        if self._origin_px is None:
            self._origin_px = (-row, -col)
        top, left = row + self._origin_px[0], col + self._origin_px[1]
        pad_top, pad_left = max(0, -top), max(0, -left)
        new_h = max(self._shape[0] + pad_top, top + pad_top + h)
        new_w = max(self._shape[1] + pad_left, left + pad_left + w)
        if (new_h, new_w) == self._shape:
            return
        for canvases in (self._sum, self._wsum):
            for key, old in canvases.items():
                grown = np.zeros((new_h, new_w), np.float32)
                grown[pad_top : pad_top + old.shape[0], pad_left : pad_left + old.shape[1]] = old
                canvases[key] = grown
        self._origin_px = (self._origin_px[0] + pad_top, self._origin_px[1] + pad_left)
        self._shape = (new_h, new_w)

    def add(self, tile: np.ndarray, x_um: float, y_um: float, channel: int = 0, z: int = 0) -> None:
        """Blend one tile in; thread-safe, so the pipeline's worker can call it directly."""
        if tile.shape != self.tile_shape:
            raise ValueError(f"tile shape {tile.shape} differs from the mosaic's {self.tile_shape}")
        row, col = self._tile_corner(x_um, y_um)
        with self._lock:
            self._grow_to(row, col)
            assert self._origin_px is not None
            top, left = row + self._origin_px[0], col + self._origin_px[1]
            key = (channel, z)
            if key not in self._sum:
                self._sum[key] = np.zeros(self._shape, np.float32)
                self._wsum[key] = np.zeros(self._shape, np.float32)
            region = np.s_[top : top + tile.shape[0], left : left + tile.shape[1]]
            self._sum[key][region] += self._weight * tile
            self._wsum[key][region] += self._weight
            self.tiles += 1

    def image(self, channel: int = 0, z: int | None = None) -> np.ndarray:
        """The stitched image of one channel at one z, or the maximum projection over z (``None``)."""
        with self._lock:
            keys = [k for k in self._sum if k[0] == channel and (z is None or k[1] == z)]
            if not keys:
                return np.zeros(self._shape, np.float32)
            planes = []
            for key in keys:
                wsum = self._wsum[key]
                planes.append(
                    np.divide(self._sum[key], wsum, out=np.zeros_like(wsum), where=wsum > 0)
                )
            return np.max(planes, axis=0)

    @property
    def origin_um(self) -> tuple[float, float]:
        """Stage (x, y) of the centre of the canvas' top-left pixel."""
        if self._origin_px is None:
            return (0.0, 0.0)
        row, col = self._origin_px
        return (-col + 0.5) * self.pixel_size_um, (-row + 0.5) * self.pixel_size_um

    @property
    def channels(self) -> list[int]:
        return sorted({c for c, _ in self._sum})

    @property
    def slices(self) -> list[int]:
        return sorted({z for _, z in self._sum})

    def save(self, path: str | Path) -> Path:
        """Write the maximum projection of every channel as an ImageJ hyperstack (CYX, float32) with
        its pixel size, so Fiji opens it calibrated."""
        path = Path(path)
        stack = (
            np.stack([self.image(c) for c in self.channels])
            if self.channels
            else np.zeros((1, 1, 1))
        )
        per_um = 1 / self.pixel_size_um
        tifffile.imwrite(
            path,
            stack.astype(np.float32),
            imagej=True,
            resolution=(per_um, per_um),
            metadata={"axes": "CYX", "unit": "um"},
        )
        return path
