"""Offline denoising of a whole stack (time series or z-stack): each frame in the window centred on it.

A live stream can only look back, but a recording is whole, so every frame gets the ``window`` frames
around it. The window is kept inside the stack: near the ends several frames share the first or last
window, which is then denoised once. The command line, training's evaluation and the calibration ladder
all denoise stacks through here, and so does each block of a chunked (Dask) run, which reads its frames
plus the halo its windows reach (``window_span``) and so gives every frame the same window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from livedenoise.inference.base import Engine, InputError, check_finite


def window_start(i: int, n: int, t: int) -> int:
    """First frame of the ``t``-frame window centred on frame ``i`` of ``n``, kept inside the stack."""
    return min(max(i - t // 2, 0), n - t)


def window_span(start: int, stop: int, n: int, t: int) -> tuple[int, int]:
    """Frames ``[first, last)`` that frames ``start..stop-1`` of ``n`` need with ``t``-frame windows.

    What a block of a larger recording reads: its own frames and the halo its windows reach into.
    """
    return window_start(start, n, t), window_start(stop - 1, n, t) + t


def denoised_frames(
    engine: Engine,
    frames: np.ndarray,
    window: int,
    *,
    total: int | None = None,
    first: int = 0,
    frame_range: tuple[int, int] | None = None,
) -> Iterator[np.ndarray]:
    """Yield the frames of ``frames`` denoised, in order, as each is ready (float32, input units).

    ``frames`` is ``[N, H, W]`` for a single-channel model or ``[N, C, H, W]``; each yielded frame is
    ``[H, W]`` or ``[C, H, W]``. A stack shorter than ``window`` is one window. A part of a longer
    recording of ``total`` frames (its frames ``first..``, as read by ``window_span``) yields the
    frames of ``frame_range`` with the very windows the whole recording would give them. Raises
    InputError for a stack of another shape or ``window < 1``, and as ``Engine.denoise`` does
    (channels, NaN).
    """
    if frames.ndim not in (3, 4):
        raise InputError(
            f"got a stack of shape {frames.shape}; give frames as [N, H, W] or [N, C, H, W]."
        )
    if window < 1:
        raise InputError(f"window of {window} frames; a window holds at least 1 frame.")
    check_finite(frames, first)  # all at once, before any work
    stack = frames[:, None] if frames.ndim == 3 else frames  # [N, C, H, W]
    n = stack.shape[0] if total is None else total
    t = min(window, n)
    start, stop = frame_range or (first, first + stack.shape[0])
    current, result = -1, np.empty(0, dtype=np.float32)
    for i in range(start, stop):
        s = window_start(i, n, t)
        if s != current:
            current, result = s, engine.denoise(stack[None, s - first : s - first + t])[0]
        yield result[i - s] if frames.ndim == 4 else result[i - s, 0]


def denoise_stack(
    engine: Engine,
    frames: np.ndarray,
    window: int,
    on_frame: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Every frame of ``[N, H, W]`` or ``[N, C, H, W]`` denoised in the ``window`` frames centred on it.

    Float32 of the input's shape and intensity units; ``on_frame(done)`` is called after each frame
    with the number of frames done so far. Raises InputError as ``denoised_frames``.
    """
    out = np.empty(frames.shape, dtype=np.float32)
    for i, frame in enumerate(denoised_frames(engine, frames, window)):
        out[i] = frame
        if on_frame is not None:
            on_frame(i + 1)
    return out
