"""ONNX export: one graph computes the torch function at shapes other than the export shape."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from typer.testing import CliRunner

from livedenoise.cli import app
from livedenoise.inference import in_memory_engine
from livedenoise.model import (
    ModelCard,
    Normalization,
    build_model,
    load_card,
    load_model,
    preset,
    save_model,
)
from livedenoise.model.onnx_export import Normalised, window_affine


@pytest.mark.parametrize(
    "shape",
    [(1, 1, 1, 64, 96), (1, 16, 1, 32, 48), (2, 3, 1, 61, 83), (1, 2, 1, 5, 3)],
    ids=["T1", "T16", "H-W-not-multiple-of-4", "tiny"],
)
def test_onnx_runtime_matches_torch(small_model_path: Path, small_onnx_path: Path, shape) -> None:
    model, _ = load_model(small_model_path)
    x = torch.rand(*shape) * 2 - 0.5
    with torch.no_grad():
        expected = model(x).numpy()
    session = ort.InferenceSession(str(small_onnx_path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() / np.abs(expected).max() < 1e-4


def test_fast_preset_exports_and_matches_torch_at_odd_sizes(tmp_path: Path) -> None:
    """The space-to-depth stem pads to its own grid: frames of any size leave the graph as they came."""
    cfg = preset("fast")
    model = build_model(cfg, seed=2).eval()
    save_model(model, ModelCard(name="fast", config=cfg), tmp_path / "fast")
    out = tmp_path / "fast.onnx"
    result = CliRunner().invoke(app, ["export", str(tmp_path / "fast"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for shape in [(1, 1, 1, 61, 83), (1, 4, 1, 8, 8), (2, 2, 1, 130, 64)]:
        x = torch.rand(*shape)
        with torch.no_grad():
            expected = model(x).numpy()
        (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        assert got.shape == shape
        assert np.abs(got - expected).max() / np.abs(expected).max() < 1e-4


def test_exported_graph_declares_dynamic_axes(small_onnx_path: Path) -> None:
    session = ort.InferenceSession(str(small_onnx_path), providers=["CPUExecutionProvider"])
    dims = session.get_inputs()[0].shape
    assert dims[2] == 1
    assert all(isinstance(d, str) for d in (dims[0], dims[1], dims[3], dims[4]))


def test_exported_file_carries_normalisation_and_tile(
    small_onnx_path: Path, identity_model_path: Path, tmp_path: Path
) -> None:
    """A runtime outside livedenoise finds how to scale intensities in the ONNX file itself."""
    meta = {
        p.key: p.value for p in onnx.load(small_onnx_path, load_external_data=False).metadata_props
    }
    assert meta["livedenoise.normalization_offset"] == "0.0"
    assert meta["livedenoise.normalization_scale"] == "255.0"
    assert meta["livedenoise.tile"] == ""  # whole frames
    assert meta["livedenoise.normalization_in_graph"] == "no"  # the bare network, as engines run it
    card = load_card(identity_model_path).model_copy(update={"tile": 128})
    (tmp_path / "tiled.json").write_text(card.model_dump_json())
    shutil.copy(identity_model_path.with_suffix(".safetensors"), tmp_path / "tiled.safetensors")
    result = CliRunner().invoke(
        app, ["export", str(tmp_path / "tiled"), "--out", str(tmp_path / "t.onnx")]
    )
    assert result.exit_code == 0, result.output
    meta = {
        p.key: p.value
        for p in onnx.load(tmp_path / "t.onnx", load_external_data=False).metadata_props
    }
    assert meta["livedenoise.normalization_offset"] == "100.0"
    assert meta["livedenoise.normalization_scale"] == "400.0"
    assert meta["livedenoise.tile"] == "128"


@pytest.mark.parametrize(
    "shape",
    [(1, 8, 1, 96, 100), (2, 3, 2, 37, 45), (1, 4, 1, 150, 131), (1, 1, 1, 5, 3)],
    ids=["subsampled-step-2", "batch-and-channels", "subsampled-step-3", "tiny"],
)
def test_graph_percentiles_are_the_engines(shape) -> None:
    """The percentiles the exported graph takes are those livedenoise's engines take (numpy)."""
    norm = Normalization(method="percentile")
    frames = np.random.default_rng(5).gamma(2.0, 300.0, size=shape).astype(np.float32) + 1000
    offset, scale = window_affine(torch.from_numpy(frames), norm)
    expected_offset, expected_scale = norm.window_affine(frames)
    np.testing.assert_allclose(offset.numpy(), expected_offset, rtol=1e-6)
    np.testing.assert_allclose(scale.numpy(), expected_scale, rtol=1e-5)


@pytest.mark.parametrize(
    "frames",
    [np.full((1, 4, 1, 16, 16), 7.0), np.r_[np.zeros(1000), np.ones(3)].reshape(1, 1, 1, 17, 59)],
    ids=["uniform", "flat-percentiles"],
)
def test_graph_falls_back_on_flat_windows_as_the_engines(frames: np.ndarray) -> None:
    norm = Normalization(method="percentile")
    frames = frames.astype(np.float32)
    offset, scale = window_affine(torch.from_numpy(frames), norm)
    expected_offset, expected_scale = norm.window_affine(frames)
    np.testing.assert_array_equal(offset.numpy(), expected_offset)
    np.testing.assert_array_equal(scale.numpy(), expected_scale)


def test_normalised_graph_equals_the_engine_in_raw_units(small_model_path: Path) -> None:
    """The module exported with the normalisation gives the engine's output for a raw uint16 window."""
    net, _ = load_model(small_model_path)
    norm = Normalization(method="percentile")
    frames = (np.random.default_rng(2).poisson(30, size=(1, 6, 1, 40, 56)) * 5 + 800).astype(
        np.uint16
    )
    with torch.no_grad():
        got = Normalised(net, norm)(torch.from_numpy(frames.astype(np.float32))).numpy()
    expected = in_memory_engine(net, norm).denoise(frames)
    assert expected.min() > 500  # the raw units, far from the model's
    assert np.abs(got - expected).max() <= 1e-4 * np.ptp(expected)
