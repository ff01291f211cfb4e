"""napari "Calibrate" dock widget: the fewest averages a model keeps safe, from a layer of repeats
or on the microscope, and that setting applied to the microscope on request.

From a layer: it holds repeated frames of one unchanging field (T x Y x X, as recorded at the
fastest setting); the work is ``livedenoise.app.calibration.calibrate_repeats``, what ``livedenoise
calibrate --from-stack`` does to a file holding them. On the microscope: the repeats of the current
field are recorded on the process's core (``CMMCorePlus.instance()``, the one napari-micromanager
and pymmcore-gui drive) with ``calibrate_on_core``, what ``livedenoise calibrate`` does; Apply then
sets the chosen value of the varied property there (``apply_chosen``). Either way the widget shows
the ladder plot (quality vs averages, the breaking point, the choice) and the chosen setting, and
writes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from pymmcore_plus import CMMCorePlus
from qtpy.QtWidgets import QComboBox, QDoubleSpinBox, QLabel, QPushButton, QSpinBox

from livedenoise.app.calibration import (
    CalibrationRequest,
    Profile,
    Recording,
    apply_chosen,
    averaging_properties,
    calibrate_on_core,
    calibrate_repeats,
    figure,
    summary,
)
from livedenoise.errors import LivedenoiseError
from livedenoise.napari._task import TaskWidget, notify

if TYPE_CHECKING:
    from napari.components import ViewerModel
    from napari.layers import Image

LAYER = "image layer"
MICROSCOPE = "microscope"


class CalibrateWidget(TaskWidget):
    """Calibrate on the chosen source; ``profile`` holds the last result.

    ``core``: the microscope's core; by default the process's (``CMMCorePlus.instance()``), looked
    up when the microscope is chosen and on each calibration.
    """

    def __init__(self, napari_viewer: ViewerModel, core: CMMCorePlus | None = None) -> None:
        self.profile: Profile | None = None
        self._core = core
        self._calibrated: CMMCorePlus | None = None  # the core the profile was measured on
        super().__init__(napari_viewer, "Calibrate", cancellable=False)

    def add_rows(self) -> None:
        self.source = QComboBox()
        self.source.addItems([LAYER, MICROSCOPE])
        self.source.setToolTip(
            "repeats of one field in an image layer, or recorded now on this process's microscope"
        )
        self.form.insertRow(0, "source", self.source)
        self.frame_ms = QDoubleSpinBox()
        self.frame_ms.setRange(0, 1e6)
        self.frame_ms.setSpecialValueText("unknown")  # 0: frame times are not reported
        self.frame_ms.setSuffix(" ms")
        self.frame_ms.setToolTip("the repeats' frame time, to report the time each setting takes")
        self.form.addRow("frame time", self.frame_ms)
        self.averaging = QComboBox()
        self.averaging.setEditable(True)  # any DEVICE.PROPERTY of the core
        self.averaging.setToolTip(
            "DEVICE.PROPERTY that sets averaging; first: the camera's LineAverage, else its "
            "Exposure"
        )
        self.form.addRow("averaging property", self.averaging)
        self.repeats = QSpinBox()
        self.repeats.setRange(1, 4096)  # the calibration says what is too few
        self.repeats.setValue(64)
        self.repeats.setToolTip("repeated frames of the current field to record")
        self.form.addRow("repeats", self.repeats)
        self.chosen = QLabel("")
        self.chosen.setWordWrap(True)
        self.apply_button = QPushButton("Apply")
        self.apply_button.setToolTip("set the chosen setting on the microscope it was measured on")
        self.apply_button.setEnabled(False)
        self.apply_button.clicked.connect(self.apply)
        self.canvas = FigureCanvasQTAgg(Figure(figsize=(8, 4)))
        self.canvas.setMinimumHeight(320)
        self.form.addRow(self.chosen)
        self.form.addRow(self.apply_button)
        self.form.addRow(self.canvas)
        self.source.currentTextChanged.connect(self._choose_source)
        self._choose_source(LAYER)

    @property
    def core(self) -> CMMCorePlus:
        return self._core or CMMCorePlus.instance()

    def _choose_source(self, source: str) -> None:
        """Enable the chosen source's rows; the microscope's properties are listed afresh."""
        on_core = source == MICROSCOPE
        self.layer.setEnabled(not on_core)
        self.frame_ms.setEnabled(not on_core)  # the core reports its own
        self.averaging.setEnabled(on_core)
        self.repeats.setEnabled(on_core)
        if on_core:
            self.averaging.clear()
            self.averaging.addItems(averaging_properties(self.core))

    def run(self) -> None:
        """Calibrate on the chosen source in a worker thread; the result is drawn when it ends."""
        request = CalibrationRequest(
            model=self.model.currentText(), backend=self.backend.currentText()
        )
        if self.source.currentText() == MICROSCOPE:
            self._run_on_core(request)
            return
        layer = self.chosen_layer()
        if layer is None:
            return
        frames, name = repeats(layer), layer.name
        frame_ms = self.frame_ms.value() or None
        self._forget_core()
        self.start(
            lambda events: calibrate_repeats(
                frames, request, name=name, frame_ms=frame_ms, events=events
            ),
            lambda profile: self._show(profile, None),
        )

    def _run_on_core(self, request: CalibrationRequest) -> None:
        core = self.core
        if core.mda.is_running() or core.isSequenceRunning():
            notify(LivedenoiseError("stop the microscope's acquisition before calibrating on it"))
            return
        recording = Recording(
            repeats=self.repeats.value(), property=self.averaging.currentText() or None
        )
        self._forget_core()
        self.start(
            lambda events: calibrate_on_core(core, request, recording, None, events=events),
            lambda profile: self._show(profile, core),
        )

    def _forget_core(self) -> None:
        """Nothing to apply while a calibration runs, nor after one that fails."""
        self._calibrated = None
        self.apply_button.setEnabled(False)

    def _show(self, profile: Profile, core: CMMCorePlus | None) -> None:
        self.profile, self._calibrated = profile, core
        self.chosen.setText("\n".join(summary(profile)))
        canvas = FigureCanvasQTAgg(figure(profile))  # sized to the dock by Qt, as the empty one
        canvas.setMinimumHeight(self.canvas.minimumHeight())
        self.form.replaceWidget(self.canvas, canvas)
        self.canvas.deleteLater()
        self.canvas = canvas
        self.apply_button.setEnabled(core is not None)
        self.status.setText(
            f"chosen: {profile.chosen.text} average(s)"
            if core is None
            else f"chosen: {profile.control_label} = {profile.chosen.text}"
        )

    def apply(self) -> None:
        """Set the chosen setting on the core it was measured on; what changed since is said."""
        if self.profile is None or self._calibrated is None:
            return
        try:
            changed = apply_chosen(self._calibrated, self.profile)
        except Exception as error:  # a device's refusal, or a bug: one line, as a task's
            notify(error)
            return
        self.status.setText(
            f"applied {self.profile.control_label} = {self.profile.chosen.text}"
            + (f" (measured before: {'; '.join(changed)})" if changed else "")
        )


def repeats(layer: Image) -> np.ndarray:
    """The layer's frames as ``[R, H, W]``: axes of length 1 (a single z-slice or channel) folded
    away; any other shape is passed on for the calibration to refuse with its reason."""
    data = np.asarray(layer.data)
    stacked = [n for n in data.shape[:-2] if n > 1]
    return data.reshape(*stacked, *data.shape[-2:]) if len(stacked) <= 1 else data
