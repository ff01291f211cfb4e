"""What a frame is and where it belongs: the types every stage of a run shares.

The ring buffer, the denoise worker, the store and the mosaic all address frames the same way, so these
types live below all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


class FrameIndex(NamedTuple):
    """Where a frame belongs: timepoint, stage position (grid tiles included), channel, z slice."""

    t: int
    p: int
    c: int
    z: int


@dataclass(frozen=True)
class RunLayout:
    """The shape of a run; ``timepoints`` grows on demand (live mode has no end)."""

    height: int
    width: int
    dtype: str
    timepoints: int = 1
    positions: int = 1
    channels: tuple[str, ...] = ("default",)
    slices: int = 1
    pixel_size_um: float = 1.0
    z_step_um: float = 1.0
    interval_s: float = 1.0
