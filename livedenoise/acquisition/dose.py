"""Where the sample has been exposed, and how much: the memory that photobleaching needs.

Light dose (energy per area, uJ/um^2) accumulates where the beam scanned, so a field imaged many times,
or with many line averages, fades while its neighbours stay bright, and overlapping tiles of a grid
bleach twice. The map is kept on a coarse grid in sample coordinates, in blocks created on demand,
because a stage can travel centimetres but only the scanned patches need memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

_CELL = 0.5  # um per dose cell
_BLOCK = 256  # cells per block side


class DoseMap:
    """Cumulative dose per area of one fluorophore, on a 0.5 um grid over the whole stage."""

    def __init__(self) -> None:
        self._blocks: dict[tuple[int, int], np.ndarray] = {}

    def add(self, x0: float, y0: float, x1: float, y1: float, dose: float) -> None:
        """Add `dose` to the cells whose centres lie in the rectangle x0..x1, y0..y1 (um)."""
        cols = math.ceil(x0 / _CELL - 0.5), math.ceil(x1 / _CELL - 0.5)
        rows = math.ceil(y0 / _CELL - 0.5), math.ceil(y1 / _CELL - 0.5)
        for block, here, _ in self._overlaps(rows, cols, create=True):
            block[here] += dose

    def at(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Dose at the grid of points xs (columns) by ys (rows), shape (len(ys), len(xs))."""
        cols, rows = np.floor(xs / _CELL).astype(int), np.floor(ys / _CELL).astype(int)
        col_span = int(cols.min()), int(cols.max()) + 1
        row_span = int(rows.min()), int(rows.max()) + 1
        window = np.zeros((row_span[1] - row_span[0], col_span[1] - col_span[0]))
        for block, here, there in self._overlaps(row_span, col_span, create=False):
            window[there] = block[here]
        return window[np.ix_(rows - row_span[0], cols - col_span[0])]

    def _overlaps(
        self, rows: tuple[int, int], cols: tuple[int, int], *, create: bool
    ) -> Iterator[tuple[np.ndarray, tuple[slice, slice], tuple[slice, slice]]]:
        """Blocks meeting cell rows/cols [start, stop), the slice inside each, and the slice
        of the same cells counted from rows[0], cols[0]."""
        if rows[0] >= rows[1] or cols[0] >= cols[1]:
            return
        for bi in range(rows[0] // _BLOCK, (rows[1] - 1) // _BLOCK + 1):
            for bj in range(cols[0] // _BLOCK, (cols[1] - 1) // _BLOCK + 1):
                block = self._blocks.get((bi, bj))
                if block is None:
                    if not create:
                        continue
                    block = self._blocks[(bi, bj)] = np.zeros((_BLOCK, _BLOCK))
                r0, r1 = max(rows[0], bi * _BLOCK), min(rows[1], (bi + 1) * _BLOCK)
                c0, c1 = max(cols[0], bj * _BLOCK), min(cols[1], (bj + 1) * _BLOCK)
                here = (
                    slice(r0 - bi * _BLOCK, r1 - bi * _BLOCK),
                    slice(c0 - bj * _BLOCK, c1 - bj * _BLOCK),
                )
                there = (slice(r0 - rows[0], r1 - rows[0]), slice(c0 - cols[0], c1 - cols[0]))
                yield block, here, there
