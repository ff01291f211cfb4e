"""Test-time augmentation (``tta``, ``livedenoise denoise --tta``): the mean of the model over the
8 rotations and flips of each window, each turned back, on frames of any shape, tiled or whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from livedenoise.app.calibration import CalibrationRequest, RecordedStack, calibrate_from_stack
from livedenoise.app.denoising import denoise_array
from livedenoise.cli import app
from livedenoise.events import Events
from livedenoise.model import ModelCard, Normalization, build_model, preset, save_model

runner = CliRunner()
TIRF = Path(__file__).resolve().parents[2] / "shared/data/repeats/tirf_microtubules_20x5ms.tif"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEDENOISE_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def tiled_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `small` preset, untrained, whose card asks for 32 px tiles: frames here are tiled."""
    path = tmp_path_factory.mktemp("models") / "tiled"
    cfg = preset("small")
    card = ModelCard(name="tiled", config=cfg, normalization=Normalization(scale=255.0), tile=32)
    save_model(build_model(cfg, seed=3), card, path)
    return path


def frames(shape: tuple[int, ...] = (3, 40, 72), seed: int = 0) -> np.ndarray:
    """A small time series of non-square frames (T, Y, X) with structure and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[1], : shape[2]]
    pattern = 80 + 60 * np.sin(xx / 5.0) * np.cos(yy / 9.0) + xx  # no symmetry of the square
    return (pattern + rng.normal(0, 15, shape)).astype(np.float32)


def turned(x: np.ndarray, turns: int, mirrored: bool) -> np.ndarray:
    """The test's own transform of (T, Y, X) frames: flip left-right, then rotate Y, X."""
    return np.rot90(np.flip(x, 2) if mirrored else x, turns, axes=(1, 2))


def turned_back(y: np.ndarray, turns: int, mirrored: bool) -> np.ndarray:
    back = np.rot90(y, -turns, axes=(1, 2))
    return np.flip(back, 2) if mirrored else back


def test_tta_of_an_equivariant_model_is_its_plain_output(identity_model_path: Path) -> None:
    x = frames()
    plain = denoise_array(identity_model_path, x, "TYX", backend="torch", window=2, float32=True)
    tta = denoise_array(
        identity_model_path, x, "TYX", backend="torch", window=2, float32=True, tta=True
    )
    assert tta.shape == x.shape
    np.testing.assert_allclose(tta, plain, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("model", ["small_model_path", "tiled_model_path"])
def test_tta_is_the_mean_of_the_eight_orientations_turned_back(
    model: str, request: pytest.FixtureRequest
) -> None:
    path = request.getfixturevalue(model)
    x = frames()

    def plain(data: np.ndarray) -> np.ndarray:
        return denoise_array(path, data.copy(), "TYX", backend="torch", window=2, float32=True)

    views = [
        turned_back(plain(turned(x, turns, mirrored)), turns, mirrored)
        for mirrored in (False, True)
        for turns in range(4)
    ]
    expected = np.mean(views, axis=0)
    tta = denoise_array(path, x, "TYX", backend="torch", window=2, float32=True, tta=True)
    assert tta.shape == x.shape
    spread = np.abs(views[1] - views[0]).max()
    assert spread > 1.0  # the model is not symmetric: orientation matters to the check
    np.testing.assert_allclose(tta, expected, rtol=1e-4, atol=1e-3 * spread)
    assert np.abs(tta - plain(x)).max() > 0.1


def test_cli_tta_writes_the_averaged_output(small_model_path: Path, tmp_path: Path) -> None:
    x = frames((2, 40, 48))
    source, out = tmp_path / "in.npy", tmp_path / "out.npy"
    np.save(source, x)
    args = ["denoise", str(small_model_path), str(source), str(out), "--backend", "torch"]
    result = runner.invoke(app, [*args, "--tta", "--float32"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "8 orientations averaged" in " ".join(result.output.split())  # the engine line
    expected = denoise_array(small_model_path, x, "TYX", backend="torch", float32=True, tta=True)
    np.testing.assert_allclose(np.load(out), expected, rtol=1e-5, atol=1e-3)


def test_cli_help_lists_tta_and_chunked_runs_refuse_it(tmp_path: Path) -> None:
    result = runner.invoke(app, ["denoise", "--help"], terminal_width=200)
    assert result.exit_code == 0 and "--tta" in result.output
    args = ["denoise", "m", "in.ome.zarr", str(tmp_path / "o.ome.zarr"), "--tta", "--workers", "2"]
    refused = runner.invoke(app, args, terminal_width=200)
    assert refused.exit_code != 0
    assert "--tta" in refused.output and "chunked" in refused.output
    assert not (tmp_path / "o.ome.zarr").exists()


def test_calibration_measures_the_model_with_tta(identity_model_path: Path, tmp_path: Path) -> None:
    crop = tmp_path / "tirf.npy"
    np.save(crop, tifffile.imread(TIRF)[:, :64, :48])  # real repeats, a non-square crop
    events, lines = Events(), []
    events.status.connect(lines.append)
    request = CalibrationRequest(model=identity_model_path, backend="torch", tta=True)
    profile = calibrate_from_stack(
        RecordedStack(paths=[crop]), request, tmp_path / "out", events=events
    )
    assert lines[0].startswith("engine: ") and "8 orientations averaged" in lines[0]
    assert (tmp_path / "out").exists() and profile is not None
    help_text = runner.invoke(app, ["calibrate", "--help"], terminal_width=200).output
    assert "--tta" in help_text


def test_napari_denoise_widget_tta_box_averages_the_orientations(qtbot) -> None:
    pytest.importorskip("napari")
    from napari.components import ViewerModel

    from livedenoise.napari._denoise import DenoiseWidget

    x = frames((2, 40, 64))
    viewer = ViewerModel()
    viewer.add_image(x, name="cells")
    widget = DenoiseWidget(viewer)
    qtbot.addWidget(widget)
    widget.layer.setCurrentText("cells")
    widget.model.setCurrentText("backbone-small")
    widget.backend.setCurrentText("onnxruntime")
    widget.window_size.setValue(2)
    widget.tta.setChecked(True)
    with qtbot.waitSignal(widget.done, timeout=300_000):  # an upper bound, never a measurement
        widget.run()
    expected = denoise_array(
        "backbone-small", x, "TYX", backend="onnxruntime", window=2, float32=True, tta=True
    )
    denoised = viewer.layers["cells denoised"].data
    np.testing.assert_allclose(denoised, expected, rtol=1e-5, atol=1e-5 * expected.max())
