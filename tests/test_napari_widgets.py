"""The napari plugin's "Denoise" and "Calibrate" dock widgets, used as a napari user uses them.

Each widget is built on napari's viewer model (Qt's ``offscreen`` platform has no OpenGL for the
window's canvas; the widgets need none), its work runs in its worker thread, and each test waits for
the widget's ``done`` signal: no timing is asserted. What the widgets produce is compared with what
the command line writes for the same data.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from unittest.mock import Mock

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari.components import ViewerModel
from napari.utils.notifications import notification_manager

from livedenoise.calibration.profile import load_profile
from livedenoise.cli import app
from livedenoise.events import Progress
from livedenoise.napari._calibrate import CalibrateWidget
from livedenoise.napari._denoise import DenoiseWidget

ROOT = Path(__file__).resolve().parents[1]
TIRF = ROOT.parent / "shared" / "data" / "repeats" / "tirf_microtubules_20x5ms.tif"
WAIT_MS = 300_000  # an upper bound for a slow machine, never a measurement
MODEL = "backbone-small"
BACKEND = "onnxruntime"


@pytest.fixture
def viewer() -> ViewerModel:
    return ViewerModel()


@pytest.fixture
def frames() -> np.ndarray:
    """6 noisy 64x64 frames of a few bright spots (uint16, as a camera gives them)."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:64, :64]
    spots = sum(
        400 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 18) for y, x in rng.uniform(8, 56, (6, 2))
    )
    return rng.poisson(50 + spots, (6, 64, 64)).astype(np.uint16)


def _errors() -> list[str]:
    return [str(n.message) for n in notification_manager.records if n.severity == "error"]


def _denoise(qtbot, widget: DenoiseWidget, layer: str) -> None:
    widget.layer.setCurrentText(layer)
    widget.model.setCurrentText(MODEL)
    widget.backend.setCurrentText(BACKEND)
    widget.window_size.setValue(4)
    with qtbot.waitSignal(widget.done, timeout=WAIT_MS):
        widget.run()


def test_denoise_widget_adds_what_the_command_line_writes(
    qtbot, viewer: ViewerModel, frames: np.ndarray, tmp_path: Path
) -> None:
    source = viewer.add_image(
        frames, name="cells", scale=(2.0, 0.2, 0.2), translate=(0.0, 10.0, -4.0)
    )
    widget = DenoiseWidget(viewer)
    qtbot.addWidget(widget)
    progress = Mock()
    widget.events.progress.connect(progress)
    _denoise(qtbot, widget, "cells")

    assert [layer.name for layer in viewer.layers] == ["cells", "cells denoised"]
    progress.assert_called_with(Progress(len(frames), len(frames), "denoising"))  # the bar's last
    assert widget.status.text() == "added cells denoised"
    denoised = viewer.layers["cells denoised"]
    np.testing.assert_allclose(denoised.scale, source.scale)
    np.testing.assert_allclose(denoised.translate, source.translate)
    tifffile.imwrite(tmp_path / "cells.tif", frames, imagej=True, metadata={"axes": "TYX"})
    result = CliRunner().invoke(
        app,
        [
            *("denoise", MODEL, str(tmp_path / "cells.tif"), str(tmp_path / "out.npy")),
            *("--backend", BACKEND, "--window", "4", "--float32"),
        ],
    )
    assert result.exit_code == 0, result.output
    expected = np.load(tmp_path / "out.npy")
    assert denoised.data.dtype == np.float32 and denoised.data.shape == frames.shape
    np.testing.assert_allclose(denoised.data, expected, rtol=1e-5, atol=1e-5 * expected.max())


def test_cancel_stops_denoising_and_adds_no_layer(
    qtbot, viewer: ViewerModel, frames: np.ndarray
) -> None:
    viewer.add_image(frames, name="cells")
    widget = DenoiseWidget(viewer)
    qtbot.addWidget(widget)
    seen: list[Progress] = []

    def press_cancel(progress: Progress) -> None:  # in the worker, as the first frame is done
        seen.append(progress)
        if progress.what == "denoising" and progress.done == 1:
            widget.cancel()

    widget.events.progress.connect(press_cancel)
    _denoise(qtbot, widget, "cells")

    assert [layer.name for layer in viewer.layers] == ["cells"]
    assert "cancelled" in widget.status.text()
    assert max(p.done for p in seen if p.what == "denoising") == 1  # stopped at the next frame
    assert widget.run_button.isEnabled()


def test_frames_too_small_are_a_notification_not_a_layer(
    qtbot, viewer: ViewerModel, frames: np.ndarray
) -> None:
    viewer.add_image(frames[:, :4, :4], name="tiny")
    widget = DenoiseWidget(viewer)
    qtbot.addWidget(widget)
    before = len(_errors())
    _denoise(qtbot, widget, "tiny")

    assert [layer.name for layer in viewer.layers] == ["tiny"]
    (message,) = _errors()[before:]
    assert message.startswith("tiny: frames of 4x4 px are smaller than the model's minimum")
    assert "Traceback" not in message


def test_calibrate_widget_chooses_what_calibrate_from_stack_chooses(
    qtbot, viewer: ViewerModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real TIRF repeats (20 frames of one field), a 64x64 crop of the middle."""
    if not TIRF.is_file():
        pytest.skip(f"{TIRF} is missing")
    repeats = tifffile.imread(TIRF)[:, 96:160, 96:160]
    stack = tmp_path / "repeats.tif"
    tifffile.imwrite(stack, repeats, imagej=True, metadata={"axes": "TYX"})
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app,
        [
            *("calibrate", "--model", MODEL, "--from-stack", str(stack)),
            *("--backend", BACKEND, "--out", "cli"),
        ],
    )
    assert result.exit_code == 0, result.output
    expected = load_profile(tmp_path / "calibration" / "cli")

    viewer.add_image(repeats[:, None], name="repeats")  # t, z (one slice), y, x: as a reader gives
    widget = CalibrateWidget(viewer)
    qtbot.addWidget(widget)
    widget.layer.setCurrentText("repeats")
    widget.model.setCurrentText(MODEL)
    widget.backend.setCurrentText(BACKEND)
    with qtbot.waitSignal(widget.done, timeout=WAIT_MS):
        widget.run()

    assert widget.profile is not None
    assert widget.profile.chosen == expected.chosen
    assert widget.profile.verdict.breaking_point == expected.verdict.breaking_point
    assert f"chosen: {expected.chosen.text} average(s)" in widget.status.text()
    assert widget.canvas.figure.axes  # the ladder plot is drawn
    assert not (tmp_path / "calibration" / "repeats").exists()  # the widget writes nothing


def test_calibrate_widget_refuses_a_single_frame(qtbot, viewer: ViewerModel) -> None:
    viewer.add_image(np.ones((64, 64), np.uint16), name="one frame")
    widget = CalibrateWidget(viewer)
    qtbot.addWidget(widget)
    widget.model.setCurrentText(MODEL)
    widget.backend.setCurrentText(BACKEND)
    before = len(_errors())
    with qtbot.waitSignal(widget.done, timeout=WAIT_MS):
        widget.run()

    (message,) = _errors()[before:]
    assert message.startswith("one frame: repeats are a stack of 2D frames")
    assert widget.profile is None


def test_reader_imports_no_engine() -> None:
    """napari imports the reader for every file it opens: the engines (torch) load only to denoise."""
    code = "import sys, livedenoise.napari.reader; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
