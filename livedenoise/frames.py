"""What a frame is and where it belongs: the types every stage of a run shares.

The ring buffer, the denoise worker, the store and the mosaic all address frames the same way, so these
types live below all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np


class FrameIndex(NamedTuple):
    """Where a frame belongs: timepoint, stage position (grid tiles included), channel, z slice."""

    t: int
    p: int
    c: int
    z: int


@dataclass(frozen=True)
class FrameInfo:
    """What travels with a frame: its sequence number, place in the run, arrival time and metadata.

    ``metadata`` may name the frame's ``channel`` (preset), ``position`` (e.g. ``"p1 g2"``), the
    ``position_name`` the sequence gave it and its ``z_step_um``, which the store records with its
    image.
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


def grey_planes(frame: np.ndarray, pixel_format: str = "") -> list[tuple[str, np.ndarray]]:
    """The grey planes a camera frame is stored and denoised as, each with what it is (``""`` for a
    grey frame, ``"R"``, ``"G"``, ``"B"`` for a colour one's planes, which become channels).

    ``pixel_format`` is pymmcore-plus's name for the camera's (``"Mono16"``, ``"Mono32"``,
    ``"RGB8"``...). Micro-Manager hands 32-bit grey frames (4 bytes a pixel, one component:
    DemoCamera's ``32bit``, sCMOS flat-fielded and photon-counting modes) over as the uint32 bit
    patterns of float32 values: they are viewed as the float32 they are, never cast. Colour frames
    arrive as height x width x 3, or, from a colour camera behind a Multi Camera, still packed as
    one BGRA word a pixel.
    """
    if frame.ndim == 2 and pixel_format.startswith("RGB"):
        packed = frame.view(f"u{frame.dtype.itemsize // 4}").reshape(*frame.shape, 4)
        frame = packed[:, :, [2, 1, 0]]
    if frame.ndim == 3:
        names = "RGB" if frame.shape[2] == 3 else [str(k) for k in range(frame.shape[2])]
        return [(name, frame[:, :, k]) for k, name in enumerate(names)]
    return [("", frame.view(np.float32) if frame.dtype == np.uint32 else frame)]
