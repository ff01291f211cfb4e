"""Backends are found by name in one registry, each with its own options: a backend added in a test
alone is built by ``load_engine`` and denoises, and options a backend lacks are refused by name."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from livedenoise import backends
from livedenoise.inference import (
    Backend,
    BackendError,
    BackendOptions,
    EngineRequest,
    load_engine,
    register_backend,
)


class InvertOptions(BackendOptions):
    level: float = 1.0

    def build(self, request: EngineRequest) -> InvertBackend:
        return InvertBackend(self.level)


class InvertBackend(Backend):
    """Not a network: ``level - x`` in normalised units, so its output shows it ran."""

    name = "invert"
    Options = InvertOptions

    def __init__(self, level: float) -> None:
        super().__init__()
        self.level = level

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.level - x

    def describe(self) -> str:
        return f"invert at {self.level}"


@pytest.fixture
def registered() -> Iterator[None]:
    register_backend("invert", InvertBackend)
    yield
    del backends.REGISTRY["invert"]  # the other tests see the shipped backends only


@pytest.mark.usefixtures("registered")
def test_a_registered_backend_is_built_by_name_and_denoises(small_model_path: Path) -> None:
    frames = np.arange(3 * 32 * 32, dtype=np.uint16).reshape(3, 32, 32) % 200
    engine = load_engine(small_model_path, "invert")
    assert engine.name == "invert"
    assert engine.describe() == "invert at 1.0 (invert was asked for)"
    # the small model's card divides by 255: level 1 is 255 in the frames' units
    np.testing.assert_allclose(engine.denoise(frames), 255.0 - frames, atol=1e-3)
    doubled = load_engine(small_model_path, "invert", level=2)
    np.testing.assert_allclose(doubled.denoise(frames), 510.0 - frames, atol=1e-3)
    assert "invert" in backends.backend_names()


@pytest.mark.usefixtures("registered")
def test_an_option_the_backend_lacks_is_refused_by_name(small_model_path: Path) -> None:
    with pytest.raises(BackendError, match=r"invert backend has no option 'precision'") as err:
        load_engine(small_model_path, "invert", precision="fp16")
    assert err.value.option == "precision"
    with pytest.raises(BackendError, match=r"option level: Input should be a valid number"):
        load_engine(small_model_path, "invert", level="high")


def test_auto_refuses_an_option_no_backend_has(small_model_path: Path) -> None:
    with pytest.raises(BackendError, match="no backend has an option 'precison'"):
        load_engine(small_model_path, precison="fp16")


def test_auto_gives_each_backend_only_the_options_it_has(
    small_model_path: Path, small_onnx_path: Path, tmp_path: Path
) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: auto would pick a GPU engine")
    before = torch.get_num_threads()
    try:
        engine = load_engine(
            small_model_path, onnx=small_onnx_path, cache_dir=tmp_path, threads=1, precision="fp32"
        )
        described = engine.describe()  # torch's describes the process's current thread count
    finally:
        torch.set_num_threads(before)  # torch's thread count is the whole process's
    assert engine.name in ("onnxruntime", "torch")
    # threads reached the CPU backends; precision, which only the GPU engines have, was not refused
    assert "on CPU, 1 thread" in described


def test_unknown_backend_names_the_registered_ones(small_model_path: Path) -> None:
    with pytest.raises(BackendError, match="unknown backend 'tpu'; choose one of auto, ") as err:
        load_engine(small_model_path, "tpu")
    assert (err.value.option, err.value.value) == ("backend", "tpu")


def test_the_command_line_offers_the_registered_backends() -> None:
    """A backend registered before the command is built is one of ``--backend``'s choices."""
    script = (
        "from livedenoise.backends import register_backend\n"
        "register_backend('invert', 'tests.test_backend_registry:InvertBackend')\n"
        "from livedenoise.cli import app\n"
        "app(['denoise', '--help'], prog_name='livedenoise')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert "auto, tensorrt, cuda, onnxruntime, torch, invert." in result.stdout, result.stderr
