"""Offline denoising of a whole stack (time series or z-stack) in overlapping windows, all outputs kept.

A live stream can only look back, but a recording is whole, so its frames are denoised in windows of
``window`` frames laid along the stack ``window_stride`` frames apart (the last one flush with the
stack's end). A network call gives all of its window's frames, and every one is kept: each frame is
the blend of the windows that hold it, weighted towards the window it is most central in (a tent over
the window's positions, ``position_weights``). A window of T frames so costs one call per T/2 frames
instead of one call per frame, and every frame still sees neighbours on both sides (first and last
frames: the first and last full windows). Window 1 is one call per frame, as before.

The command line, training's evaluation and the calibration ladder all denoise stacks through here,
and so does each block of a chunked (Dask) run: the windows are laid on the whole recording, and a
block reads its frames plus the halo its windows reach (``window_span``), so it gives every frame the
very windows, weights and sums the whole recording would.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from livedenoise.inference.base import Engine, InputError, check_finite


def window_stride(t: int) -> int:
    """Frames between the starts of neighbouring ``t``-frame windows: half a window (rounded up).

    A frame far from its window's centre comes out worse where the content changes from frame to
    frame, so every frame gets a second window where it is more central. Longer strides are cheaper
    but cost quality there (a 60-slice z-stack of nuclei at window 8, ``scripts/bench_windows.py``:
    stride 6 loses 0.16 dB against one window centred on each frame, stride 4 0.02 dB); on a static
    field (the TIRF repeats) any stride is as good.
    """
    return (t + 1) // 2


def window_starts(n: int, t: int, stride: int) -> list[int]:
    """First frames of the ``t``-frame windows ``stride`` apart over ``n`` frames (``t <= n``)."""
    starts = list(range(0, n - t + 1, stride))
    return starts if starts[-1] == n - t else [*starts, n - t]


def used_stride(t: int, stride: int | None) -> int:
    """The stride windows of ``t`` frames are laid at: ``stride`` (at most ``t``) or the default."""
    return window_stride(t) if stride is None else min(stride, t)


def position_weights(t: int) -> np.ndarray:
    """A frame's weight at each position of a ``t``-frame window: its distance from the window's
    nearer end, so a frame counts most where it has the most neighbours on both sides."""
    positions = np.arange(t)
    return np.minimum(positions + 1, t - positions).astype(np.float32)


def _covering(start: int, stop: int, n: int, t: int, stride: int) -> list[int]:
    """Starts of the windows holding any of frames ``start..stop-1`` of ``n``."""
    return [s for s in window_starts(n, t, stride) if s < stop and s + t > start]


def window_span(
    start: int, stop: int, n: int, t: int, stride: int | None = None
) -> tuple[int, int]:
    """Frames ``[first, last)`` that frames ``start..stop-1`` of ``n`` need with ``t``-frame windows
    ``stride`` apart (default ``window_stride``).

    What a block of a larger recording reads: its own frames and the halo its windows reach into.
    """
    t = min(t, n)
    starts = _covering(start, stop, n, t, used_stride(t, stride))
    return starts[0], starts[-1] + t


def denoised_frames(
    engine: Engine,
    frames: np.ndarray,
    window: int,
    *,
    total: int | None = None,
    first: int = 0,
    frame_range: tuple[int, int] | None = None,
    stride: int | None = None,
) -> Iterator[np.ndarray]:
    """Yield the frames of ``frames`` denoised, in order, as each is ready (float32, input units).

    ``frames`` is ``[N, H, W]`` for a single-channel model or ``[N, C, H, W]``; each yielded frame is
    ``[H, W]`` or ``[C, H, W]``. A stack shorter than ``window`` is one window. A part of a longer
    recording of ``total`` frames (its frames ``first..``, as read by ``window_span``) yields the
    frames of ``frame_range`` with the very windows the whole recording would give them. ``stride``
    (1 to the window) trades quality for speed; default ``window_stride``. Raises InputError for a
    stack of another shape, ``window < 1`` or a stride outside 1..window, and as ``Engine.denoise``
    does (channels, NaN).
    """
    if frames.ndim not in (3, 4):
        raise InputError(
            f"got a stack of shape {frames.shape}; give frames as [N, H, W] or [N, C, H, W]."
        )
    if window < 1:
        raise InputError(
            f"window of {window} frames; a window holds at least 1 frame.",
            option="window",
            value=window,
        )
    if stride is not None and not 1 <= stride <= window:
        raise InputError(
            f"stride of {stride} frames; give 1 to the window ({window}).",
            option="stride",
            value=stride,
        )
    check_finite(frames, first)  # all at once, before any work
    stack = frames[:, None] if frames.ndim == 3 else frames  # [N, C, H, W]
    n = stack.shape[0] if total is None else total
    t = min(window, n)
    step = used_stride(t, stride)
    start, stop = frame_range or (first, first + stack.shape[0])
    weights = position_weights(t)
    starts = _covering(start, stop, n, t, step)
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
    stride: int | None = None,
) -> np.ndarray:
    """Every frame of ``[N, H, W]`` or ``[N, C, H, W]`` denoised in the overlapping ``window``-frame
    windows that hold it (see the module's docstring).

    Float32 of the input's shape and intensity units; ``stride`` as ``denoised_frames`` (iterate
    that to report progress per frame). Raises InputError as ``denoised_frames``.
    """
    out = np.empty(frames.shape, dtype=np.float32)
    for i, frame in enumerate(denoised_frames(engine, frames, window, stride=stride)):
        out[i] = frame
    return out
