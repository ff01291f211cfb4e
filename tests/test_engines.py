"""The engine interface: backends agree, intensities come back in the input's units, bad windows get
clear errors, and ``auto`` picks a backend that works here and says why."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from livedenoise.cpu import cpu_threads
from livedenoise.inference import BackendError, Engine, InputError, denoise_stack, load_engine
from livedenoise.inference.base import normalise_into
from livedenoise.inference.cache import cached, onnx_entry
from livedenoise.model import (
    ModelCard,
    Normalization,
    build_model,
    load_card,
    load_model,
    preset,
    save_model,
)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("engine-cache")


@pytest.fixture(scope="module")
def torch_engine(small_model_path: Path, cache_dir: Path) -> Engine:
    return load_engine(small_model_path, "torch", cache_dir=cache_dir)


@pytest.fixture(scope="module")
def ort_engine(small_model_path: Path, small_onnx_path: Path, cache_dir: Path) -> Engine:
    return load_engine(small_model_path, "onnxruntime", onnx=small_onnx_path, cache_dir=cache_dir)


def window(dtype: type, shape: tuple[int, ...] = (3, 40, 56), seed: int = 0) -> np.ndarray:
    """Frames spanning most of the dtype's range (8-bit-like values for floats)."""
    rng = np.random.default_rng(seed)
    top = 250 if np.dtype(dtype).kind == "f" else np.iinfo(dtype).max * 0.9
    return (rng.random(shape) * top).astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_onnxruntime_and_torch_agree(torch_engine: Engine, ort_engine: Engine, dtype: type) -> None:
    x = window(dtype)
    a, b = torch_engine.denoise(x), ort_engine.denoise(x)
    assert a.dtype == b.dtype == np.float32 and a.shape == b.shape == x.shape
    assert np.abs(a - b).max() / np.abs(a).max() < 1e-4


def test_output_is_the_model_between_the_cards_normalisation(tmp_path: Path) -> None:
    cfg = preset("small")
    card = ModelCard(name="offset", config=cfg, normalization=Normalization(offset=100, scale=4000))
    save_model(build_model(cfg, seed=2), card, tmp_path / "offset")
    net, card = load_model(tmp_path / "offset")
    x = window(np.uint16, (2, 32, 48))
    norm = card.normalization
    with torch.no_grad():
        y = net(torch.from_numpy(norm.forward(x))[None, :, None]).numpy()[0, :, 0]
    got = load_engine(tmp_path / "offset", "torch").denoise(x)
    # a network trained on normalised intensities answers in the camera's units, offset restored
    np.testing.assert_allclose(got, norm.inverse(y), rtol=1e-6, atol=1e-3)
    assert abs(got.mean() - x.mean()) < 0.5 * x.std()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float64])
def test_every_backend_sees_exactly_the_cards_normalisation(dtype: type) -> None:
    norm = Normalization(offset=95.5, scale=1234.0)
    x = window(dtype, (2, 8, 8))[None, :, None]
    out = np.empty(x.shape, dtype=np.float32)
    offset, scale = norm.window_affine(x)
    assert np.array_equal(normalise_into(offset, scale, x, out), norm.forward(x))


def test_percentile_normalisation_is_each_windows_own() -> None:
    norm = Normalization(method="percentile", percentiles=(1.0, 99.0))
    rng = np.random.default_rng(0)
    x = rng.gamma(2.0, 50.0, (2, 3, 1, 64, 80)).astype(np.float32)
    x[1] = 16 * x[1] + 100  # the second window in other units
    offset, scale = norm.window_affine(x)
    assert offset.shape == scale.shape == (2, 1, 1, 1, 1)
    for b in range(2):
        low, high = np.percentile(x[b], [1.0, 99.0])  # every frame of the window pooled
        np.testing.assert_allclose(
            [offset[b].item(), scale[b].item()], [low, high - low], rtol=1e-5
        )
    uniform = norm.window_affine(np.full((1, 2, 1, 8, 8), 7.0, np.float32))
    assert (uniform[0].item(), uniform[1].item()) == (7.0, 1.0)
    with pytest.raises(ValueError, match="per window"):
        norm.forward(x)


def test_percentile_model_output_does_not_depend_on_the_inputs_units(tmp_path: Path) -> None:
    cfg = preset("small")
    card = ModelCard(name="pct", config=cfg, normalization=Normalization(method="percentile"))
    save_model(build_model(cfg, seed=3), card, tmp_path / "pct")
    engine = load_engine(tmp_path / "pct", "torch")
    x = window(np.uint8, (2, 64, 64)).astype(np.float32)
    got = engine.denoise(16 * x + 100)  # a 12-bit camera with an offset seeing the same field
    np.testing.assert_allclose(got, 16 * engine.denoise(x) + 100, rtol=1e-4, atol=16 * 1e-3)


def test_batch_windows_are_denoised_independently(torch_engine: Engine) -> None:
    a, b = window(np.uint8, seed=1), window(np.uint8, seed=2)
    batch = torch_engine.denoise(np.stack([a, b]))
    np.testing.assert_allclose(batch[1], torch_engine.denoise(b), rtol=1e-5, atol=1e-4)
    explicit = torch_engine.denoise(np.stack([a, b])[:, :, None])  # [B, T, C, H, W]
    np.testing.assert_allclose(explicit[:, :, 0], batch, rtol=1e-5, atol=1e-4)


def test_multichannel_windows_and_wrong_channel_counts(tmp_path: Path) -> None:
    cfg = preset("small", channels=2)
    save_model(build_model(cfg), ModelCard(name="two", config=cfg), tmp_path / "two")
    engine = load_engine(tmp_path / "two", "torch")
    assert engine.denoise(window(np.uint16, (3, 2, 24, 32))).shape == (3, 2, 24, 32)
    with pytest.raises(InputError, match=r"2-channel model takes \[T, C, H, W\]"):
        engine.denoise(window(np.uint16, (3, 24, 32)))
    with pytest.raises(InputError, match=r"frames have 3 channels .* the model takes 2"):
        engine.denoise(window(np.uint16, (3, 3, 24, 32)))


def test_a_stack_is_denoised_in_overlapping_windows_all_outputs_kept(
    torch_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames = window(np.uint16, (7, 24, 32))
    windows: list[int] = []  # frames per engine call
    engine_call = torch_engine.denoise

    def counted(x: np.ndarray) -> np.ndarray:
        windows.append(x.shape[1])
        return engine_call(x)

    monkeypatch.setattr(torch_engine, "denoise", counted)
    out = denoise_stack(torch_engine, frames, window=4)
    monkeypatch.undo()
    assert out.shape == frames.shape and out.dtype == np.float32
    # windows of frames 0-3, 2-5 and 3-6 (the last flush with the end): 3 calls, not 7
    assert windows == [4, 4, 4]
    direct = {
        i: torch_engine.denoise(frames[s : s + 4])[i - s] for i, s in ((0, 0), (1, 0), (6, 3))
    }
    for i, expected in direct.items():  # frames only the first or the last window holds
        np.testing.assert_allclose(out[i], expected, rtol=1e-5, atol=1e-3)


def test_a_stack_shorter_than_the_window_is_one_window(tmp_path: Path) -> None:
    cfg = preset("small", channels=2)
    save_model(build_model(cfg), ModelCard(name="two", config=cfg), tmp_path / "two")
    engine = load_engine(tmp_path / "two", "torch")
    frames = window(np.uint16, (3, 2, 24, 32))  # [N, C, H, W]
    out = denoise_stack(engine, frames, window=8)
    assert out.shape == frames.shape
    np.testing.assert_allclose(out, engine.denoise(frames), rtol=1e-5, atol=1e-3)
    with pytest.raises(InputError, match=r"give frames as \[N, H, W\] or \[N, C, H, W\]"):
        denoise_stack(engine, frames[0, 0], window=8)


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (np.zeros((32, 32), np.uint16), r"A single frame is a window of one: frame\[None\]"),
        (np.zeros((1, 1, 1, 1, 8, 8), np.uint16), r"takes \[T, H, W\] or \[B, T, H, W\]"),
        (np.zeros((2, 0, 8), np.uint16), "is empty"),
        (np.zeros((2, 8, 8), bool), "dtype bool; give integer or floating-point"),
    ],
    ids=["2d", "6d", "empty", "bool"],
)
def test_bad_windows_are_clear_errors(torch_engine: Engine, frames, message: str) -> None:
    with pytest.raises(InputError, match=message):
        torch_engine.denoise(frames)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_frames_are_named(ort_engine: Engine, bad: float) -> None:
    x = window(np.float32, (4, 16, 16))
    x[2, 5, 7] = bad
    with pytest.raises(InputError, match=r"frames \[2\] .* NaN or infinite .* np.nan_to_num"):
        ort_engine.denoise(x)


def test_a_nan_is_named_by_its_frame_under_percentile_normalisation(torch_engine: Engine) -> None:
    """Percentiles of a window holding a NaN are NaN, so every normalised frame is: the check must
    look at the raw frames, and a recording's frames are named by their number in it, before any work."""
    card = torch_engine.card.model_copy(
        update={"normalization": Normalization(method="percentile")}
    )
    engine = Engine(torch_engine.backend, card)
    x = window(np.float32, (4, 16, 16))
    x[2, 5, 7] = np.nan
    with pytest.raises(InputError, match=r"frames \[2\] of the window"):
        engine.denoise(x)
    recording = window(np.float32, (20, 16, 16))
    recording[13, 0, 0] = np.inf
    with pytest.raises(
        InputError, match=r"frames \[13\] \(counted from 0\) contain NaN or infinite"
    ):
        denoise_stack(engine, recording, 4)


def test_auto_picks_a_cpu_backend_here_and_says_why(
    small_model_path: Path, small_onnx_path: Path, cache_dir: Path
) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    engine = load_engine(small_model_path, onnx=small_onnx_path, cache_dir=cache_dir)
    assert engine.name in ("onnxruntime", "torch")
    assert "CPU" in engine.describe()
    assert "TensorRT cannot run here: no NVIDIA GPU" in engine.reason
    assert "the CUDA engine cannot run here: no NVIDIA GPU" in engine.reason
    assert "onnxruntime" in engine.reason and "torch" in engine.reason  # both were timed


def test_unknown_backend_is_a_clear_error(small_model_path: Path) -> None:
    with pytest.raises(BackendError, match="unknown backend 'tpu'; choose one of auto"):
        load_engine(small_model_path, "tpu")


def test_onnx_export_is_reused_from_the_cache(
    small_model_path: Path, small_onnx_path: Path, tmp_path: Path, torch_engine: Engine
) -> None:
    path, key = onnx_entry(load_card(small_model_path), tmp_path)
    cached(path, key, lambda out: shutil.copyfile(small_onnx_path, out))  # an earlier export
    written = path.stat().st_mtime_ns
    engine = load_engine(small_model_path, "onnxruntime", cache_dir=tmp_path)
    assert path.stat().st_mtime_ns == written  # not exported again
    x = window(np.uint16)
    a = engine.denoise(x)
    assert np.abs(a - torch_engine.denoise(x)).max() / np.abs(a).max() < 1e-4


def test_cpu_threads_leave_busy_cores_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    idle = cpu_threads()
    assert 1 <= idle <= (os.cpu_count() or 1)
    monkeypatch.setattr(os, "getloadavg", lambda: (64.0, 64.0, 64.0))
    assert cpu_threads() == 1  # every core busy: one thread, not a crowd waiting on each other


def test_omp_num_threads_sets_the_onnxruntime_threads(
    small_model_path: Path, small_onnx_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    engine = load_engine(small_model_path, "onnxruntime", onnx=small_onnx_path, cache_dir=cache_dir)
    assert engine.describe().startswith("onnxruntime") and ", 1 thread" in engine.describe()


def test_many_bad_frames_make_a_one_line_message(torch_engine: Engine) -> None:
    recording = window(np.float32, (200, 16, 16))
    recording[::2, 0, 0] = np.nan
    with pytest.raises(InputError, match=r"frames \[0, 2, 4, .*18, \.\.\.\] \(100 frames\)") as err:
        denoise_stack(torch_engine, recording, 4)
    assert "198" not in str(err.value)
