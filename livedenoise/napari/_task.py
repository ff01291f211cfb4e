"""What the napari "Denoise" and "Calibrate" dock widgets share: an image layer, a model and a
backend to choose, one task at a time in a worker thread with a progress bar, and errors in napari's
notifications rather than a traceback.

The task reports on the widget's ``events`` (``livedenoise.events.Events``) from its thread; each
event only emits a Qt signal of the widget, which Qt delivers on napari's thread (a queued
connection), where the bar, the status line and the result are drawn. Nothing polls.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QWidget,
)

from livedenoise.app import backend_names
from livedenoise.app.models import model_choices
from livedenoise.errors import LivedenoiseError
from livedenoise.events import Events, Progress

if TYPE_CHECKING:
    from napari.components import ViewerModel
    from napari.layers import Image


class TaskWidget(QWidget):
    """A form (layer, model, backend, then the subclass's rows), a Run and a Cancel button, a
    progress bar and a status line; ``start`` runs one task in a thread.

    ``done`` is emitted on napari's thread when a task has ended: its result shown, or its error
    notified.
    """

    done = Signal()
    _progressed = Signal(object)  # a Progress, from the worker thread
    _said = Signal(str)  # a status line, from the worker thread
    _ended = Signal(object, object)  # (result, None) or (None, the Exception)

    def __init__(self, napari_viewer: ViewerModel, action: str, cancellable: bool) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.events = Events()
        self.cancel_event = threading.Event()
        self._shown: Callable[[Any], None] = lambda result: None

        self.layer = QComboBox()
        self.layer.setToolTip("the image layer to work on")
        self.model = QComboBox()
        self.model.setEditable(True)  # a shipped or own model's name, or a model file's path
        self.model.addItems(model_choices())
        self.model.setToolTip("a shipped model, engines/NAME, or the path of a .safetensors model")
        browse = QPushButton("…")
        browse.setToolTip("choose a model file")
        browse.clicked.connect(self._browse_model)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model, 1)
        model_row.addWidget(browse)
        self.backend = QComboBox()
        self.backend.addItems(backend_names())
        self.run_button = QPushButton(action)
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        self.cancel_button.setVisible(cancellable)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        self.bar = QProgressBar()
        self.status = QLabel("")
        self.status.setWordWrap(True)

        self.form = QFormLayout(self)
        self.form.addRow("image layer", self.layer)
        self.form.addRow("model", model_row)
        self.form.addRow("backend", self.backend)
        self.add_rows()
        self.form.addRow(buttons)
        self.form.addRow(self.bar)
        self.form.addRow(self.status)

        self.events.progress.connect(self._progressed.emit)
        self.events.status.connect(self._said.emit)
        self._progressed.connect(self._show_progress)
        self._said.connect(self.status.setText)
        self._ended.connect(self._end)
        for event in ("inserted", "removed", "moved"):
            getattr(self.viewer.layers.events, event).connect(self._list_layers)
        self._list_layers()

    def add_rows(self) -> None:
        """The subclass's own controls, between the backend and the buttons."""

    def run(self) -> None:
        """Start the task on the chosen layer (the subclass's)."""
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return not self.run_button.isEnabled()

    def chosen_layer(self) -> Image | None:
        """The image layer chosen, or None (a notification says so) when there is none."""
        from napari.layers import Image

        name = self.layer.currentText()
        layer = next((layer for layer in self.viewer.layers if layer.name == name), None)
        if not isinstance(layer, Image):
            notify(LivedenoiseError("choose an image layer first"))
            return None
        return layer

    def start(self, work: Callable[[Events], Any], show: Callable[[Any], None]) -> None:
        """``work(events)`` in a worker thread; then ``show(result)`` on napari's thread, or its
        error in a notification."""
        self.cancel_event.clear()
        self._shown = show
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.bar.setRange(0, 0)  # busy until the first progress
        self.status.setText("")
        threading.Thread(target=self._work, args=(work,), daemon=True).start()

    def cancel(self) -> None:
        """Ask the running task to stop (safe from any thread): ``cancel_event``, which ``run``
        gives the task, is set."""
        self.cancel_event.set()

    def _work(self, work: Callable[[Events], Any]) -> None:
        try:
            result = work(self.events)
        except Exception as error:  # shown on napari's thread; a bug too, as one line
            self._ended.emit(None, error)
        else:
            self._ended.emit(result, None)

    def _end(self, result: Any, error: Exception | None) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.bar.setRange(0, 1)
        self.bar.setFormat("done" if error is None else "stopped")
        if error is None:
            self.bar.setValue(1)
            self._shown(result)
        else:
            self.bar.setValue(0)
            self.status.setText(str(error))
            self.show_error(error)
        self.done.emit()

    def show_error(self, error: Exception) -> None:
        """How a task's error reaches the user: napari's notification."""
        notify(error)

    def _show_progress(self, progress: Progress) -> None:
        if progress.total is None:
            self.bar.setRange(0, 0)
        else:
            self.bar.setRange(0, progress.total)
            self.bar.setValue(progress.done)
        self.bar.setFormat(f"{progress.what}: %v/%m" if progress.total else progress.what)

    def _list_layers(self, *_: object) -> None:
        from napari.layers import Image

        chosen = self.layer.currentText()
        names = [layer.name for layer in self.viewer.layers if isinstance(layer, Image)]
        self.layer.clear()
        self.layer.addItems(names)
        if chosen in names:
            self.layer.setCurrentText(chosen)

    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "model", "engines", "Models (*.safetensors)")
        if path:
            self.model.setCurrentText(str(Path(path)))


def notify(error: Exception) -> None:
    """An error as napari's error notification: a user's mistake as its one line, anything else
    with its type (a bug to report)."""
    from napari.utils.notifications import show_error

    show_error(
        str(error) if isinstance(error, LivedenoiseError) else f"{type(error).__name__}: {error}"
    )
