"""The calibration view: run a calibration, watch quality vs averages fill in, apply the choice."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

import pyqtgraph as pg
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from livedenoise.calibration.analysis import Rung
from livedenoise.calibration.breaking import Tolerance
from livedenoise.calibration.choose import device_control, reference_value
from livedenoise.calibration.errors import CalibrationError
from livedenoise.calibration.profile import PROFILE, Profile, apply_profile, load_profile
from livedenoise.calibration.repeats import acquire_repeats
from livedenoise.calibration.run import DEFAULT_REFERENCE_AVERAGES, calibrate, save_calibration
from livedenoise.gui.controller import RunController
from livedenoise.inference import load_engine


class CalibrationTab(QWidget):
    """Reads the running calibration's rungs on the window's timer; the work runs in a thread."""

    def __init__(self, controller: RunController, out_dir: Path = Path("calibration")) -> None:
        super().__init__()
        self.controller = controller
        self.out_dir = out_dir
        self.rungs: list[Rung] = []
        self.profile: Profile | None = None
        self.profile_path: Path | None = None
        self.message = ""
        self._thread: threading.Thread | None = None
        self._drawn = (-1, None)

        self.plot = pg.PlotWidget(labels={"bottom": "frames averaged (n)", "left": "PSNR (dB)"})
        self.plot.addLegend()
        self.raw_curve = self.plot.plot([], [], pen="w", symbol="o", name="raw")
        self.denoised_curve = self.plot.plot([], [], pen="g", symbol="o", name="denoised")
        self.breaking_line = pg.InfiniteLine(
            angle=90, pen=pg.mkPen("r", style=Qt.PenStyle.DashLine), label="breaking point"
        )
        self.chosen_line = pg.InfiniteLine(angle=90, pen=pg.mkPen("y"), label="chosen")
        self.verdict = QLabel("no calibration yet")
        self.verdict.setWordWrap(True)
        self.repeats = QSpinBox()
        self.repeats.setRange(8, 256)
        self.repeats.setValue(32)
        self.run_button = QPushButton("Calibrate here")
        self.run_button.clicked.connect(self.start)
        load = QPushButton("Load profile…")
        load.clicked.connect(self._choose_profile)
        self.apply_button = QPushButton("Apply")
        self.apply_button.setEnabled(False)
        self.apply_button.clicked.connect(self.apply)
        buttons = QHBoxLayout()
        for widget in (QLabel("repeats"), self.repeats, self.run_button, load, self.apply_button):
            buttons.addWidget(widget)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.verdict)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Record repeats of the current field and calibrate, in the background."""
        if self.running or self.controller.running:
            self.message = "stop the running acquisition before calibrating"
            return
        self.rungs, self.profile, self.profile_path = [], None, None
        self.message = "recording repeats…"
        self._thread = threading.Thread(target=self._calibrate, args=(self.repeats.value(),))
        self._thread.start()

    def _calibrate(self, count: int) -> None:
        core, model = self.controller.core, self.controller.model
        try:
            control = device_control(core)
            size = (core.getImageHeight(), core.getImageWidth())
            engine = load_engine(model, self.controller.backend, window=1, frame_size=size)
            repeats = acquire_repeats(core, count, control)
            self.message = "denoising the ladder…"
            reference = reference_value(control, None, DEFAULT_REFERENCE_AVERAGES)
            profile = calibrate(
                engine,
                str(model),
                repeats,
                control,
                reference,
                Tolerance(),
                1.0,
                lambda value: control.frame_ms(core, value),
                self.rungs.append,
            )
            directory = self.out_dir / f"viewer-{datetime.now():%Y%m%d-%H%M%S}"
            save_calibration(directory, profile)
            self.profile, self.profile_path = profile, directory / PROFILE
            self.message = f"saved {directory}"
        except Exception as err:  # shown to the user; nothing half-written (save is atomic)
            self.message = f"calibration failed: {err}"

    def _choose_profile(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "profile", str(self.out_dir), "Profiles (*.json)"
        )
        if path:
            self.show_profile(Path(path))

    def show_profile(self, path: Path) -> None:
        try:
            self.profile, self.profile_path = load_profile(path), Path(path)
        except CalibrationError as err:
            self.message = str(err)
            return
        self.rungs = list(self.profile.measurement.rungs)
        self.message = f"loaded {path}"

    def apply(self) -> None:
        """Set the profile's averaging property on the core (one click)."""
        if self.profile_path is None:
            return
        try:
            profile = apply_profile(self.controller.core, self.profile_path)
            self.message = f"applied {profile.control_label} = {profile.chosen.text}"
        except CalibrationError as err:
            self.message = str(err)

    def refresh(self) -> None:
        """Redraw when a rung or the verdict arrived (called on the window's timer)."""
        state = (len(self.rungs), self.profile)
        if state != self._drawn:
            self._drawn = state
            n = [r.averages for r in self.rungs]
            self.raw_curve.setData(n, [r.raw.psnr.mean for r in self.rungs])
            self.denoised_curve.setData(n, [r.denoised.psnr.mean for r in self.rungs])
            for line in (self.breaking_line, self.chosen_line):
                if line.scene() is not None:
                    self.plot.removeItem(line)
            if self.profile is not None:
                self.breaking_line.setValue(self.profile.verdict.breaking_point)
                self.chosen_line.setValue(self.profile.chosen.averages)
                self.plot.addItem(self.breaking_line)
                self.plot.addItem(self.chosen_line)
        p = self.profile
        verdict = (
            f"breaking point {p.verdict.breaking_point:g} averages; chosen {p.control_label} = "
            f"{p.chosen.text} ({p.time_saved:.0%} of the reference frame time saved)"
            if p
            else ""
        )
        self.verdict.setText(
            " · ".join(x for x in (verdict, self.message) if x) or "no calibration yet"
        )
        self.apply_button.setEnabled(p is not None and p.device is not None and not self.running)
        self.run_button.setEnabled(not self.running)
