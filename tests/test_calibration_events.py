"""A calibration reports through one ``Events`` group: what the command line's bars and the viewer's
calibration tab show is what it emits (checked here with mock receivers, on real repeats)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from unittest.mock import Mock

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from livedenoise.app.calibration import (
    CalibrationRequest,
    RecordedStack,
    Recording,
    calibrate_from_stack,
    calibrate_on_core,
)
from livedenoise.calibration.analysis import Rung
from livedenoise.calibration.errors import CalibrationError
from livedenoise.cli import app
from livedenoise.events import Events, Progress
from livedenoise.pipeline.setup import apply_assignments

TIRF = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "repeats"
    / "tirf_microtubules_20x5ms.tif"
)
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def receivers(events: Events) -> SimpleNamespace:
    """A mock connected to each signal a calibration emits."""
    names = ("status", "progress", "measured", "finished", "failed")
    mocks = SimpleNamespace(**{name: Mock() for name in names})
    for name in names:
        getattr(events, name).connect(getattr(mocks, name))
    return mocks


@pytest.fixture
def tirf_crop(tmp_path: Path) -> Path:
    """The real TIRF repeats (20 frames), a 64 px crop: a ladder of 1..10 averages."""
    path = tmp_path / "tirf.npy"
    np.save(path, tifffile.imread(TIRF)[:, :64, :64])
    return path


def test_offline_calibration_reports_the_engine_each_rung_and_its_profile(
    identity_model_path: Path, tirf_crop: Path, tmp_path: Path
) -> None:
    events = Events()
    got = receivers(events)
    request = CalibrationRequest(model=identity_model_path, backend="onnxruntime")
    profile = calibrate_from_stack(
        RecordedStack(paths=[tirf_crop]), request, tmp_path / "out", events=events
    )
    ladder = [1, 2, 3, 4, 6, 8, 10]
    assert got.status.call_count == 1 and got.status.call_args.args[0].startswith("engine: ")
    assert [c.args[0] for c in got.progress.call_args_list] == [
        Progress(done, len(ladder), "denoising the ladder") for done in range(len(ladder) + 1)
    ]
    rungs = [c.args[0] for c in got.measured.call_args_list]
    assert all(isinstance(r, Rung) for r in rungs) and [r.averages for r in rungs] == ladder
    got.finished.assert_called_once_with(profile)
    got.failed.assert_not_called()


def test_calibration_that_cannot_run_reports_why(identity_model_path: Path, tmp_path: Path) -> None:
    few = tmp_path / "few.npy"
    np.save(few, tifffile.imread(TIRF)[:3, :64, :64])
    events = Events()
    got = receivers(events)
    request = CalibrationRequest(model=identity_model_path, backend="onnxruntime")
    with pytest.raises(CalibrationError):
        calibrate_from_stack(RecordedStack(paths=[few]), request, tmp_path / "out", events=events)
    got.failed.assert_called_once()
    assert isinstance(got.failed.call_args.args[0], CalibrationError)
    assert "too few" in str(got.failed.call_args.args[0])
    got.finished.assert_not_called()
    assert not (tmp_path / "out").exists()


def test_calibration_on_the_microscope_reports_each_field_s_repeats_and_ladder(
    identity_model_path: Path, sim_core, tmp_path: Path
) -> None:
    apply_assignments(sim_core, ["Detector.FrameWidth=64", "Detector.FrameHeight=64"])
    events = Events()
    got = receivers(events)
    request = CalibrationRequest(model=identity_model_path, backend="onnxruntime")
    recording = Recording(repeats=8, positions=[(22.5, 22.5), (67.5, 67.5)])
    profile = calibrate_on_core(sim_core, request, recording, tmp_path / "out", events=events)
    stages = [
        ("repeats at Detector.LineAverage=1 (field 1 of 2)", 8),
        ("repeats at Detector.LineAverage=1 (field 2 of 2)", 8),
        ("denoising the ladder (field 1 of 2)", 4),  # 4 inputs: 1, 2, 3, 4 averages
        ("denoising the ladder (field 2 of 2)", 4),
    ]
    assert [c.args[0] for c in got.progress.call_args_list] == [
        Progress(done, total, what) for what, total in stages for done in range(total + 1)
    ]
    assert got.measured.call_count == 8
    got.finished.assert_called_once_with(profile)
    got.failed.assert_not_called()


def test_command_line_shows_the_engine_and_a_bar_per_stage(
    identity_model_path: Path, tirf_crop: Path, tmp_path: Path
) -> None:
    args = ["calibrate", "--model", str(identity_model_path), "--backend", "onnxruntime"]
    result = CliRunner().invoke(
        app, [*args, "--from-stack", str(tirf_crop), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    assert "engine: " in result.output and "denoising the ladder" in result.output
    assert "7/7" in result.output


def test_viewer_shows_a_failed_calibration(qtbot, sim_core, tmp_path: Path) -> None:
    """The tab learns of the failure from the calibration's ``failed`` signal."""
    from qtpy.QtCore import Qt

    from livedenoise.gui.calibration_tab import CalibrationTab

    controller = SimpleNamespace(
        core=sim_core, model=tmp_path / "missing", backend="onnxruntime", running=False
    )
    tab = CalibrationTab(controller, out_dir=tmp_path / "calibration")
    qtbot.addWidget(tab)
    qtbot.mouseClick(tab.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not tab.running, timeout=30_000)
    tab.refresh()
    assert "calibration failed" in tab.verdict.text() and "missing" in tab.verdict.text()
    assert tab.profile is None and not (tmp_path / "calibration").exists()
