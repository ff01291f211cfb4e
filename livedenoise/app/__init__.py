"""The application layer: each task once, for the command line, the viewer and users' own scripts.

``microscope`` opens and releases a core, ``session`` runs live mode and MDA sequences on it (and
gives pymmcore-plus scripts a denoising output), ``calibration`` finds the fastest safe averaging, ``denoising`` denoises recordings
offline. Front ends parse, print and draw; they call these for the work.
"""

from livedenoise.app.calibration import (
    CalibrationRequest,
    RecordedStack,
    Recording,
    calibrate_from_stack,
    calibrate_on_core,
)
from livedenoise.app.denoising import DenoiseError, DenoiseResult, denoise_file
from livedenoise.app.microscope import open_microscope, release_microscope
from livedenoise.app.session import Acquisition, RunRequest, denoising_output
from livedenoise.backends import backend_names
from livedenoise.pipeline.stats import RunSummary

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
    "denoise_file",
    "denoising_output",
    "open_microscope",
    "release_microscope",
]
