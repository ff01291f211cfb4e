"""The napari "Calibrate" widget on the microscope: repeats recorded on the core it is given (the
simulated microscope here, as ``CMMCorePlus.instance()`` is in napari-micromanager), the chosen
setting shown, and set on the core by Apply.

The widget runs on napari's viewer model, offscreen; each test waits for the widget's ``done``
signal, never a time. The core is released after each test (devices unloaded).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari.components import ViewerModel
from napari.utils.notifications import notification_manager
from pymmcore_plus import CMMCorePlus

from livedenoise.app import open_microscope, release_microscope
from livedenoise.napari._calibrate import MICROSCOPE, CalibrateWidget

WAIT_MS = 300_000  # an upper bound for a slow machine, never a measurement
CELL_XY = (22.5, 22.5)  # um: a cell of the simulated specimen (the origin lies between cells)


@pytest.fixture
def core() -> Iterator[CMMCorePlus]:
    """The simulated microscope at a cell, small frames, no waiting."""
    settings = ["FrameWidth=64", "FrameHeight=64", "Zoom=2", "TimeScale=0", "Photobleaching=Off"]
    core = open_microscope(None, [f"Detector.{s}" for s in settings])
    try:
        core.setXYPosition(*CELL_XY)
        yield core
    finally:
        release_microscope(core)


def _widget(qtbot, core: CMMCorePlus) -> CalibrateWidget:
    widget = CalibrateWidget(ViewerModel(), core=core)
    qtbot.addWidget(widget)
    widget.source.setCurrentText(MICROSCOPE)
    widget.model.setCurrentText("backbone-small")
    widget.backend.setCurrentText("onnxruntime")
    widget.repeats.setValue(16)
    return widget


def _errors() -> list[str]:
    return [str(n.message) for n in notification_manager.records if n.severity == "error"]


def test_calibrating_on_the_microscope_then_apply_sets_the_chosen_line_average(
    qtbot, core: CMMCorePlus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    widget = _widget(qtbot, core)
    assert widget.averaging.currentText() == "Detector.LineAverage"  # the command's default
    listed = [widget.averaging.itemText(i) for i in range(widget.averaging.count())]
    assert "Detector.Exposure" in listed
    assert "Detector.Binning" not in listed and "Detector.Rig" not in listed  # read-only, text
    assert not widget.apply_button.isEnabled()  # nothing calibrated yet
    with qtbot.waitSignal(widget.done, timeout=WAIT_MS):
        widget.run()

    assert widget.profile is not None
    chosen = widget.profile.chosen.text
    assert widget.status.text() == f"chosen: Detector.LineAverage = {chosen}"
    assert f"chosen: Detector.LineAverage = {chosen} (" in widget.chosen.text()  # the verdict
    assert 1 <= int(chosen) <= 8  # a line average the detector takes, at most the reference's 8
    assert widget.canvas.figure.axes  # the ladder plot is drawn
    assert widget.apply_button.isEnabled()
    assert list(tmp_path.iterdir()) == []  # the widget writes nothing

    core.setProperty("Detector", "LineAverage", 64)  # the user's usual setting, meanwhile
    widget.apply_button.click()
    assert str(core.getProperty("Detector", "LineAverage")) == chosen
    assert widget.status.text() == f"applied Detector.LineAverage = {chosen}"


def test_a_microscope_without_a_camera_is_a_notification_and_nothing_to_apply(qtbot) -> None:
    widget = _widget(qtbot, CMMCorePlus())  # nothing loaded, as the process's core before a config
    assert widget.averaging.count() == 0
    before = len(_errors())
    with qtbot.waitSignal(widget.done, timeout=WAIT_MS):
        widget.run()

    (message,) = _errors()[before:]
    assert message.startswith("no camera is set on the core")
    assert widget.profile is None
    assert not widget.apply_button.isEnabled()
