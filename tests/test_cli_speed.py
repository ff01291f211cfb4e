"""What a user sees of the engine's set-up: how many CPU threads it runs (``--threads``) and a line
when a model's first use exports it to ONNX."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from livedenoise.cli import app
from livedenoise.model import ModelCard, Normalization, build_model, preset, save_model

runner = CliRunner()


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for this file's tests: each model is exported once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _private_settings(cache: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This file's cache; OMP_NUM_THREADS and torch's threads as they were, afterwards
    (``--threads`` sets them for the rest of the process)."""
    monkeypatch.setenv("LIVEDENOISE_CACHE", str(cache))
    monkeypatch.setenv("OMP_NUM_THREADS", "")  # recorded, so that monkeypatch undoes --threads'
    monkeypatch.delenv("OMP_NUM_THREADS")
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "in.npy"
    np.save(path, (np.random.default_rng(0).random((3, 64, 64)) * 200).astype(np.uint16))
    return path


def denoise(model: Path, recording: Path, *options: str) -> str:
    out = recording.with_name(f"out{len(list(recording.parent.glob('out*')))}.npy")
    args = ["denoise", str(model), str(recording), str(out), "-t", "1", *options]
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert out.is_file()
    return result.output


def engine_threads(output: str) -> int:
    """The thread count the printed engine line gives."""
    line = next(line for line in output.splitlines() if line.startswith("engine:"))
    found = re.search(r"CPU, (\d+) threads?\b", line)
    assert found, line
    return int(found.group(1))


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_threads_option_sets_the_engine_threads(
    small_model_path: Path, recording: Path, backend: str
) -> None:
    for threads in (1, 2):
        output = denoise(
            small_model_path, recording, "--backend", backend, "--threads", str(threads)
        )
        assert engine_threads(output) == threads


def test_default_threads_follow_omp_num_threads_else_the_cores(
    small_model_path: Path, recording: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = engine_threads(denoise(small_model_path, recording, "--backend", "onnxruntime"))
    assert 1 <= default <= (os.cpu_count() or 1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    for backend in ("onnxruntime", "torch"):
        assert engine_threads(denoise(small_model_path, recording, "--backend", backend)) == 1


def test_first_use_of_a_model_says_it_is_exported_then_never_again(
    small_model_path: Path, recording: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIVEDENOISE_CACHE", str(tmp_path / "empty-cache"))
    first = denoise(small_model_path, recording, "--backend", "onnxruntime")
    assert "exporting small to ONNX" in first  # the card's name (conftest)
    assert "first use" in first
    again = denoise(small_model_path, recording, "--backend", "onnxruntime")
    assert "ONNX" not in again.replace("onnxruntime", "")


def test_first_use_of_a_shipped_model_copies_its_shipped_export(
    recording: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIVEDENOISE_CACHE", str(tmp_path / "empty-cache"))
    # float32 output: rounding to the input's integers would turn a 1e-6 difference at .5 into a count
    first = denoise(Path("backbone-small"), recording, "--backend", "onnxruntime", "--float32")
    assert "exporting" not in first
    denoise(Path("backbone-small"), recording, "--backend", "torch", "--float32")
    ort, reference = (
        np.load(recording.with_name("out0.npy")),
        np.load(recording.with_name("out1.npy")),
    )
    assert np.abs(ort - reference).max() / np.abs(reference).max() < 1e-4


def test_a_model_other_than_the_shipped_one_of_its_name_is_exported(
    recording: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIVEDENOISE_CACHE", str(tmp_path / "empty-cache"))
    cfg = preset("small")
    card = ModelCard(name="backbone-small", config=cfg, normalization=Normalization(scale=255.0))
    path = tmp_path / "mine" / "backbone-small"
    save_model(build_model(cfg, seed=7), card, path)  # same name, other weights
    output = denoise(path.with_suffix(".safetensors"), recording, "--backend", "onnxruntime")
    assert "exporting backbone-small to ONNX" in output
