"""napari screenshots for the README, offscreen.

``STORE`` (or nothing): a run store opened in napari, each tile in its stage position,
docs/napari_run_store.png. Records a 2x2 tiled scan (10% overlap) on the simulated microscope through
the pipeline with the shipped ``sim-confocal-small`` model, or opens the store given as STORE, and adds
every image of it to napari as the README's "Look at your data" does. The raw tiles are added hidden;
the denoised tiles show the mosaic.

``live``: the plugin's Live widget attached to the simulated microscope, docked beside napari's layer
list, taken during an MDA run started from the core (as napari-micromanager starts one),
docs/napari_live.png.

    pip install napari
    xvfb-run -a python scripts/napari_screenshot.py [STORE | live]

napari draws with OpenGL, which Qt's ``offscreen`` platform does not provide: without a display, run it
under Xvfb (Debian: ``apt-get install xvfb libgl1-mesa-dri``, Mesa's software OpenGL).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import napari
import numpy as np
import useq

from livedenoise.acquisition import make_core
from livedenoise.app import denoising_output
from livedenoise.imageio import list_images, read_image

DOCS = Path(__file__).resolve().parents[1] / "docs"
OUT = DOCS / "napari_run_store.png"
LIVE_OUT = DOCS / "napari_live.png"


def record(path: Path) -> Path:
    """A 2x2 tiled scan, one channel, on the simulated microscope."""
    core = make_core()
    core.setProperty("Detector", "TimeScale", 0)
    sequence = useq.MDASequence(
        channels=["FITC"], grid_plan=useq.GridRowsColumns(rows=2, columns=2, overlap=10)
    )
    output = denoising_output(path, "sim-confocal-small", backend="onnxruntime", window=1)
    core.mda.run(sequence, output=output)
    summary = output.finish()
    if summary is None or summary.error:
        raise SystemExit(f"the recording failed: {summary and summary.error}")
    return path


def show(store: Path) -> napari.Viewer:
    viewer = napari.Viewer(show=False)
    images = {name: read_image(store, name) for name in list_images(store)}  # axes TCZYX
    # one contrast range for all raw and one for all denoised tiles, so that tiles compare (napari
    # would give each layer its own range, and the seams would show the ranges, not the data)
    limits = {
        kind: np.nanpercentile(
            np.concatenate([np.ravel(im.data) for n, im in images.items() if n.startswith(kind)]),
            [0.5, 99.9],
        ).tolist()
        for kind in ("raw/", "denoised/")
    }
    for name, image in images.items():
        axes = image.axes.replace("C", "")
        kind = name.split("/")[0] + "/"
        viewer.add_image(
            image.data,
            channel_axis=image.axes.index("C"),
            name=[f"{name} {channel}" for channel in image.channels],
            scale=[image.scale.get(a, 1.0) for a in axes],
            translate=[image.translation.get(a, 0.0) for a in axes],
            contrast_limits=limits[kind],
            visible=kind == "denoised/",
        )
    viewer.reset_view()
    return viewer


def live() -> None:
    """The Live widget during a time-lapse of 256x256 frames (two per second), taken once a few
    frames are denoised; the run is then canceled, as a user would stop it."""
    from livedenoise.napari._live import LiveWidget

    core = make_core()
    core.setProperty("Detector", "FrameWidth", 256)
    core.setProperty("Detector", "FrameHeight", 256)
    viewer = napari.Viewer(show=False)
    widget = LiveWidget(viewer, core=core)
    widget.model.setCurrentText("sim-confocal-small")
    widget.backend.setCurrentText("onnxruntime")
    widget.window_frames.setValue(2)
    viewer.window.add_dock_widget(widget, name="livedenoise: Live", area="right")
    viewer.window.resize(1200, 800)
    app = napari.qt.get_qapp()
    with tempfile.TemporaryDirectory() as tmp:
        widget.store.setText(str(Path(tmp) / "live.ome.zarr"))
        widget.button.click()
        while not widget.button.isEnabled():  # the engine loads in a thread
            app.processEvents()
            time.sleep(0.02)
        if widget.attached is None:
            raise SystemExit("attaching failed (see the notification above)")
        run = core.run_mda(
            useq.MDASequence(channels=["FITC"], time_plan={"interval": 0.5, "loops": 120})
        )
        while run.is_alive() and ((s := widget.attached.summary) is None or s.denoised < 6):
            app.processEvents()
            time.sleep(0.02)
        for _ in range(10):  # the newest frame drawn, the statistics line read
            app.processEvents()
            time.sleep(0.05)
        widget._show_stats()
        app.processEvents()
        viewer.window.screenshot(str(LIVE_OUT), flash=False)
        core.mda.cancel()
        run.join()
        widget.detach()
    viewer.close()
    print(f"wrote {LIVE_OUT}")


def main() -> None:
    if sys.argv[1:] == ["live"]:
        live()
        return
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(sys.argv[1]) if len(sys.argv) > 1 else record(Path(tmp) / "tiles.ome.zarr")
        viewer = show(store)
        viewer.window.resize(900, 800)
        viewer.screenshot(str(OUT), canvas_only=False)
        viewer.close()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
