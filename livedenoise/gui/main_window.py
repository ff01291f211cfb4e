"""The live viewer: raw and denoised side by side, the tile mosaic, controls bound to the core."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import useq
from qtpy.QtCore import QTimer, Signal
from qtpy.QtGui import QCloseEvent
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QStatusBar,
    QTabWidget,
    QToolBar,
    QWidget,
)

from livedenoise.app import Acquisition, backend_names
from livedenoise.app.session import LIVE_WINDOW, SEQUENCE_WINDOW
from livedenoise.gui.calibration_tab import CalibrationTab
from livedenoise.gui.frame_view import FrameView
from livedenoise.imageio import Image, write_image
from livedenoise.pipeline.setup import SetupError, load_sequence

REFRESH_MS = 33  # about the screen's rate: more would only cost the acquisition CPU time


LATENCY_PARTS = ("wait", "window", "engine", "display")  # a frame's way from camera to screen


def latency_parts(stage_ms: dict[str, float]) -> str:
    """``mean: wait 40 + window 1 + engine 900 + display 20 ms``: what a frame's latency is made
    of (the ring, window assembly, the engine call, the screen), from the run's stage means."""
    parts = " + ".join(f"{name} {stage_ms[name]:.0f}" for name in LATENCY_PARTS if name in stage_ms)
    return f"mean: {parts} ms" if parts else "no frame denoised yet"


class MosaicTab(QWidget):
    """The tiled scan as it fills in, one channel at a time, per z or as a maximum projection."""

    def __init__(self, acquisition: Acquisition) -> None:
        super().__init__()
        self.acquisition = acquisition
        self.view = FrameView("mosaic (denoised)")
        self.channel = QComboBox()
        self.z = QComboBox()
        self.z.addItem("max projection", None)
        controls = QHBoxLayout()
        controls.addWidget(QLabel("channel"))
        controls.addWidget(self.channel)
        controls.addWidget(QLabel("z"))
        controls.addWidget(self.z)
        controls.addStretch(1)
        layout = QHBoxLayout(self)
        layout.addWidget(self.view, 1)
        side = QWidget()
        side.setLayout(controls)
        layout.addWidget(side)
        self._tiles = -1

    def refresh(self) -> None:
        mosaic = self.acquisition.mosaic
        if mosaic is None or mosaic.tiles == self._tiles:
            return
        self._tiles = mosaic.tiles
        for c in mosaic.channels:
            if self.channel.findData(c) < 0:
                self.channel.addItem(str(c), c)
        for z in mosaic.slices:
            if self.z.findData(z) < 0:
                self.z.addItem(str(z), z)
        channel = self.channel.currentData() if self.channel.count() else 0
        self.view.set_image(mosaic.image(channel or 0, self.z.currentData()))


class LiveWindow(QMainWindow):
    """Observes an ``Acquisition`` and forwards clicks to it; never builds a run or an engine itself.

    Frames and statistics are drawn on a timer at the screen's rate (newest wins); a run's failure
    is shown when its ``failed`` signal arrives, queued from the worker thread onto Qt's.
    """

    run_failed = Signal(object)  # the Exception a run failed with, carried onto the Qt thread

    def __init__(self, acquisition: Acquisition) -> None:
        super().__init__()
        self.acquisition = acquisition
        self.setWindowTitle("livedenoise")
        self.raw_view = FrameView("raw")
        self.denoised_view = FrameView("denoised")
        self.denoised_view.link(self.raw_view)
        live = QWidget()
        side_by_side = QHBoxLayout(live)
        side_by_side.addWidget(self.raw_view)
        side_by_side.addWidget(self.denoised_view)
        self.mosaic_tab = MosaicTab(acquisition)
        self.calibration_tab = CalibrationTab(acquisition)
        self.tabs = QTabWidget()
        self.tabs.addTab(live, "Live")
        self.tabs.addTab(self.mosaic_tab, "Mosaic")
        self.tabs.addTab(self.calibration_tab, "Calibration")
        self.setCentralWidget(self.tabs)
        self._build_controls()
        self.status = QLabel()
        self.status_bar = QStatusBar()
        self.status_bar.addWidget(self.status, 1)
        self.setStatusBar(self.status_bar)
        self.error_box: QMessageBox | None = None
        self.failure: str | None = None  # why the latest run failed, as its signal said
        self._shown_version = -1
        self._shown_denoised_s = 0.0
        self.run_failed.connect(self._show_failure)
        acquisition.events.failed.connect(self._failed_elsewhere)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.refresh)
        self._timer.start(REFRESH_MS)
        self.resize(1200, 700)

    # -- controls ----------------------------------------------------------------------------------

    def _build_controls(self) -> None:
        bar = QToolBar("acquisition")
        self.addToolBar(bar)
        self.live_button = QPushButton("Start live")
        self.live_button.setCheckable(True)
        self.live_button.toggled.connect(self._toggle_live)
        bar.addWidget(self.live_button)
        run = QPushButton("Run sequence…")
        run.clicked.connect(self._choose_sequence)
        bar.addWidget(run)
        snap = QPushButton("Snapshot")
        snap.clicked.connect(self.snapshot)
        bar.addWidget(snap)
        bar.addSeparator()
        model = QPushButton("Model…")
        model.clicked.connect(self._choose_model)
        bar.addWidget(model)
        self.backend = QComboBox()
        self.backend.addItems(backend_names())
        self.backend.setCurrentText(self.acquisition.backend)
        self.backend.currentTextChanged.connect(lambda b: setattr(self.acquisition, "backend", b))
        bar.addWidget(self.backend)
        bar.addWidget(QLabel(" window T "))
        self.window_size = QSpinBox()
        self.window_size.setRange(0, 64)
        self.window_size.setSpecialValueText("auto")  # 0: the acquisition's choice per run
        self.window_size.setToolTip(
            f"auto: {LIVE_WINDOW} in live mode (latency), {SEQUENCE_WINDOW} for a sequence"
        )
        self.window_size.setValue(self.acquisition.window or 0)
        self.window_size.valueChanged.connect(
            lambda t: setattr(self.acquisition, "window", t or None)
        )
        bar.addWidget(self.window_size)
        self.averaging: QDoubleSpinBox | None = None
        control = self.acquisition.averaging
        if control is not None and control.device is not None:
            bar.addWidget(QLabel(f" {control.name} "))
            self.averaging = QDoubleSpinBox()
            self.averaging.setDecimals(0 if control.integer else 2)
            low, high = control.limits or (control.base, 1e6)
            self.averaging.setRange(low, high)
            core = self.acquisition.core
            self.averaging.setValue(float(core.getProperty(control.device, control.name)))
            self.averaging.valueChanged.connect(self.acquisition.set_averaging)
            core.events.propertyChanged.connect(self._property_changed)
            bar.addWidget(self.averaging)

    def _property_changed(self, device: str, prop: str, value: str) -> None:
        control = self.acquisition.averaging
        if self.averaging is None or control is None:
            return
        if (device, prop) == (control.device, control.name):
            self.averaging.blockSignals(True)
            self.averaging.setValue(float(value))
            self.averaging.blockSignals(False)

    def _toggle_live(self, on: bool) -> None:
        try:
            if on:
                self.failure = None
                self.acquisition.start_live()
            else:
                self.acquisition.stop()
        except Exception as err:  # the user must see why, and the button must tell the truth
            self._error(str(err))
        self._sync_live_button()

    def _sync_live_button(self) -> None:
        live = self.acquisition.live
        if self.live_button.isChecked() != live:
            self.live_button.blockSignals(True)
            self.live_button.setChecked(live)
            self.live_button.blockSignals(False)
        self.live_button.setText("Stop live" if live else "Start live")

    def _choose_sequence(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "useq sequence", "", "Sequences (*.yaml *.yml *.json)"
        )
        if path:
            try:
                self.run_sequence(load_sequence(path))
            except SetupError as err:
                self._error(str(err))

    def run_sequence(self, sequence: useq.MDASequence) -> None:
        """Start ``sequence`` in the background; a tiled one brings the mosaic tab forward."""
        self.failure = None
        try:
            self.acquisition.start_sequence(sequence)
        except Exception as err:  # a run in progress, an existing store, a model that fails
            self._error(str(err))
            return
        if sequence.sizes.get("g", 0) > 1 or sequence.sizes.get("p", 0) > 1:
            self.tabs.setCurrentWidget(self.mosaic_tab)

    def _choose_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "model", "engines", "Models (*.safetensors)")
        if path:
            self.acquisition.model = Path(path)

    def snapshot(self) -> Path | None:
        """Save the frames on screen as one TIFF of two channels, raw then denoised (float32)."""
        latest = self.acquisition.latest
        if latest.raw is None:
            return None
        path = self.acquisition.out_dir / f"snapshot-{latest.version}.tif"
        raw = latest.raw.astype(np.float32)
        denoised = latest.denoised if latest.denoised is not None else np.zeros_like(raw)
        frames = np.stack([raw, denoised.astype(np.float32)])
        write_image(path, Image(frames, "CYX", channels=["raw", "denoised"]))
        self.status_bar.showMessage(f"saved {path}", 5000)
        return path

    def _failed_elsewhere(self, error: Exception) -> None:
        """``failed`` arrives on a worker thread: hand it to Qt's (a queued connection)."""
        self.run_failed.emit(error)

    def _show_failure(self, error: Exception) -> None:
        self.failure = str(error)
        self._error(self.failure)

    def _error(self, message: str) -> None:
        """Show ``message`` without blocking: the acquisition and the display go on."""
        if self.error_box is None:
            self.error_box = QMessageBox(QMessageBox.Icon.Warning, "livedenoise", "", parent=self)
        self.error_box.setText(message)
        self.error_box.open()

    # -- display -----------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Show the newest frames (if new) and the run's statistics; on the timer."""
        latest = self.acquisition.latest
        if latest.version != self._shown_version:
            self._shown_version = latest.version
            if latest.raw is not None:
                self.raw_view.set_image(latest.raw)
            if latest.denoised is not None and latest.denoised_s != self._shown_denoised_s:
                self._shown_denoised_s = latest.denoised_s
                self.denoised_view.set_image(latest.denoised)
                self._drawn(latest.denoised_s)
        if self.tabs.currentWidget() is self.mosaic_tab:
            self.mosaic_tab.refresh()
        elif self.tabs.currentWidget() is self.calibration_tab:
            self.calibration_tab.refresh()
        self._sync_live_button()
        self.status.setText(self._status_text())

    def _drawn(self, denoised_s: float) -> None:
        """A denoised frame is on screen: its time from the engine to here is the display's part
        of the latency, kept with the run's other stages."""
        if (pipeline := self.acquisition.pipeline) is not None:
            pipeline.stats.stage("display", time.perf_counter() - denoised_s)

    def _status_text(self) -> str:
        acquisition = self.acquisition
        pipeline, engine = acquisition.pipeline, acquisition.loaded_engine
        model = f"model {acquisition.model.name}"
        if pipeline is None:
            return f"idle · {model}"
        s = pipeline.stats.summary()
        text = (
            f"{'running' if acquisition.running else 'stopped'} · acquired {s.acquired} "
            f"({s.acquired_fps:.1f} fps) · denoised {s.denoised} ({s.denoised_fps:.1f} fps) · "
            f"latency p50 {s.latency_p50_ms:.0f} ms p99 {s.latency_p99_ms:.0f} ms "
            f"({latency_parts(s.stage_mean_ms)}) · "
            f"skipped {s.skipped} · lost {s.dropped} · {engine.name if engine else ''} · {model}"
        )
        if self.failure:
            text = f"FAILED: {self.failure} · {text}"
        return text

    def closeEvent(self, event: QCloseEvent | None) -> None:
        """Closing mid-run stops the acquisition at once and closes the store with every raw frame;
        frames still waiting for the engine stay raw-only (``livedenoise denoise`` can do them later)."""
        self._timer.stop()
        self.acquisition.stop_acquiring()
        self.acquisition.skip_backlog()
        self.acquisition.wait()
        self.acquisition.events.failed.disconnect(self._failed_elsewhere, missing_ok=True)
        if event is not None:
            event.accept()
