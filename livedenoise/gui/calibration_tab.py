"""The calibration view: run a calibration, watch quality vs averages fill in, read the verdict (the same
lines the command prints and the report opens with), apply the choice."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Protocol

import pyqtgraph as pg
from pymmcore_plus import CMMCorePlus
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

from livedenoise.app.calibration import CalibrationRequest, Recording, calibrate_on_core
from livedenoise.calibration.analysis import Rung
from livedenoise.calibration.errors import CalibrationError
from livedenoise.calibration.profile import (
    PROFILE,
    Profile,
    apply_profile,
    differences,
    load_profile,
)
from livedenoise.calibration.report import summary
from livedenoise.events import Events, Progress
from livedenoise.model import ModelFileError


class Controller(Protocol):
    """What the tab needs of the viewer's run controller: the core, the model and backend in use,
    and whether an acquisition holds the core."""

    core: CMMCorePlus
    model: Path
    backend: str

    @property
    def running(self) -> bool: ...


class CalibrationTab(QWidget):
    """Reads the running calibration's rungs on the window's timer; the work runs in a thread, whose
    events (progress, rungs, the result or failure) the tab stores as they come."""

    def __init__(self, controller: Controller, out_dir: Path = Path("calibration")) -> None:
        super().__init__()
        self.controller = controller
        self.out_dir = out_dir
        self.rungs: list[Rung] = []
        self.profile: Profile | None = None
        self.profile_path: Path | None = None
        self.message = ""
        self._thread: threading.Thread | None = None
        self._drawn: tuple[int, Profile | None] = (-1, None)

        self.plot = pg.PlotWidget(labels={"bottom": "frames averaged (n)", "left": "PSNR (dB)"})
        self.plot.addLegend()
        self.raw_curve = self.plot.plot([], [], pen="w", symbol="o", name="raw")
        self.denoised_curve = self.plot.plot([], [], pen="g", symbol="o", name="denoised")
        self.breaking_line = pg.InfiniteLine(
            angle=90, pen=pg.mkPen("r", style=Qt.PenStyle.DashLine), label="breaking point"
        )
        self.chosen_line = pg.InfiniteLine(angle=90, pen=pg.mkPen("y"), label="chosen")
        # the criterion's target (its guide): a level line, or a curve over the ladder
        self.guide_line = pg.InfiniteLine(
            angle=0, pen=pg.mkPen("w", style=Qt.PenStyle.DotLine), label="target"
        )
        self.guide_curve = self.plot.plot([], [], pen=pg.mkPen("w", style=Qt.PenStyle.DotLine))
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
        controller = self.controller
        request = CalibrationRequest(model=controller.model, backend=controller.backend)
        directory = self.out_dir / f"viewer-{datetime.now():%Y%m%d-%H%M%S}"
        events = Events()
        events.progress.connect(self._progress)
        events.measured.connect(self._measured)
        events.finished.connect(lambda profile: self._saved(profile, directory))
        events.failed.connect(self._failed)
        try:
            calibrate_on_core(
                controller.core, request, Recording(repeats=count), directory, events=events
            )
        except Exception:  # shown through events.failed; nothing half-written (save is atomic)
            return

    def _progress(self, progress: Progress) -> None:
        self.message = f"{progress.what}… {progress.done}/{progress.total}"

    def _measured(self, rung: Rung) -> None:
        self.rungs.append(rung)

    def _saved(self, profile: Profile, directory: Path) -> None:
        self.profile, self.profile_path = profile, directory / PROFILE
        self.message = f"saved {directory}"

    def _failed(self, error: Exception) -> None:
        self.message = f"calibration failed: {error}"

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
        core = self.controller.core
        try:  # the click is the user's choice: applied, with what differs said beside it
            profile = apply_profile(core, self.profile_path, accept=True)
            differ = differences(profile, core, self.controller.model)
        except (CalibrationError, ModelFileError) as err:
            self.message = str(err)
            return
        self.message = f"applied {profile.control_label} = {profile.chosen.text}" + (
            f" (measured under other conditions: {'; '.join(differ)})" if differ else ""
        )

    def _guide(self, profile: Profile) -> list[pg.InfiniteLine]:
        """Draw what the profile's criterion judged the denoised PSNR against: a single target as
        the level line (returned, to be added), a curve over the ladder as the dotted curve."""
        guide = profile.verdict.criterion.guide(profile.measurement, "psnr")
        if len(guide.averages) > 1:
            self.guide_curve.setData(guide.averages, guide.mean)
            return []
        self.guide_line.setValue(guide.mean[0])
        self.guide_line.label.setFormat(guide.label)
        return [self.guide_line]

    def refresh(self) -> None:
        """Redraw when a rung or the verdict arrived (called on the window's timer)."""
        state = (len(self.rungs), self.profile)
        if state != self._drawn:
            self._drawn = state
            n = [r.averages for r in self.rungs]
            self.raw_curve.setData(n, [r.raw.psnr.mean for r in self.rungs])
            self.denoised_curve.setData(n, [r.denoised.psnr.mean for r in self.rungs])
            for line in (self.breaking_line, self.chosen_line, self.guide_line):
                if line.scene() is not None:
                    self.plot.removeItem(line)
            self.guide_curve.setData([], [])
            if self.profile is not None:
                point = self.profile.verdict.breaking_point
                self.chosen_line.setValue(self.profile.chosen.averages)
                lines = [self.chosen_line, *self._guide(self.profile)]
                if point is not None:
                    self.breaking_line.setValue(point)
                    lines.append(self.breaking_line)
                for line in lines:
                    self.plot.addItem(line)
        p = self.profile
        text = [*summary(p)] if p else []
        self.verdict.setText(
            "\n".join(x for x in (*text, self.message) if x) or "no calibration yet"
        )
        self.apply_button.setEnabled(p is not None and p.device is not None and not self.running)
        self.run_button.setEnabled(not self.running)
