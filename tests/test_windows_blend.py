"""Offline windows that pay for all their outputs: a stack is denoised in overlapping windows laid a
stride apart, every output kept and blended, so a window of T costs about T/stride calls per frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from livedenoise.cli import app
from livedenoise.imageio import Image, read_image, write_image
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


def denoise_cli(*args: object) -> tuple[int, str]:
    """``livedenoise denoise ARGS`` as a user runs it: its exit code and its output on one line."""
    result = CliRunner().invoke(app, ["denoise", *map(str, args)], terminal_width=200)
    return result.exit_code, " ".join(result.output.split())


@pytest.fixture
def stack_zarr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A 9-frame time series of 24x32 as OME-Zarr (a private engine cache: nothing shared)."""
    monkeypatch.setenv("LIVEDENOISE_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "in.ome.zarr"
    write_image(path, Image(frames_of((9, 24, 32), seed=4), "TYX"))
    return path


def test_stride_1_denoises_with_more_windows_than_the_default(
    small_model_path: Path, stack_zarr: Path
) -> None:
    """``--stride 1`` at ``-t 4`` lays a window at every frame (6 over 9 frames, not 3): the frames
    blend other windows, so the result differs from the default's; stride 2 is the default's."""
    outputs = {}
    for name, stride in (("default", []), ("s1", ["--stride", 1]), ("s2", ["--stride", 2])):
        out = stack_zarr.parent / f"{name}.ome.zarr"
        args = [small_model_path, stack_zarr, out, "-t", 4, "--backend", "torch", "--float32"]
        code, text = denoise_cli(*args, *stride)
        assert code == 0, text
        outputs[name] = np.asarray(read_image(out).data)
    assert not np.allclose(outputs["s1"], outputs["default"], atol=1e-3)
    np.testing.assert_array_equal(outputs["s2"], outputs["default"])


@pytest.mark.parametrize(
    ("stride", "said"),
    [
        (5, "give 1..4, or none for half the window, rounded up (--stride)"),
        (0, "Invalid value for '--stride'"),
    ],
)
def test_a_stride_out_of_range_is_one_line(
    small_model_path: Path, stack_zarr: Path, stride: int, said: str
) -> None:
    out = stack_zarr.parent / "out.ome.zarr"
    code, text = denoise_cli(small_model_path, stack_zarr, out, "-t", 4, "--stride", stride)
    assert code in (1, 2) and said in text and "Traceback" not in text
    assert not out.exists()


@pytest.mark.slow
def test_chunked_equals_in_memory_at_a_stride_and_refuses_another(
    small_model_path: Path, stack_zarr: Path
) -> None:
    """Blocks of 2 frames at window 4, stride 1: each block's halo holds the windows the whole
    stack gives its frames. Rerun with another stride, the finished output is not mixed."""
    here, chunked = stack_zarr.parent / "one.ome.zarr", stack_zarr.parent / "dask.ome.zarr"
    common = [small_model_path, stack_zarr, "-t", 4, "--stride", 1, "--backend", "torch"]
    code, text = denoise_cli(*common, here, "--float32")
    assert code == 0, text
    dask = ["--workers", 1, "--block-frames", 2, "--float32"]
    code, text = denoise_cli(*common, chunked, *dask)
    assert code == 0, text
    np.testing.assert_allclose(
        np.asarray(read_image(chunked).data), np.asarray(read_image(here).data), atol=1e-5
    )
    code, text = denoise_cli(*common[:-4], "--stride", 2, "--backend", "torch", chunked, *dask)
    assert code == 1 and "made with stride 1 (now 2)" in text, text
    # the default stride of window 4 is 2: a run made with --stride 2 is the same run without it
    code, text = denoise_cli(
        *common[:-4], "--stride", 2, "--backend", "torch", chunked, *dask, "--overwrite"
    )
    assert code == 0, text
    code, text = denoise_cli(*common[:-4], "--backend", "torch", chunked, *dask)
    assert code == 0 and "already complete: nothing to do" in text, text
