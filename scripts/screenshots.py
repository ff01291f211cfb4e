"""Screenshots of the viewer from a real run on the simulated microscope, for the README.

    QT_QPA_PLATFORM=offscreen python scripts/screenshots.py [--model sim-confocal-small]

Writes docs/viewer_live.png (raw beside denoised during live mode), docs/viewer_mosaic.png (the
tiled demo's mosaic once every tile has arrived) and docs/viewer_calibration.png (the calibration view
showing calibration/tirf/profile.json, the README's TIRF calibration).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qtpy.QtWidgets import QApplication

from livedenoise.app import Acquisition, RunRequest, open_microscope
from livedenoise.gui.main_window import LiveWindow
from livedenoise.pipeline.setup import DEMO_SETTINGS, demo_sequence

DOCS = Path(__file__).resolve().parents[1] / "docs"


def wait(app: QApplication, condition, timeout_s: float = 300) -> None:
    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the run did not reach the state to photograph")
        app.processEvents()
        time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sim-confocal-small")
    parser.add_argument("--backend", default="onnxruntime")
    args = parser.parse_args()
    DOCS.mkdir(exist_ok=True)
    app = QApplication.instance() or QApplication([])
    core = open_microscope(None, DEMO_SETTINGS)
    with tempfile.TemporaryDirectory() as tmp:
        request = RunRequest(model=args.model, backend=args.backend, window=3, out_dir=Path(tmp))
        acquisition = Acquisition(core, request)
        window = LiveWindow(acquisition)
        window.resize(1400, 760)
        window.show()

        window.live_button.setChecked(True)
        wait(
            app,
            lambda: acquisition.pipeline is not None and acquisition.pipeline.stats.denoised >= 3,
        )
        window.refresh()
        window.grab().save(str(DOCS / "viewer_live.png"))
        window.live_button.setChecked(False)

        window.run_sequence(demo_sequence())
        wait(app, lambda: not acquisition.running)
        window.refresh()
        window.grab().save(str(DOCS / "viewer_mosaic.png"))

        window.tabs.setCurrentWidget(window.calibration_tab)
        window.calibration_tab.show_profile(DOCS.parent / "calibration" / "tirf" / "profile.json")
        window.refresh()
        app.processEvents()
        window.grab().save(str(DOCS / "viewer_calibration.png"))
        window.close()
    print(f"wrote viewer_live.png, viewer_mosaic.png and viewer_calibration.png in {DOCS}")


if __name__ == "__main__":
    main()
