"""Shared fixtures: small saved models and their ONNX export, made once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from livedenoise.cli import app
from livedenoise.model import ModelCard, Normalization, build_model, preset, save_model

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def small_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `small` preset, untrained, saved as safetensors + card (8-bit normalisation)."""
    path = tmp_path_factory.mktemp("models") / "small"
    cfg = preset("small")
    card = ModelCard(name="small", config=cfg, normalization=Normalization(scale=255.0))
    save_model(build_model(cfg, seed=1), card, path)
    return path


@pytest.fixture(scope="session")
def small_onnx_path(small_model_path: Path) -> Path:
    """The small model exported through the command line, as a user would."""
    out = small_model_path.with_suffix(".onnx")
    result = CliRunner().invoke(app, ["export", str(small_model_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def identity_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real CNNT whose post-conv is zero: through the long residual skip it returns its input."""
    import torch

    path = tmp_path_factory.mktemp("models") / "identity"
    cfg = preset("small")
    model = build_model(cfg, seed=2)
    with torch.no_grad():
        for p in model.post.parameters():
            p.zero_()
    card = ModelCard(
        name="identity", config=cfg, normalization=Normalization(offset=100, scale=400)
    )
    save_model(model, card, path)
    return path


@pytest.fixture
def sim_core():
    """The simulated microscope with small frames and no waiting, for fast runs."""
    from livedenoise.acquisition import make_core
    from livedenoise.pipeline.setup import apply_assignments

    core = make_core()
    apply_assignments(
        core,
        [
            "Detector.FrameWidth=64",
            "Detector.FrameHeight=64",
            "Detector.TimeScale=0",
            "Detector.Photobleaching=Off",
        ],
    )
    return core
