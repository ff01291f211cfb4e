"""napari "Live" dock widget: denoise the runs napari-micromanager (or pymmcore-gui, or a script)
starts on the process's core, shown as a "denoised" layer beside the raw one.

The work is ``livedenoise.app.attach``; this widget only chooses, attaches and draws. Frames arrive
on the pipeline's threads: each one only nudges a Qt signal, which Qt delivers on napari's thread
(a queued connection, nothing polls), where the newest frame is drawn and any older one is passed
over, so a slow display never holds up the acquisition. The statistics line is read on a timer.
"""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pymmcore_plus import CMMCorePlus
from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from livedenoise.app import backend_names
from livedenoise.app.attach import Attached, attach, shipped_models, status_line

if TYPE_CHECKING:
    from napari.components import ViewerModel

DENOISED_LAYER = "denoised"
RAW_LAYER = "raw"
STATS_MS = 500  # how often the statistics line is read


class LiveWidget(QWidget):
    """Attach/Detach to a core; model, window, backend and an optional run store for its runs.

    ``core``: the core to attach to; by default the process's (``CMMCorePlus.instance()``, the one
    napari-micromanager and pymmcore-gui drive), looked up on Attach.
    """

    _frame_arrived = Signal()  # a newer frame is in ``attached.latest`` (emitted from any thread)
    _run_failed = Signal(object)  # the Exception a run failed with, carried onto napari's thread
    _attached = Signal(object)  # the Attached, or why attaching failed, from the loading thread

    def __init__(self, napari_viewer: ViewerModel, core: CMMCorePlus | None = None) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.core = core
        self.attached: Attached | None = None
        self._shown_version = -1
        self._reset_contrast = True

        self.model = QComboBox()
        self.model.setEditable(True)  # a shipped model's name, or a model file's path
        self.model.addItems(shipped_models())
        self.model.setToolTip("a shipped model, or the path of a .safetensors/.json model")
        self.window_frames = QSpinBox()
        self.window_frames.setRange(1, 64)
        self.window_frames.setValue(4)
        self.window_frames.setToolTip("frames per denoising window")
        self.backend = QComboBox()
        self.backend.addItems(backend_names())
        self.store = QLineEdit()
        self.store.setPlaceholderText("none: frames are kept only while their run lasts")
        self.store.setToolTip("the first run's OME-Zarr store; later runs are written beside it")
        self.show_raw = QCheckBox("raw frames in a layer too")
        self.show_raw.setChecked(True)
        self.button = QPushButton("Attach")
        self.button.clicked.connect(self.toggle)
        self.stats = QLabel("not attached")
        self.stats.setWordWrap(True)

        form = QFormLayout(self)
        form.addRow("model", self.model)
        form.addRow("window", self.window_frames)
        form.addRow("backend", self.backend)
        form.addRow("run store", self.store)
        form.addRow(self.show_raw)
        form.addRow(self.button)
        form.addRow(self.stats)

        self._timer = QTimer(self)
        self._timer.timeout.connect(self._show_stats)
        self._frame_arrived.connect(self._show_frames)
        self._run_failed.connect(self._show_failure)
        self._attached.connect(self._attach_ended)

    # -- attach / detach ---------------------------------------------------------------------------

    def toggle(self) -> None:
        if self.attached is None:
            self.attach()
        else:
            self.detach()

    def attach(self) -> None:
        """Load the engine and attach in a thread of its own (a TensorRT engine can take minutes to
        build), napari staying responsive; what goes wrong is a notification."""
        core = self.core or CMMCorePlus.instance()
        store = Path(text) if (text := self.store.text().strip()) else None
        model, window = self.model.currentText().strip(), self.window_frames.value()
        backend = self.backend.currentText()
        self._set_controls(attached=True)
        self.button.setEnabled(False)
        self.button.setText("Attaching…")
        self.stats.setText(f"loading {model} on {backend}")

        def load() -> None:
            try:
                result: Attached | Exception = attach(
                    core, model, window=window, backend=backend, store=store
                )
            except Exception as err:  # no thread dies quietly: the user is told why
                result = err
            self._attached.emit(result)

        threading.Thread(target=load, name="livedenoise-attach", daemon=True).start()

    def _attach_ended(self, result: Attached | Exception) -> None:
        self.button.setEnabled(True)
        if isinstance(result, Exception):
            self._set_controls(attached=False)
            self.stats.setText("not attached")
            _notify_error(f"livedenoise could not attach: {result}")
            return
        attached = self.attached = result
        events = attached.events
        events.frameDenoised.connect(self._nudge)
        events.frameAcquired.connect(self._nudge)
        events.started.connect(self._new_run)
        events.failed.connect(self._run_failed.emit)
        # a widget closed while attached lets go of the core (the receivers it had go first)
        self.destroyed.connect(partial(_let_go, attached))
        self._set_controls(attached=True)
        self.stats.setText(status_line(None))
        self._timer.start(STATS_MS)

    def detach(self) -> None:
        """Stop denoising this core's runs; a run in progress has its store closed."""
        attached, self.attached = self.attached, None
        if attached is None:
            return
        _let_go(attached)
        self._timer.stop()
        self._set_controls(attached=False)
        self.stats.setText(f"detached · last run: {status_line(attached.summary)}")

    def _set_controls(self, attached: bool) -> None:
        self.button.setText("Detach" if attached else "Attach")
        for control in (self.model, self.window_frames, self.backend, self.store):
            control.setEnabled(not attached)

    # -- drawing (napari's thread) -------------------------------------------------------------------

    def _nudge(self, *frame: Any) -> None:
        """(pipeline threads) A frame arrived: have napari's thread draw the newest."""
        self._frame_arrived.emit()

    def _new_run(self, pipeline: Any) -> None:
        self._reset_contrast = True  # (pipeline thread) a new run may show another range

    def _show_frames(self) -> None:
        """Draw the newest raw and denoised frames, once each."""
        attached = self.attached
        if attached is None or attached.latest.version == self._shown_version:
            return
        latest = attached.latest
        self._shown_version = latest.version
        reset, self._reset_contrast = self._reset_contrast, False
        if self.show_raw.isChecked() and latest.raw is not None:
            self._update_layer(RAW_LAYER, latest.raw, reset)
        if latest.denoised is not None:
            self._update_layer(DENOISED_LAYER, latest.denoised, reset)
        else:
            self._reset_contrast = reset  # the denoised layer still needs its first range

    def _update_layer(self, name: str, frame: np.ndarray, reset: bool) -> None:
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            layer.data = frame
            if reset:
                layer.reset_contrast_limits()
        else:
            self.viewer.add_image(frame, name=name)

    def _show_stats(self) -> None:
        if self.attached is not None:
            self.stats.setText(status_line(self.attached.summary))

    def _show_failure(self, error: Exception) -> None:
        _notify_error(f"livedenoise: {error}")
        self._show_stats()


def _let_go(attached: Attached, *destroyed: object) -> None:
    """Detach, this widget's receivers disconnected first (nothing is drawn for it any more)."""
    attached.events.disconnect()
    attached.detach()


def _notify_error(message: str) -> None:
    """napari's error notification (its notification area, or the console without a window)."""
    from napari.utils.notifications import show_error

    show_error(message)
