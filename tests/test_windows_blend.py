"""Offline windows that pay for all their outputs: a stack is denoised in overlapping windows laid a
stride apart, every output kept and blended, so a window of T costs about T/stride calls per frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from livedenoise.inference import (
    Engine,
    InputError,
    denoise_stack,
    denoised_frames,
    load_engine,
    window_span,
)


def frames_of(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Distinct noisy 8-bit-like frames (no two alike, so a frame taken from the wrong place shows)."""
    return np.random.default_rng(seed).integers(0, 250, shape).astype(np.uint16)


class CountedEngine:
    """A real engine whose calls are recorded as the frames of the stack each window held."""

    def __init__(self, engine: Engine, stack: np.ndarray) -> None:
        self.engine, self.stack, self.windows = engine, stack, []

    def denoise(self, x: np.ndarray) -> np.ndarray:
        held = [
            next(i for i, f in enumerate(self.stack) if np.array_equal(f, g.reshape(f.shape)))
            for g in x[0]
        ]
        self.windows.append(held)
        return self.engine.denoise(x)


@pytest.fixture(scope="module")
def engine(small_model_path: Path) -> Engine:
    return load_engine(small_model_path, "torch")


@pytest.fixture(scope="module")
def identity(identity_model_path: Path) -> Engine:
    return load_engine(identity_model_path, "torch")


def test_window_1_is_each_frame_alone_exactly(engine: Engine) -> None:
    frames = frames_of((5, 24, 32))
    alone = np.stack([engine.denoise(f[None])[0] for f in frames])
    np.testing.assert_array_equal(denoise_stack(engine, frames, window=1), alone)


@pytest.mark.parametrize(
    ("n", "window", "stride", "calls"),
    [(20, 8, None, 4), (32, 8, None, 7), (9, 4, None, 4), (6, 8, None, 1), (20, 8, 6, 3)],
)
def test_windows_are_laid_a_stride_apart_over_the_whole_stack(
    engine: Engine, n: int, window: int, stride: int | None, calls: int
) -> None:
    frames = frames_of((n, 24, 32))
    counted = CountedEngine(engine, frames)
    out = denoise_stack(counted, frames, window=window, stride=stride)  # type: ignore[arg-type]
    assert out.shape == frames.shape
    t = min(window, n)
    # 20 frames, window 8: windows at 0, 4, 8, 12 (stride 6: 0, 6, 12), where one per frame took 13
    assert len(counted.windows) == calls
    for held in counted.windows:  # whole windows of consecutive frames inside the stack
        assert held == list(range(held[0], held[0] + t))
    assert counted.windows[0][0] == 0 and counted.windows[-1][-1] == n - 1  # ends: full windows
    assert set().union(*counted.windows) == set(range(n))


@pytest.mark.parametrize("window", [2, 3, 8])
def test_each_frame_comes_from_its_own_position_in_windows_holding_it(
    identity: Engine, window: int
) -> None:
    """A model that returns its input returns the stack: no frame is taken from a neighbour."""
    frames = frames_of((17, 24, 32), seed=1)
    out = denoise_stack(identity, frames, window=window)
    np.testing.assert_allclose(out, frames, atol=0.02)


def test_a_stride_longer_than_the_window_is_refused(engine: Engine) -> None:
    with pytest.raises(InputError, match=r"stride of 5 frames; give 1 to the window \(4\)"):
        denoise_stack(engine, frames_of((9, 24, 32)), window=4, stride=5)


def test_two_channel_stacks_keep_their_channels(identity: Engine) -> None:
    frames = frames_of((11, 1, 24, 32), seed=2)
    np.testing.assert_allclose(denoise_stack(identity, frames, window=4), frames, atol=0.02)


@pytest.mark.parametrize(("window", "block"), [(4, 3), (8, 5), (8, 1), (3, 4)])
def test_blocks_with_their_halo_equal_the_whole_stack(
    engine: Engine, window: int, block: int
) -> None:
    """What each block of a chunked run computes, put together, is the in-memory result exactly."""
    frames = frames_of((19, 24, 32), seed=3)
    whole = denoise_stack(engine, frames, window=window)
    n = len(frames)
    for start in range(0, n, block):
        stop = min(start + block, n)
        first, last = window_span(start, stop, n, window)
        assert first <= start and stop <= last <= n
        part = denoised_frames(
            engine,
            frames[first:last],
            window,
            total=n,
            first=first,
            frame_range=(start, stop),
        )
        np.testing.assert_array_equal(np.stack(list(part)), whole[start:stop])
