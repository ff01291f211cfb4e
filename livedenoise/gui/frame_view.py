"""One image view: pan/zoom, a histogram with auto or manual contrast, the value under the cursor."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import QPointF
from qtpy.QtWidgets import QCheckBox, QLabel, QVBoxLayout, QWidget


class FrameView(QWidget):
    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.graphics = pg.GraphicsLayoutWidget()
        self.view = self.graphics.addViewBox(lockAspect=True, invertY=True)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.image)
        self.histogram = pg.HistogramLUTItem(image=self.image)
        self.graphics.addItem(self.histogram)
        self.title = QLabel(f"<b>{title}</b>")
        self.auto_contrast = QCheckBox("auto contrast")
        self.auto_contrast.setChecked(True)
        self.under_cursor = QLabel("")  # the pixel under the mouse and its value
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.graphics, 1)
        layout.addWidget(self.auto_contrast)
        layout.addWidget(self.under_cursor)
        self.graphics.scene().sigMouseMoved.connect(self._show_value)
        self._data: np.ndarray | None = None

    def set_image(self, data: np.ndarray) -> None:
        """Show a frame; with auto contrast the levels follow the 0.1-99.9 percentiles."""
        reframe = self._data is None or self._data.shape != data.shape  # e.g. a growing mosaic
        self._data = data
        if self.auto_contrast.isChecked():
            sample = data[:: max(1, data.shape[0] // 128), :: max(1, data.shape[1] // 128)]
            finite = sample[np.isfinite(sample)]
            lo, hi = np.percentile(finite, [0.1, 99.9]) if finite.size else (0.0, 1.0)
            self.image.setImage(
                data, autoLevels=False, levels=(float(lo), float(max(hi, lo + 1e-6)))
            )
        else:
            self.image.setImage(data, autoLevels=False)
        if reframe:
            self.view.autoRange()

    @property
    def data(self) -> np.ndarray | None:
        return self._data

    def link(self, other: FrameView) -> None:
        """Zoom and pan together (raw beside denoised)."""
        self.view.setXLink(other.view)
        self.view.setYLink(other.view)

    def _show_value(self, pos: QPointF) -> None:
        if self._data is None:
            return
        point = self.view.mapSceneToView(pos)
        row, col = int(point.y()), int(point.x())
        if 0 <= row < self._data.shape[0] and 0 <= col < self._data.shape[1]:
            self.under_cursor.setText(f"x {col}  y {row}  value {self._data[row, col]:.1f}")
