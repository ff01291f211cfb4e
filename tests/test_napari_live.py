"""The napari Live widget and ``app.attach``: runs started on the core by someone else (as
napari-micromanager starts them, ``core.mda.run(sequence)``) are denoised as they arrive.

The simulated microscope with 64x64 frames and no waiting; napari's viewer model (offscreen Qt has
no OpenGL for napari's canvas, see tests/test_napari_reader.py). Each run is waited for (``core.mda.run``
returns once the run's store is closed), then the frames queued for napari's thread are drawn.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from unittest.mock import Mock

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
import useq

pytest.importorskip("napari")

from napari.components import ViewerModel
from napari.utils.notifications import notification_manager
from psygnal import SignalInstance
from pymmcore_plus import CMMCorePlus

from livedenoise.app.attach import Attached, attach
from livedenoise.napari._live import DENOISED_LAYER, RAW_LAYER, LiveWidget
from livedenoise.pipeline.live import RunError
from livedenoise.pipeline.setup import apply_assignments
from livedenoise.pipeline.stats import RunSummary
from livedenoise.storage.run_store import StoreExists, unwritten_value
from livedenoise.storage.stored import open_run

SEQUENCE = useq.MDASequence(channels=["FITC", "DAPI"], time_plan={"interval": 0, "loops": 3})
FRAMES = 6  # 3 time points x 2 channels


def stored_frames(store: Path) -> int:
    """Raw frames written to a store, read back: planes that hold data (never-written planes read
    as the dtype's largest value everywhere)."""
    run = open_run(store)
    planes = [plane for raw in run.raw for plane in np.asarray(raw).reshape(-1, *raw.shape[-2:])]
    return sum(not np.all(plane == unwritten_value(plane.dtype)) for plane in planes)


def runner_receivers(core: CMMCorePlus) -> int:
    """Receivers connected to the core's runner signals (Qt signals where Qt is installed)."""
    signals = core.mda.events
    count = len if isinstance(signals.frameReady, SignalInstance) else signals.receivers
    return sum(
        count(s)
        for s in (
            signals.sequenceStarted,
            signals.frameReady,
            signals.sequenceCanceled,
            signals.sequenceFinished,
        )
    )


@pytest.fixture
def widget(qtbot, sim_core: CMMCorePlus) -> LiveWidget:
    widget = LiveWidget(ViewerModel(), core=sim_core)
    qtbot.addWidget(widget)
    widget.model.setCurrentText("sim-confocal-small")
    widget.backend.setCurrentText("onnxruntime")
    widget.window_frames.setValue(2)
    return widget


def click_attach(qtbot, widget: LiveWidget) -> None:
    """Attach, and wait until the engine is loaded (in a thread: napari stays responsive)."""
    widget.button.click()
    assert widget.button.text() == "Attaching…" and not widget.button.isEnabled()
    qtbot.waitUntil(widget.button.isEnabled, timeout=120_000)


def run_and_draw(qtbot, widget: LiveWidget, core: CMMCorePlus) -> None:
    """A run started from the core itself in a thread of its own, as napari-micromanager starts
    one, waited for; then everything it queued for napari's thread drawn. Its store is complete
    when the run's thread ends: the frames never wait for napari's thread."""
    core.run_mda(SEQUENCE).join()
    attached = widget.attached
    assert attached is not None
    qtbot.waitUntil(lambda: widget._shown_version == attached.latest.version)


def test_the_live_widget_shows_each_run_denoised_and_stores_every_raw_frame(
    qtbot, widget: LiveWidget, sim_core: CMMCorePlus, tmp_path: Path
) -> None:
    before = runner_receivers(sim_core)
    store = tmp_path / "run.ome.zarr"
    widget.store.setText(str(store))
    click_attach(qtbot, widget)
    assert widget.attached is not None and widget.button.text() == "Detach"

    sim_core.run_mda(SEQUENCE).join()
    assert stored_frames(store) == FRAMES
    qtbot.waitUntil(lambda: widget._shown_version == widget.attached.latest.version)
    layers = widget.viewer.layers
    denoised, raw = layers[DENOISED_LAYER].data, layers[RAW_LAYER].data
    assert denoised.shape == raw.shape == (64, 64)
    assert np.isfinite(denoised).all() and not np.array_equal(denoised, raw)
    widget._show_stats()  # what its timer shows
    assert f"acquired {FRAMES} · denoised" in widget.stats.text()

    run_and_draw(qtbot, widget, sim_core)  # the next run: drawn again, stored beside the first
    assert layers[DENOISED_LAYER].data is not denoised
    second = widget.attached.stores[1]
    assert second.parent == tmp_path and stored_frames(second) == FRAMES

    widget.button.click()  # Detach
    assert widget.attached is None and widget.button.text() == "Attach"
    assert runner_receivers(sim_core) == before
    shown = layers[DENOISED_LAYER].data
    sim_core.run_mda(SEQUENCE).join()  # a run after detaching: no layer drawn, no store written
    qtbot.wait(50)
    assert layers[DENOISED_LAYER].data is shown
    assert sorted(tmp_path.iterdir()) == sorted([store, second])


def test_a_failing_detector_is_a_notification_and_its_frames_are_stored(
    qtbot, widget: LiveWidget, sim_core: CMMCorePlus, tmp_path: Path
) -> None:
    apply_assignments(sim_core, ["Detector.FailAfterFrames=3"])
    notified = Mock()
    notification_manager.notification_ready.connect(notified)
    store = tmp_path / "run.ome.zarr"
    widget.store.setText(str(store))
    click_attach(qtbot, widget)
    try:
        run_and_draw(qtbot, widget, sim_core)
        qtbot.waitUntil(lambda: notified.called)
    finally:
        notification_manager.notification_ready.disconnect(notified)
        widget.detach()
    message = notified.call_args.args[0].message
    assert "3 of 6 frames" in message and str(store) in message
    assert stored_frames(store) == 3


def test_attaching_to_a_core_without_a_camera_is_a_notification(qtbot) -> None:
    core = CMMCorePlus()  # nothing loaded, as the process's core is before a configuration
    widget = LiveWidget(ViewerModel(), core=core)
    qtbot.addWidget(widget)
    notified = Mock()
    notification_manager.notification_ready.connect(notified)
    try:
        click_attach(qtbot, widget)
    finally:
        notification_manager.notification_ready.disconnect(notified)
    assert widget.attached is None and widget.button.text() == "Attach"
    assert "no camera" in notified.call_args.args[0].message


def test_a_widget_closed_while_attached_lets_go_of_the_core(
    qtbot, sim_core: CMMCorePlus, tmp_path: Path
) -> None:
    before = runner_receivers(sim_core)
    viewer = ViewerModel()
    widget = LiveWidget(viewer, core=sim_core)
    widget.model.setCurrentText("sim-confocal-small")
    widget.backend.setCurrentText("onnxruntime")
    widget.store.setText(str(tmp_path / "run.ome.zarr"))
    click_attach(qtbot, widget)
    assert runner_receivers(sim_core) > before

    widget.deleteLater()  # napari deletes a dock widget its user closes
    qtbot.waitUntil(lambda: runner_receivers(sim_core) == before)
    sim_core.run_mda(SEQUENCE).join()  # a later run writes nothing, draws nothing
    assert list(tmp_path.iterdir()) == [] and len(viewer.layers) == 0


def test_attach_refuses_a_store_that_exists_before_loading_anything(
    sim_core: CMMCorePlus, tmp_path: Path
) -> None:
    before = runner_receivers(sim_core)
    store = tmp_path / "run.ome.zarr"
    store.mkdir()
    with pytest.raises(StoreExists) as refused:
        attach(sim_core, "no-such-model", store=store)
    assert refused.value.option == "store" and refused.value.path == store
    assert runner_receivers(sim_core) == before


class Failing:
    """An engine that cannot denoise (a GPU gone, a broken model)."""

    def denoise(self, window: np.ndarray) -> np.ndarray:
        raise RuntimeError("the GPU is gone")


def test_a_failing_engine_fails_the_run_and_loses_no_raw_frame(
    sim_core: CMMCorePlus, tmp_path: Path
) -> None:
    store = tmp_path / "run.ome.zarr"
    attached = Attached(sim_core, Failing(), window=1, store=store)
    failed, finished = Mock(), Mock()
    attached.events.failed.connect(failed)
    attached.events.finished.connect(finished)
    sim_core.mda.run(SEQUENCE)
    attached.detach()

    failed.assert_called_once()
    (error,) = failed.call_args.args
    assert isinstance(error, RunError) and "the GPU is gone" in str(error)
    (summary,) = finished.call_args.args
    assert isinstance(summary, RunSummary) and summary.denoised == 0
    assert stored_frames(store) == FRAMES


class Halving:
    def denoise(self, window: np.ndarray) -> np.ndarray:
        return window.astype(np.float32) / 2


def test_without_a_store_a_run_leaves_nothing_on_disk(
    sim_core: CMMCorePlus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    attached = Attached(sim_core, Halving(), window=1)
    denoised = Mock()
    attached.events.frameDenoised.connect(denoised)
    sim_core.mda.run(SEQUENCE)
    attached.detach()

    assert denoised.called and attached.last_summary is not None
    assert attached.last_summary.acquired == FRAMES and attached.stores == []
    assert list(tmp_path.iterdir()) == []
