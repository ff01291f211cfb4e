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
from livedenoise.model import load_card, load_model


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
