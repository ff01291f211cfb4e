"""The application layer: each task once, for the command line, the viewer and users' own scripts.

``microscope`` opens and releases a core, ``session`` runs live mode and MDA sequences on it (and
gives pymmcore-plus scripts a denoising output), ``calibration`` finds the fastest safe averaging,
``denoising`` denoises recordings and in-memory arrays offline. Front ends parse, print and draw;
they call these for the work.

The names below load on first use (PEP 562): importing one light module of the package (the napari
reader's ``layers``) does not import torch, the pipeline or Micro-Manager.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from livedenoise.lazy import lazy_names

if TYPE_CHECKING:
    from livedenoise.app.calibration import (
        CalibrationRequest,
        RecordedStack,
        Recording,
        calibrate_from_stack,
        calibrate_on_core,
        calibrate_repeats,
    )
    from livedenoise.app.denoising import (
        DenoiseError,
        DenoiseResult,
        denoise_array,
        denoise_file,
    )
    from livedenoise.app.microscope import open_microscope, release_microscope
    from livedenoise.app.session import Acquisition, RunRequest, denoising_output
    from livedenoise.backends import backend_names
    from livedenoise.pipeline.stats import RunSummary

# each public name and the module that defines it
_HOMES = {
    "CalibrationRequest": "livedenoise.app.calibration",
    "RecordedStack": "livedenoise.app.calibration",
    "Recording": "livedenoise.app.calibration",
    "calibrate_from_stack": "livedenoise.app.calibration",
    "calibrate_on_core": "livedenoise.app.calibration",
    "calibrate_repeats": "livedenoise.app.calibration",
    "DenoiseError": "livedenoise.app.denoising",
    "DenoiseResult": "livedenoise.app.denoising",
    "denoise_array": "livedenoise.app.denoising",
    "denoise_file": "livedenoise.app.denoising",
    "open_microscope": "livedenoise.app.microscope",
    "release_microscope": "livedenoise.app.microscope",
    "Acquisition": "livedenoise.app.session",
    "RunRequest": "livedenoise.app.session",
    "denoising_output": "livedenoise.app.session",
    "backend_names": "livedenoise.backends",
    "RunSummary": "livedenoise.pipeline.stats",
}

__all__ = [
    "Acquisition",
    "CalibrationRequest",
    "DenoiseError",
    "DenoiseResult",
    "RecordedStack",
    "Recording",
    "RunRequest",
    "RunSummary",
    "backend_names",
    "calibrate_from_stack",
    "calibrate_on_core",
    "calibrate_repeats",
    "denoise_array",
    "denoise_file",
    "denoising_output",
    "open_microscope",
    "release_microscope",
]


__getattr__, __dir__ = lazy_names(__name__, _HOMES)
