"""napari "Calibrate" dock widget: the fewest averages a model keeps safe, from a layer of repeats.

The layer holds repeated frames of one unchanging field (T x Y x X, as recorded at the fastest
setting); the work is ``livedenoise.app.calibration.calibrate_repeats``, what ``livedenoise calibrate
--from-stack`` does to a file holding them. The widget shows the ladder plot (quality vs averages,
the breaking point, the choice) and the chosen number of averages. Calibrating on the core attached
by the "Live" widget is not offered yet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtWidgets import QDoubleSpinBox, QLabel

from livedenoise.app.calibration import (
    CalibrationRequest,
    Profile,
    calibrate_repeats,
    figure,
    summary,
)
from livedenoise.napari._task import TaskWidget

if TYPE_CHECKING:
    from napari.components import ViewerModel
    from napari.layers import Image


class CalibrateWidget(TaskWidget):
    """Calibrate on the chosen layer's repeats; ``profile`` holds the last result."""

    def __init__(self, napari_viewer: ViewerModel) -> None:
        self.profile: Profile | None = None
        super().__init__(napari_viewer, "Calibrate", cancellable=False)

    def add_rows(self) -> None:
        self.frame_ms = QDoubleSpinBox()
        self.frame_ms.setRange(0, 1e6)
        self.frame_ms.setSpecialValueText("unknown")  # 0: frame times are not reported
        self.frame_ms.setSuffix(" ms")
        self.frame_ms.setToolTip("the repeats' frame time, to report the time each setting takes")
        self.form.addRow("frame time", self.frame_ms)
        self.chosen = QLabel("")
        self.chosen.setWordWrap(True)
        self.canvas = FigureCanvasQTAgg(Figure(figsize=(8, 4)))
        self.canvas.setMinimumHeight(320)
        self.form.addRow(self.chosen)
        self.form.addRow(self.canvas)

    def run(self) -> None:
        """Calibrate on the chosen layer in a worker thread; the result is drawn when it ends."""
        layer = self.chosen_layer()
        if layer is None:
            return
        request = CalibrationRequest(
            model=self.model.currentText(), backend=self.backend.currentText()
        )
        frames, name = repeats(layer), layer.name
        frame_ms = self.frame_ms.value() or None
        self.start(
            lambda events: calibrate_repeats(
                frames, request, name=name, frame_ms=frame_ms, events=events
            ),
            self._show,
        )

    def _show(self, profile: Profile) -> None:
        self.profile = profile
        self.chosen.setText("\n".join(summary(profile)))
        canvas = FigureCanvasQTAgg(figure(profile))  # sized to the dock by Qt, as the empty one
        canvas.setMinimumHeight(self.canvas.minimumHeight())
        self.form.replaceWidget(self.canvas, canvas)
        self.canvas.deleteLater()
        self.canvas = canvas
        self.status.setText(f"chosen: {profile.chosen.text} average(s)")


def repeats(layer: Image) -> np.ndarray:
    """The layer's frames as ``[R, H, W]``: axes of length 1 (a single z-slice or channel) folded
    away; any other shape is passed on for the calibration to refuse with its reason."""
    data = np.asarray(layer.data)
    stacked = [n for n in data.shape[:-2] if n > 1]
    return data.reshape(*stacked, *data.shape[-2:]) if len(stacked) <= 1 else data
