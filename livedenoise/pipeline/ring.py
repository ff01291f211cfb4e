"""A ring of preallocated frame slots between the acquisition thread and its consumers.

The acquisition thread copies a frame into the next slot and returns: it never waits on a consumer. Each
consumer reads by sequence number at its own pace; a frame that was overwritten before a consumer got to
it is reported as gone (``None``), never as another frame's pixels.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from livedenoise.frames import FrameIndex


@dataclass(frozen=True)
class FrameInfo:
    """What travels with a frame: its sequence number, place in the run, arrival time and metadata."""

    seq: int
    index: FrameIndex
    arrived_s: float
    stage_um: tuple[float, float, float] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class FrameRing:
    def __init__(self, capacity: int, shape: tuple[int, int], dtype: np.dtype | str) -> None:
        if capacity < 1:
            raise ValueError("ring capacity must be at least one frame")
        self.capacity = capacity
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self._slots = np.empty((capacity, *self.shape), self.dtype)
        self._infos: list[FrameInfo | None] = [None] * capacity
        self._next = 0  # sequence number of the next frame put
        self._closed = False
        self._cond = threading.Condition()

    @classmethod
    def for_memory(
        cls, budget_bytes: int, shape: tuple[int, int], dtype: np.dtype | str
    ) -> FrameRing:
        """As many slots as fit in ``budget_bytes`` (at least 8)."""
        frame_bytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return cls(max(8, budget_bytes // frame_bytes), shape, dtype)

    def put(
        self,
        frame: np.ndarray,
        index: FrameIndex,
        arrived_s: float,
        stage_um: tuple[float, float, float] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> FrameInfo:
        """Copy a frame in (acquisition thread only) and return its info with its sequence number."""
        if frame.shape != self.shape:
            raise ValueError(
                f"frame shape {frame.shape} differs from the run's {self.shape}: the ROI or binning "
                "changed during acquisition; stop the run before changing them"
            )
        with self._cond:
            seq = self._next
            slot = seq % self.capacity
            self._slots[slot] = frame
            info = FrameInfo(seq, index, arrived_s, stage_um, metadata or {})
            self._infos[slot] = info
            self._next = seq + 1
            self._cond.notify_all()
        return info

    def close(self) -> None:
        """No more frames will come: wake every waiting consumer."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def count(self) -> int:
        """How many frames were ever put."""
        return self._next

    def wait(self, seq: int, timeout: float | None = None) -> bool:
        """Block until frame ``seq`` was put (True) or the ring is closed before that (False)."""
        with self._cond:
            self._cond.wait_for(lambda: self._next > seq or self._closed, timeout)
            return self._next > seq

    def get(self, seq: int) -> tuple[np.ndarray, FrameInfo] | None:
        """A copy of frame ``seq``, or None if it was already overwritten (the reader fell behind)."""
        with self._cond:
            if seq >= self._next or seq < self._next - self.capacity:
                return None
            slot = seq % self.capacity
            info = self._infos[slot]
            assert info is not None and info.seq == seq
            return self._slots[slot].copy(), info

    def newest(self) -> int:
        """Sequence number of the newest frame (-1 when none yet)."""
        with self._cond:
            return self._next - 1
