"""A ring of frame slots between the acquisition thread and its consumers.

The acquisition thread copies a frame into the next slot and returns: it never waits on a consumer. Each
consumer reads by sequence number at its own pace; a frame that was overwritten before a consumer got to
it is reported as gone (``None``), never as another frame's pixels. A slot is allocated once and reused
while frames keep their shape and dtype; a frame of another shape or dtype (a preset that changes the ROI,
binning or bit depth) gets its slot reallocated, so frames are never cast or cropped.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from livedenoise.frames import FrameIndex, FrameInfo


class FrameRing:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("ring capacity must be at least one frame")
        self.capacity = capacity
        self._slots: list[np.ndarray | None] = [None] * capacity
        self._infos: list[FrameInfo | None] = [None] * capacity
        self._next = 0  # sequence number of the next frame put
        self._closed = False
        self._cond = threading.Condition()

    @classmethod
    def for_memory(
        cls, budget_bytes: int, shape: tuple[int, int], dtype: np.dtype | str
    ) -> FrameRing:
        """As many slots of frames like ``shape`` and ``dtype`` as fit in ``budget_bytes`` (8 or more)."""
        frame_bytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return cls(max(8, budget_bytes // max(frame_bytes, 1)))

    def put(
        self,
        frame: np.ndarray,
        index: FrameIndex,
        arrived_s: float,
        stage_um: tuple[float, float, float] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> FrameInfo:
        """Copy a frame in (acquisition thread only) and return its info with its sequence number."""
        if frame.ndim != 2:
            raise ValueError(f"a frame is a 2D image; got shape {frame.shape}")
        with self._cond:
            seq = self._next
            slot = seq % self.capacity
            held = self._slots[slot]
            if held is None or held.shape != frame.shape or held.dtype != frame.dtype:
                held = self._slots[slot] = np.empty(frame.shape, frame.dtype)
            held[...] = frame
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
            info, held = self._infos[slot], self._slots[slot]
            assert info is not None and info.seq == seq and held is not None
            return held.copy(), info

    def info(self, seq: int) -> FrameInfo | None:
        """Frame ``seq``'s info without copying its pixels, or None if it was overwritten."""
        with self._cond:
            if seq >= self._next or seq < self._next - self.capacity:
                return None
            return self._infos[seq % self.capacity]

    def newest(self) -> int:
        """Sequence number of the newest frame (-1 when none yet)."""
        with self._cond:
            return self._next - 1
