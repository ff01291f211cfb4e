"""napari "Denoise" dock widget: an image layer denoised with a saved model, added as a new layer.

The work is ``livedenoise.app.denoising.denoise_array``, what ``livedenoise denoise --float32``
does to a file holding the layer's data; this widget chooses, runs it in a thread (Cancel stops it
before the next frame) and adds the result where the layer lies (its scale, translation, units).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import QCheckBox, QSpinBox

from livedenoise.app.denoising import DenoiseCancelled, denoise_array
from livedenoise.napari._task import TaskWidget

if TYPE_CHECKING:
    from napari.components import ViewerModel
    from napari.layers import Image

AXES = "TZCYX"  # the axis letters livedenoise reads
DEFAULT_AXES = {2: "YX", 3: "TYX", 4: "TZYX", 5: "TZCYX"}  # napari's own order, unlabelled


class DenoiseWidget(TaskWidget):
    """Denoise the chosen image layer; the result is the layer "NAME denoised" (float32)."""

    def __init__(self, napari_viewer: ViewerModel) -> None:
        super().__init__(napari_viewer, "Denoise", cancellable=True)

    def add_rows(self) -> None:
        self.window_size = QSpinBox()
        self.window_size.setRange(1, 64)
        self.window_size.setValue(8)
        self.window_size.setToolTip("frames per denoising window (along time, or z for a z-stack)")
        self.form.addRow("window", self.window_size)
        self.tta = QCheckBox("average 8 rotations and flips")
        self.tta.setToolTip("test-time augmentation: a small gain for 8 times the time")
        self.form.addRow("TTA", self.tta)

    def run(self) -> None:
        """Denoise the chosen layer in a worker thread; its result becomes a new layer."""
        layer = self.chosen_layer()
        if layer is None:
            return
        work = partial(
            denoise_array,
            self.model.currentText(),
            layer.data[0] if layer.multiscale else layer.data,  # a pyramid's full resolution
            layer_axes(layer),
            backend=self.backend.currentText(),
            window=self.window_size.value(),
            float32=True,
            tta=self.tta.isChecked(),
            name=layer.name,
            cancel=self.cancel_event,
        )
        self.start(lambda events: work(events=events), partial(self._add_layer, layer))

    def _add_layer(self, source: Image, denoised: np.ndarray) -> None:
        layer = self.viewer.add_image(denoised, **like(source))
        self.status.setText(f"added {layer.name}")

    def show_error(self, error: Exception) -> None:
        if isinstance(error, DenoiseCancelled):
            self.status.setText(str(error))  # the user asked for it: no error to notify
        else:
            super().show_error(error)


def layer_axes(layer: Image) -> str:
    """The layer's axes as livedenoise letters: its axis labels where they are such letters (the
    reader's layers), else napari's usual order for its dimensions (``TYX``, ``TZYX``); an RGB
    layer's colours are its channels."""
    labels = "".join(str(label).upper() for label in layer.axis_labels)
    ndim = layer.ndim + layer.rgb
    if len(labels) == ndim and len(set(labels)) == ndim and set(labels) <= set(AXES):
        return labels
    axes = DEFAULT_AXES.get(layer.ndim, "")
    return axes + "C" if layer.rgb else axes


def like(layer: Image) -> dict[str, Any]:
    """A new layer's place and name beside ``layer``: same scale, translation, units and axes."""
    return {
        "name": f"{layer.name} denoised",
        "scale": layer.scale,
        "translate": layer.translate,
        "units": layer.units,
        "axis_labels": layer.axis_labels,
    }
