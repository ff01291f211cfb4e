"""The live viewer, offscreen: live frames in both views, the mosaic, closing mid-run."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
import useq
from qtpy.QtCore import Qt

from livedenoise.app import Acquisition, RunRequest
from livedenoise.gui.main_window import LiveWindow
from livedenoise.pipeline.setup import apply_assignments
from livedenoise.storage import open_run


@pytest.fixture
def window(qtbot, sim_core, small_model_path: Path, tmp_path: Path):
    apply_assignments(sim_core, ["Detector.TimeScale=1"])
    request = RunRequest(
        model=small_model_path, backend="torch", window=2, out_dir=tmp_path / "runs"
    )
    acquisition = Acquisition(sim_core, request)
    win = LiveWindow(acquisition)
    qtbot.addWidget(win)
    win.show()
    yield win
    acquisition.stop()


def test_live_run_fills_both_views_and_denoised_differs(qtbot, window) -> None:
    window.live_button.setChecked(True)
    assert window.acquisition.running
    qtbot.waitUntil(
        lambda: window.raw_view.data is not None and window.denoised_view.data is not None,
        timeout=20_000,
    )
    raw, denoised = window.raw_view.data, window.denoised_view.data
    assert raw.shape == denoised.shape == (64, 64)
    assert not np.allclose(raw, denoised)
    assert "fps" in window.status.text()
    window.live_button.setChecked(False)
    assert not window.acquisition.running


def test_status_line_says_what_the_latency_is_made_of(qtbot, window) -> None:
    """Wait in the ring, window assembly, the engine call and the screen, from the run's stages."""
    window.live_button.setChecked(True)
    qtbot.waitUntil(lambda: window.denoised_view.data is not None, timeout=20_000)
    qtbot.waitUntil(lambda: "display" in window.status.text(), timeout=5_000)
    text = window.status.text()
    latency = text[text.index("latency") :]
    for part in ("p50", "p99", "wait", "window", "engine", "display"):
        assert part in latency.split("·")[0], text
    stages = window.acquisition.pipeline.stats.summary().stage_mean_ms
    assert {"wait", "engine", "display"} <= set(stages)
    window.live_button.setChecked(False)


def test_grid_run_fills_the_mosaic_tile_by_tile(qtbot, window) -> None:
    sequence = useq.MDASequence(grid_plan={"rows": 2, "columns": 2, "overlap": 25})
    window.run_sequence(sequence)
    assert window.tabs.currentWidget() is window.mosaic_tab
    qtbot.waitUntil(lambda: not window.acquisition.running, timeout=30_000)
    window.refresh()
    mosaic = window.acquisition.mosaic
    assert mosaic is not None and mosaic.tiles == 4
    shown = window.mosaic_tab.view.data
    assert shown.shape == (112, 112)  # 2 x 64 px tiles minus the 16 px overlap, both ways
    # Each tile's own corner (no neighbour overlaps it) shows that tile's denoised frame, where its
    # stage position puts it: +x to the right, +y down; tiles are 64 px, 48 px apart.
    stored = open_run(window.acquisition.pipeline.store.path)
    for p, (top, left) in enumerate([(48, 0), (48, 48), (0, 48), (0, 0)]):
        tile = np.asarray(stored.denoised[p][0, 0, 0])
        rows = slice(16, 64) if top else slice(0, 48)
        cols = slice(16, 64) if left else slice(0, 48)
        np.testing.assert_allclose(
            shown[top : top + 64, left : left + 64][rows, cols],
            tile[rows, cols],
            rtol=1e-5,
            atol=1e-3,
        )


def test_closing_mid_run_stops_and_leaves_a_readable_store(qtbot, window) -> None:
    apply_assignments(window.acquisition.core, ["Detector.LineAverage=8"])
    window.run_sequence(useq.MDASequence(time_plan={"interval": 0, "loops": 500}))
    qtbot.waitUntil(lambda: window.acquisition.latest.raw is not None, timeout=20_000)
    window.close()
    assert not window.acquisition.running
    store = window.acquisition.pipeline.store.path
    run = open_run(store)
    n = run.attrs["summary"]["acquired"]
    assert 0 < n < 500 and run.raw[0].shape[0] == n


def test_calibration_view_shows_a_profile_and_applies_it(qtbot, window, tmp_path: Path) -> None:
    """A profile's curve is drawn, its choice marked, and one click sets the core's property."""
    import json

    root = Path(__file__).resolve().parents[1]
    profile = json.loads((root / "calibration" / "tirf" / "profile.json").read_text())
    # the TIRF profile was calibrated offline; give it this microscope's averaging property
    profile.update(device="Detector", property="LineAverage")
    profile["chosen"].update(value=5, text="5", averages=5)
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))

    tab = window.calibration_tab
    window.tabs.setCurrentWidget(tab)
    tab.show_profile(path)
    window.refresh()
    xs, ys = tab.denoised_curve.getData()
    rungs = profile["measurement"]["rungs"]
    assert list(xs) == [r["averages"] for r in rungs]
    assert list(ys) == pytest.approx([r["denoised"]["psnr"]["mean"] for r in rungs])
    assert tab.chosen_line.value() == 5 and tab.apply_button.isEnabled()
    assert window.acquisition.core.getProperty("Detector", "LineAverage") != 5
    qtbot.mouseClick(tab.apply_button, Qt.MouseButton.LeftButton)
    assert int(window.acquisition.core.getProperty("Detector", "LineAverage")) == 5
    window.refresh()
    assert "applied Detector.LineAverage = 5" in tab.verdict.text()


class FailingEngine:
    """A real engine whose every denoising fails, as a broken GPU would."""

    def __init__(self, engine) -> None:
        self.engine = engine

    def __getattr__(self, name: str):
        return getattr(self.engine, name)

    def denoise(self, window: np.ndarray) -> np.ndarray:
        raise RuntimeError("the GPU fell off the bus")


def test_viewer_shows_a_failure_when_the_run_signals_it(
    qtbot, sim_core, small_model_path: Path, tmp_path: Path
) -> None:
    from livedenoise.inference import load_engine

    request = RunRequest(model=small_model_path, backend="torch", out_dir=tmp_path)
    engine = FailingEngine(load_engine(small_model_path, "torch"))
    acquisition = Acquisition(sim_core, request, engine)
    win = LiveWindow(acquisition)
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.run_failed, timeout=30_000) as failure:
        win.run_sequence(useq.MDASequence(time_plan={"interval": 0, "loops": 5}))
    assert "the GPU fell off the bus" in str(failure.args[0])
    qtbot.waitUntil(lambda: win.error_box is not None and win.error_box.isVisible(), timeout=5_000)
    assert "the GPU fell off the bus" in win.error_box.text()
    qtbot.waitUntil(lambda: not acquisition.running, timeout=30_000)
    win.refresh()
    assert win.status.text().startswith("FAILED: denoising frame")
    assert open_run(acquisition.last_out).attrs["summary"]["acquired"] >= 1


def test_snapshot_saves_raw_and_denoised_as_two_channels(qtbot, window) -> None:
    from livedenoise.imageio import read_image

    window.live_button.setChecked(True)
    qtbot.waitUntil(lambda: window.acquisition.latest.denoised is not None, timeout=20_000)
    window.live_button.setChecked(False)
    path = window.snapshot()
    latest = window.acquisition.latest
    image = read_image(path)
    assert image.axes == "CYX"
    np.testing.assert_array_equal(image.data[0], latest.raw)
    np.testing.assert_array_equal(image.data[1], latest.denoised)
