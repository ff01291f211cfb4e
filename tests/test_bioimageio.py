"""bioimage.io packages: a package the zoo's own tools accept, run and agree with, and that imports back."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from bioimageio.core import predict
from bioimageio.core import test_model as zoo_test
from bioimageio.spec import InvalidDescr, load_description, save_bioimageio_package
from bioimageio.spec.model import v0_5 as spec
from typer.testing import CliRunner

from livedenoise.app.bioimageio import PackageError, export_package, spec_processing
from livedenoise.cli import app
from livedenoise.model import ModelCard, Normalization, build_model, load_model, preset, save_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny untrained CNNT with a 16-bit-like normalisation and a lineage, saved as a user's model."""
    path = tmp_path_factory.mktemp("bioimageio") / "tiny"
    cfg = preset("small")
    card = ModelCard(
        name="tiny",
        config=cfg,
        normalization=Normalization(offset=100.0, scale=50.0),
        trained_on=["ten noisy/clean pairs of test cells"],
        parent="backbone-small@d2a931604e50",
    )
    save_model(build_model(cfg, seed=3), card, path)
    return path


@pytest.fixture(scope="module")
def package(model: Path) -> Path:
    """The tiny model exported through the command line, as a user would."""
    out = model.parent / "tiny.zip"
    result = CliRunner().invoke(
        app,
        ["export", str(model), "--format", "bioimageio", "--out", str(out), "--author", "A. User"],
    )
    assert result.exit_code == 0, result.output
    assert "test input gives its test output" in result.output
    return out


def test_package_is_valid_and_carries_the_card(package: Path) -> None:
    descr = load_description(package, perform_io_checks=True)
    assert not isinstance(descr, InvalidDescr), descr.validation_summary.display()
    assert isinstance(descr, spec.ModelDescr)
    assert [a.type for a in descr.inputs[0].axes] == ["batch", "time", "channel", "space", "space"]
    assert descr.weights.onnx is not None
    assert descr.covers and descr.documentation is not None
    assert descr.license == "BSD-3-Clause"
    card = descr.config.model_extra["livedenoise"]
    assert card["parent"] == "backbone-small@d2a931604e50"
    assert "test cells" in descr.training_data.description


def test_zoo_model_test_reproduces_the_test_output(package: Path) -> None:
    summary = zoo_test(package)
    assert summary.status == "passed", summary.display()


def test_zoo_prediction_equals_livedenoise_denoise(model: Path, package: Path) -> None:
    rng = np.random.default_rng(7)
    frames = rng.poisson(40, size=(5, 40, 52)).astype(np.uint16) + 100  # a new T, Y, X image
    np.save(model.parent / "new.npy", frames)
    out = model.parent / "new-denoised.npy"
    args = [str(model), str(model.parent / "new.npy"), str(out), "--axes", "TYX", "--float32"]
    result = CliRunner().invoke(app, ["denoise", *args, "--backend", "torch"])
    assert result.exit_code == 0, result.output
    zoo = predict(model=package, inputs={"raw": frames[None, :, None]})
    denoised = zoo.members["denoised"].data.to_numpy()[0, :, 0]
    np.testing.assert_allclose(denoised, np.load(out), rtol=1e-3)


def test_import_gives_the_same_model(model: Path, package: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["import", str(package), "--out", str(tmp_path / "back")])
    assert result.exit_code == 0, result.output
    original, card = load_model(model)
    restored, restored_card = load_model(tmp_path / "back")
    assert restored_card == card
    x = torch.rand(1, 3, 1, 24, 40)
    with torch.no_grad():
        assert torch.equal(restored(x), original(x))


def test_import_refuses_a_tampered_package(package: Path, tmp_path: Path) -> None:
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(package) as src, zipfile.ZipFile(tampered, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith(".safetensors"):
                data = data[:-4] + b"\0\0\0\0"
            dst.writestr(item, data)
    result = CliRunner().invoke(app, ["import", str(tampered), "--out", str(tmp_path / "x")])
    assert result.exit_code == 1
    assert "sha256" in result.output.lower() or "Sha256" in result.output
    assert not (tmp_path / "x.safetensors").exists()


def test_import_refuses_another_architecture(package: Path, tmp_path: Path) -> None:
    descr = load_description(package)
    other = descr.model_copy(
        update={
            "attachments": [],
            "config": spec.Config(bioimageio=spec.BioimageioConfig(architecture_type="UNet")),
        }
    )
    unet = save_bioimageio_package(other, output_path=tmp_path / "unet.zip")
    result = CliRunner().invoke(app, ["import", str(unet), "--out", str(tmp_path / "u")])
    assert result.exit_code == 1
    assert "not a livedenoise CNNT package" in result.output
    assert "UNet" in result.output


@pytest.mark.parametrize("norm", [Normalization(offset=98.0, scale=68.0), Normalization()])
def test_spec_processing_is_the_card_normalisation(norm: Normalization) -> None:
    pre, post = spec_processing(norm)
    x = np.array([0.0, 98.0, 1000.0, 65535.0], dtype=np.float32)
    y = x
    for step in pre[1:]:
        y = y * step.kwargs.gain + step.kwargs.offset
    np.testing.assert_allclose(y, norm.forward(x), rtol=1e-6, atol=1e-6)
    for step in post:
        y = y * step.kwargs.gain + step.kwargs.offset
    np.testing.assert_allclose(y, x, rtol=1e-6, atol=1e-4)


def test_export_refuses_a_percentile_model_it_cannot_express(tmp_path: Path) -> None:
    """The spec cannot undo a per-window map after the network: no package with wrong units."""
    cfg = preset("small")
    card = ModelCard(name="pct", config=cfg, normalization=Normalization(method="percentile"))
    save_model(build_model(cfg, seed=1), card, tmp_path / "pct")
    with pytest.raises(PackageError, match="percentiles"):
        export_package(tmp_path / "pct", tmp_path / "pct.zip")
    assert not (tmp_path / "pct.zip").exists()
