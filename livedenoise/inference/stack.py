"""Offline denoising of a whole stack (time series or z-stack) in overlapping windows, all outputs kept.

A live stream can only look back, but a recording is whole, so its frames are denoised in windows of
``window`` frames laid along the stack ``window_stride`` frames apart (the last one flush with the
stack's end). A network call gives all of its window's frames, and every one is kept: each frame is
the blend of the windows that hold it, weighted towards the window it is most central in (a tent over
the window's positions, ``position_weights``). A window of T frames so costs about T - 2 frames' worth
of calls instead of one call per frame, and every frame still sees neighbours on both sides (first and
last frames: the first and last full windows). Window 1 is one call per frame, as before.

The command line, training's evaluation and the calibration ladder all denoise stacks through here,
and so does each block of a chunked (Dask) run: the windows are laid on the whole recording, and a
block reads its frames plus the halo its windows reach (``window_span``), so it gives every frame the
very windows, weights and sums the whole recording would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from livedenoise.inference.base import Engine, InputError, check_finite


def window_stride(t: int) -> int:
    """Frames between the starts of neighbouring ``t``-frame windows.

    Neighbouring windows share 2 frames (1 for windows of 2-3 frames, none for 1), never more than
    half a window: the frames a window holds only at its edge get a second, more central opinion,
    and a window of 8 costs 8/6 of a frame's call per frame instead of 8/1.
    """
    return t - min(2, t // 2)


def window_starts(n: int, t: int) -> list[int]:
    """First frames of the ``t``-frame windows laid over a stack of ``n`` (``t <= n``)."""
    starts = list(range(0, n - t + 1, window_stride(t)))
    return starts if starts[-1] == n - t else [*starts, n - t]


def position_weights(t: int) -> np.ndarray:
    """A frame's weight at each position of a ``t``-frame window: its distance from the window's
    nearer end, so a frame counts most where it has the most neighbours on both sides."""
    positions = np.arange(t)
    return np.minimum(positions + 1, t - positions).astype(np.float32)


def _covering(start: int, stop: int, n: int, t: int) -> list[int]:
    """Starts of the windows holding any of frames ``start..stop-1`` of ``n``."""
    return [s for s in window_starts(n, t) if s < stop and s + t > start]


def window_span(start: int, stop: int, n: int, t: int) -> tuple[int, int]:
    """Frames ``[first, last)`` that frames ``start..stop-1`` of ``n`` need with ``t``-frame windows.

    What a block of a larger recording reads: its own frames and the halo its windows reach into.
    """
    starts = _covering(start, stop, n, min(t, n))
    return starts[0], starts[-1] + min(t, n)


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
    weights = position_weights(t)
    starts = _covering(start, stop, n, t)
    sums: dict[int, np.ndarray] = {}  # frame -> weighted sum of its windows' outputs
    weight_sums: dict[int, float] = {}
    ready = start
    for k, s in enumerate(starts):
        result = engine.denoise(stack[None, s - first : s - first + t])[0]
        for i in range(max(s, start), min(s + t, stop)):
            part = weights[i - s] * result[i - s]
            sums[i] = sums[i] + part if i in sums else part
            weight_sums[i] = weight_sums.get(i, 0.0) + float(weights[i - s])
        # frames before the next window's first are in no later window: they are ready
        done = min(starts[k + 1], stop) if k + 1 < len(starts) else stop
        for i in range(ready, done):
            frame = sums.pop(i) / np.float32(weight_sums.pop(i))
            yield frame if frames.ndim == 4 else frame[0]
        ready = max(ready, done)


def denoise_stack(
    engine: Engine,
    frames: np.ndarray,
    window: int,
    on_frame: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Every frame of ``[N, H, W]`` or ``[N, C, H, W]`` denoised in the overlapping ``window``-frame
    windows that hold it (see the module's docstring).

    Float32 of the input's shape and intensity units; ``on_frame(done)`` is called after each frame
    with the number of frames done so far. Raises InputError as ``denoised_frames``.
    """
    out = np.empty(frames.shape, dtype=np.float32)
    for i, frame in enumerate(denoised_frames(engine, frames, window)):
        out[i] = frame
        if on_frame is not None:
            on_frame(i + 1)
    return out
