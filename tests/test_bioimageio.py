"""bioimage.io packages: a package the zoo's own tools accept, run and agree with, and that imports back."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from bioimageio.core import predict
from bioimageio.core import test_model as zoo_test
from bioimageio.spec import InvalidDescr, load_description, save_bioimageio_package
from bioimageio.spec.model import v0_5 as spec
from typer.testing import CliRunner

from livedenoise.app.bioimageio import spec_processing
from livedenoise.cli import app
from livedenoise.inference import in_memory_engine
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


def export(model: str, out: Path) -> Path:
    """``model`` exported through the command line, as a user would; the export's own test passed."""
    result = CliRunner().invoke(
        app, ["export", model, "--format", "bioimageio", "--out", str(out), "--author", "A. User"]
    )
    assert result.exit_code == 0, result.output
    assert "test input gives its test output" in result.output
    return out


@pytest.fixture(scope="module")
def package(model: Path) -> Path:
    """The tiny fixed-normalisation model's package."""
    return export(str(model), model.parent / "tiny.zip")


@pytest.fixture(scope="module", params=["backbone-small", "sim-confocal-small"])
def shipped(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    """Each shipped model and its package: models that normalise each window by its percentiles."""
    name = request.param
    return name, export(name, tmp_path_factory.mktemp("shipped") / f"{name}.zip")


def camera_frames(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """Noisy uint16 frames far from the model's units: a camera offset of 1000, 7 counts a photon."""
    return (np.random.default_rng(seed).poisson(20, size=shape) * 7 + 1000).astype(np.uint16)


def close(got: np.ndarray, expected: np.ndarray) -> bool:
    """Equal within 1e-3 of the expected output's range."""
    return bool(np.abs(got - expected).max() <= 1e-3 * np.ptp(expected))


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


def test_shipped_model_package_passes_the_zoo_test(shipped: tuple[str, Path]) -> None:
    _, shipped_package = shipped
    summary = zoo_test(shipped_package)
    assert summary.status == "passed", summary.display()
    descr = load_description(shipped_package)
    steps = [*descr.inputs[0].preprocessing, *descr.outputs[0].postprocessing]
    assert {step.id for step in steps} == {"ensure_dtype"}  # no scaling: the graph normalises


def test_shipped_model_prediction_equals_livedenoise_denoise(
    shipped: tuple[str, Path], tmp_path: Path
) -> None:
    """A uint16 image in a camera's units comes out of the zoo in the same units livedenoise gives."""
    name, shipped_package = shipped
    frames = camera_frames(3, (5, 48, 64))
    np.save(tmp_path / "new.npy", frames)
    out = tmp_path / "new-denoised.npy"
    args = [name, str(tmp_path / "new.npy"), str(out), "--axes", "TYX", "--float32"]
    result = CliRunner().invoke(app, ["denoise", *args, "--backend", "torch"])
    assert result.exit_code == 0, result.output
    zoo = predict(model=shipped_package, inputs={"raw": frames[None, :, None]})
    denoised = zoo.members["denoised"].data.to_numpy()[0, :, 0]
    expected = np.load(out)
    assert expected.min() > 900  # in the camera's units, not the model's
    assert close(denoised, expected)


def test_shipped_model_onnx_gives_the_engine_output_in_raw_units(shipped: tuple[str, Path]) -> None:
    """Any ONNX runtime, given the raw window, gets what livedenoise's engine gives for it."""
    name, shipped_package = shipped
    with zipfile.ZipFile(shipped_package) as zf:
        graph = zf.read("weights.onnx")
    assert onnx.load_from_string(graph).ir_version <= 8  # older onnxruntime loads it (not 10)
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    net, card = load_model(name)
    engine = in_memory_engine(net, card.normalization, card.tile)
    for seed, shape in enumerate([(1, 8, 1, 120, 112), (2, 3, 1, 40, 52)]):  # 8x120x112: subsampled
        frames = camera_frames(seed, shape)
        (got,) = session.run(None, {session.get_inputs()[0].name: frames.astype(np.float32)})
        assert close(got, engine.denoise(frames))


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


@pytest.mark.parametrize(
    "norm",
    [Normalization(offset=98.0, scale=68.0), Normalization(), Normalization(method="percentile")],
    ids=["fixed", "identity", "percentile-in-graph"],
)
def test_spec_processing_is_the_card_normalisation(norm: Normalization) -> None:
    pre, post = spec_processing(norm)
    x = np.array([0.0, 98.0, 1000.0, 65535.0], dtype=np.float32)
    y = x
    for step in pre[1:]:
        y = y * step.kwargs.gain + step.kwargs.offset
    expected = norm.forward(x) if norm.method == "fixed" else x  # the graph normalises
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)
    for step in post:
        y = y * step.kwargs.gain + step.kwargs.offset
    np.testing.assert_allclose(y, x, rtol=1e-6, atol=1e-4)


def test_package_graph_is_opset_17_for_deepimagej(package: Path) -> None:
    """deepImageJ's ONNX engines (JDLL: onnxruntime 1.12/1.13) implement opsets up to 17, not 18."""
    with zipfile.ZipFile(package) as zf:
        graph = onnx.load_from_string(zf.read("weights.onnx"))
    assert [(o.domain, o.version) for o in graph.opset_import] == [("", 17)]
    onnx.checker.check_model(graph, full_check=True)  # every node valid at opset 17
    descr = load_description(package)
    assert descr.weights.onnx.opset_version == 17
