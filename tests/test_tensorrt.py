"""TensorRT: what can be checked anywhere (cache keys, rejecting bad cached engines, profiles), and the
engine itself on an NVIDIA GPU (skipped elsewhere with the reason)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from livedenoise.cli import app
from livedenoise.inference import BackendError, Engine, choose_tiling, load_engine
from livedenoise.inference.cache import cached, key_digest
from livedenoise.inference.gpu import Gpu, Profile, derive_profile
from livedenoise.inference.tensorrt_engine import engine_key, unavailable
from livedenoise.model import preset

H100 = Gpu("NVIDIA H100 80GB HBM3", "9.0")
PROFILE = Profile(min=(1, 1, 1, 1, 1), opt=(1, 8, 1, 512, 512), max=(1, 8, 1, 512, 512))
BASE = {
    "onnx_sha256": "ab" * 32,
    "tensorrt_version": "10.3.0",
    "gpu": H100,
    "precision": "fp16",
    "profile": PROFILE,
}
GIB = 1 << 30

gpu = pytest.mark.skipif(unavailable() is not None, reason=unavailable() or "")


@pytest.mark.parametrize(
    ("part", "value"),
    [
        ("onnx_sha256", "cd" * 32),
        ("tensorrt_version", "10.4.0"),
        ("gpu", Gpu("NVIDIA GeForce RTX 4090", "9.0")),
        ("gpu", Gpu("NVIDIA H100 80GB HBM3", "8.9")),
        ("precision", "fp32"),
        (
            "profile",
            Profile(min=(1, 1, 1, 1, 1), opt=(1, 8, 1, 512, 512), max=(1, 16, 1, 512, 512)),
        ),
    ],
    ids=["onnx", "tensorrt", "gpu-name", "compute-capability", "precision", "profile"],
)
def test_cache_key_changes_with_each_part(part: str, value: object) -> None:
    base = engine_key(**BASE)
    changed = engine_key(**{**BASE, part: value})
    assert key_digest(changed) != key_digest(base)
    assert key_digest(engine_key(**BASE)) == key_digest(base)  # and is stable


class Builds:
    """A build step that records how often it ran and writes a different engine each time."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, out: Path) -> None:
        self.count += 1
        out.write_bytes(f"serialised engine #{self.count}".encode() * 100)


def test_a_verified_engine_is_reused_and_a_corrupt_one_rebuilt(tmp_path: Path) -> None:
    key, path, build = engine_key(**BASE), tmp_path / "m.engine", Builds()
    cached(path, key, build)
    cached(path, key, build)
    assert build.count == 1
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, as a bad disk or an interrupted copy leaves
    path.write_bytes(bytes(data))
    cached(path, key, build)
    assert build.count == 2
    assert path.read_bytes().startswith(b"serialised engine #2")


def test_a_foreign_or_unlabelled_engine_is_rebuilt(tmp_path: Path) -> None:
    key, path, build = engine_key(**BASE), tmp_path / "m.engine", Builds()
    cached(path, engine_key(**{**BASE, "gpu": Gpu("NVIDIA L4", "8.9")}), build)  # copied from an L4
    cached(path, key, build)
    assert build.count == 2
    assert json.loads(path.with_name("m.engine.json").read_text())["key"]["gpu"] == H100.name
    path.with_name("m.engine.json").unlink()  # an engine with no record of what it was built for
    cached(path, key, build)
    assert build.count == 3


def test_profile_is_the_acquisition_frame_and_window() -> None:
    cfg = preset("small")
    profile = derive_profile(cfg, (510, 700), window=16, memory_budget=64 * GIB)
    assert profile.opt == (1, 16, 1, 510, 700)
    assert profile.max == (1, 16, 1, 512, 700)  # rounded up to the U-net's stride
    assert profile.min == (1, 1, 1, 1, 1)
    two_channel = derive_profile(preset("small", channels=2), (256, 256), 4, 64 * GIB)
    assert two_channel.opt == (1, 4, 2, 256, 256)


def test_profile_tiles_frames_that_do_not_fit_memory() -> None:
    cfg = preset("paper")
    profile = derive_profile(cfg, (2048, 2048), window=16, memory_budget=8 * GIB)
    _, t, _, h, w = profile.max
    assert t == 16 and h == w < 2048 and h % 4 == 0
    assert profile.opt == profile.max  # tuned for the tile it will run
    tiling = choose_tiling(cfg, min(h, w))
    assert tiling.tile <= h  # every tile fits the engine


def test_tensorrt_here_says_why_not(small_model_path: Path) -> None:
    if unavailable() is None:
        pytest.skip("TensorRT can run here")
    if not torch.cuda.is_available():
        assert unavailable() == "no NVIDIA GPU"  # the reason the GPU tests below are skipped with
    with pytest.raises(BackendError, match=unavailable()):
        load_engine(small_model_path, "tensorrt")
    result = CliRunner().invoke(app, ["export", str(small_model_path), "--backend", "tensorrt"])
    assert result.exit_code == 1
    assert unavailable() in " ".join(result.output.split())
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def engines(small_model_path: Path, small_onnx_path: Path, tmp_path_factory) -> dict[str, Engine]:
    cache = tmp_path_factory.mktemp("trt-cache")

    def trt(precision: str) -> Engine:
        return load_engine(
            small_model_path,
            "tensorrt",
            window=4,
            frame_size=(96, 128),
            onnx=small_onnx_path,
            cache_dir=cache,
            precision=precision,
        )

    return {
        "torch": load_engine(small_model_path, "torch", device="cuda"),
        "fp16": trt("fp16"),
        "fp32": trt("fp32"),
    }


def frames(seed: int, shape: tuple[int, ...] = (4, 96, 128)) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) * 4000).astype(np.uint16)


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize(("precision", "tolerance"), [("fp16", 1e-2), ("fp32", 1e-4)])
def test_tensorrt_matches_torch(
    engines: dict[str, Engine], precision: str, tolerance: float
) -> None:
    x = frames(0)
    expected, got = engines["torch"].denoise(x), engines[precision].denoise(x)
    assert np.abs(got - expected).max() / np.abs(expected).max() < tolerance


@gpu
@pytest.mark.gpu
def test_cuda_graph_replays_new_frames(engines: dict[str, Engine]) -> None:
    engine = engines["fp16"]
    a, b = frames(1), frames(2)
    first_a = engine.denoise(a)  # eager run, then the graph is captured
    got_b, again_a = engine.denoise(b), engine.denoise(a)  # graph replays
    assert engine.backend.cuda_graphs
    np.testing.assert_allclose(again_a, first_a, rtol=1e-5, atol=1e-2)
    expected_b = engines["torch"].denoise(b)
    assert np.abs(got_b - expected_b).max() / np.abs(expected_b).max() < 1e-2


@gpu
@pytest.mark.gpu
def test_shorter_windows_smaller_frames_and_batches_fit_the_profile(
    engines: dict[str, Engine],
) -> None:
    for x in (frames(3, (1, 64, 64)), frames(4, (3, 2, 96, 128))):
        expected, got = engines["torch"].denoise(x), engines["fp16"].denoise(x)
        assert np.abs(got - expected).max() / np.abs(expected).max() < 1e-2
