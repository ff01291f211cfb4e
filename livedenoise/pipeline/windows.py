"""The T-frame window each frame is denoised with: its predecessors along time or along z."""

from __future__ import annotations

from collections import deque
from typing import Literal

import numpy as np

from livedenoise.frames import FrameIndex

WindowAxis = Literal["t", "z"]


def default_axis(timepoints: int, slices: int) -> WindowAxis:
    """Time series are windowed over time; a single z-stack over its neighbouring slices."""
    return "z" if timepoints <= 1 and slices > 1 else "t"


class WindowAssembler:
    """Keeps the last ``size`` raw frames of every stack so a frame's window is ready on arrival.

    The window is causal (the frame and the ones before it along the axis), so a frame never waits for
    frames not yet acquired; the first frames of a stack get shorter windows, which the model accepts.
    """

    def __init__(self, size: int, axis: WindowAxis) -> None:
        if size < 1:
            raise ValueError("the window must hold at least one frame")
        self.size = size
        self.axis = axis
        self._stacks: dict[tuple[int, ...], deque[tuple[int, np.ndarray]]] = {}

    def _key(self, index: FrameIndex) -> tuple[tuple[int, ...], int]:
        if self.axis == "t":
            return (index.p, index.c, index.z), index.t
        return (index.t, index.p, index.c), index.z

    def add(self, index: FrameIndex, frame: np.ndarray) -> None:
        """Record a frame (every frame, also those the live policy will not denoise)."""
        key, position = self._key(index)
        stack = self._stacks.setdefault(key, deque(maxlen=self.size))
        if stack and stack[-1][0] >= position:  # a new pass over the same stack starts afresh
            stack.clear()
        stack.append((position, frame))

    def usable(self, indices: list[FrameIndex]) -> list[bool]:
        """Which of these frames (oldest first) a window can still hold: per stack, the newest
        ``size``. Adding only those leaves every stack as adding them all would."""
        left: dict[tuple[int, ...], int] = {}
        usable = []
        for index in reversed(indices):
            key = self._key(index)[0]
            left[key] = left.get(key, self.size) - 1
            usable.append(left[key] >= 0)
        return usable[::-1]

    def window(self, index: FrameIndex) -> np.ndarray:
        """The window ``[T', H, W]`` ending with the frame at ``index`` (T' <= size)."""
        key, position = self._key(index)
        frames = [f for pos, f in self._stacks.get(key, ()) if pos <= position]
        if not frames:
            raise KeyError(f"frame {index} was never added")
        return np.stack(frames)
