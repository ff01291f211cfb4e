"""What a frame is and where it belongs: the types every stage of a run shares.

The ring buffer, the denoise worker, the store and the mosaic all address frames the same way, so these
types live below all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple


class FrameIndex(NamedTuple):
    """Where a frame belongs: timepoint, stage position (grid tiles included), channel, z slice."""

    t: int
    p: int
    c: int
    z: int


@dataclass(frozen=True)
class FrameInfo:
    """What travels with a frame: its sequence number, place in the run, arrival time and metadata.

    ``metadata`` may name the frame's ``channel`` (preset) and ``position`` (e.g. ``"p1 g2"``), which
    the store records with its image.
    """

    seq: int
    index: FrameIndex
    arrived_s: float
    stage_um: tuple[float, float, float] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunLayout:
    """What a run expects, to allocate its images at first, and its physical scale.

    Images take their frame shape and dtype from their first frame and grow along t, c and z as frames
    arrive, so these sizes are hints (a stopped run is trimmed to what it wrote). ``interval_s`` None
    means the interval is measured from the frames' acquisition times when the run closes.
    """

    timepoints: int = 1
    channels: int = 1
    slices: int = 1
    pixel_size_um: float = 1.0
    z_step_um: float = 1.0
    interval_s: float | None = None
