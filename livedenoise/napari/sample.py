"""napari sample data: a short tiled run recorded on the simulated microscope, opened by the reader.

So a user can try the plugin without a microscope: a 2x2 grid of 64x64 tiles in two channels, a few
time points, denoised by the shipped ``sim-confocal-small`` model, written to a temporary folder
(removed when Python exits) and opened lazily like any run store.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import useq

from livedenoise.app import Acquisition, RunRequest, open_microscope, release_microscope
from livedenoise.errors import LivedenoiseError
from livedenoise.napari.reader import LayerData, read

SETTINGS = (
    "Detector.FrameWidth=64",
    "Detector.FrameHeight=64",
    "Detector.TimeScale=0",  # the simulator skips its real-time waits
)
SEQUENCE = useq.MDASequence(
    channels=["FITC", "DAPI"],
    time_plan={"interval": 0, "loops": 4},
    grid_plan={"rows": 2, "columns": 2, "overlap": 10},
)


class SampleRunFailed(LivedenoiseError, RuntimeError):
    """The sample's simulated run ended without completing (the store keeps what it wrote)."""


def record_tiled_run(out: Path, sequence: useq.MDASequence = SEQUENCE) -> Path:
    """Record ``sequence`` on the simulated microscope (small frames, no waiting) into ``out``.

    Raises SampleRunFailed, with the run's error, when it did not complete.
    """
    core = open_microscope(None, SETTINGS)
    try:
        request = RunRequest(model="sim-confocal-small", backend="onnxruntime", window=2, out=out)
        summary = Acquisition(core, request).run_sequence(sequence)
    finally:
        release_microscope(core)
    if summary.error:
        raise SampleRunFailed(f"the simulated run failed: {summary.error}", path=out)
    return out


def tiled_run() -> list[LayerData]:
    """The sample: a fresh simulated tiled run as raw and denoised layers, tiles in place."""
    folder = Path(tempfile.mkdtemp(prefix="livedenoise-sample-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return read(record_tiled_run(folder / "tiled.ome.zarr"))
