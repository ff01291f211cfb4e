"""A run store opened in napari, each tile in its stage position: docs/napari_run_store.png, offscreen.

Records a 2x2 tiled scan (10% overlap) on the simulated microscope through the pipeline with the shipped
``sim-confocal-small`` model, or opens the store given as STORE, and adds every image of it to napari as
the README's "Look at your data" does. The raw tiles are added hidden; the denoised tiles show the mosaic.

    pip install napari
    xvfb-run -a python scripts/napari_screenshot.py [STORE]

napari draws with OpenGL, which Qt's ``offscreen`` platform does not provide: without a display, run it
under Xvfb (Debian: ``apt-get install xvfb libgl1-mesa-dri``, Mesa's software OpenGL).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import napari
import numpy as np
import useq

from livedenoise.acquisition import make_core
from livedenoise.app import denoising_output
from livedenoise.imageio import list_images, read_image

OUT = Path(__file__).resolve().parents[1] / "docs" / "napari_run_store.png"


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


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(sys.argv[1]) if len(sys.argv) > 1 else record(Path(tmp) / "tiles.ome.zarr")
        viewer = show(store)
        viewer.window.resize(900, 800)
        viewer.screenshot(str(OUT), canvas_only=False)
        viewer.close()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
