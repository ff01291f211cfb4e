"""The microscope a run needs: a core opened with the user's settings, released so that a process
can exit cleanly, and a camera checked before anything is acquired."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

from pymmcore_plus import CMMCorePlus

from livedenoise.acquisition import make_core
from livedenoise.inference import InputError, check_frame_size
from livedenoise.pipeline.setup import SetupError, apply_assignments


def open_microscope(config: Path | None = None, settings: Sequence[str] = ()) -> CMMCorePlus:
    """A core for ``config`` (None: the simulated microscope) with ``DEVICE.PROPERTY=VALUE`` applied.

    Raises ``SetupError`` for a setting the core refuses and ``FileNotFoundError`` for a missing file.
    """
    core = make_core(config)
    try:
        apply_assignments(core, list(settings))
    except BaseException:
        release_microscope(core)
        raise
    return core


def release_microscope(core: CMMCorePlus) -> None:
    """Stop the core's acquisition, unload its devices and detach its callback thread.

    A core left to interpreter shutdown with its callback thread live can abort the process
    ("terminate called without an active exception"), replacing the command's exit code.
    """
    with suppress(Exception):
        if core.isSequenceRunning():
            core.stopSequenceAcquisition()
    with suppress(Exception):
        core.unloadAllDevices()
    with suppress(Exception):
        super(CMMCorePlus, core).registerCallback(None)


def check_camera(core: CMMCorePlus) -> None:
    """Refuse a camera a run cannot take, before anything is acquired: none chosen, or frames
    smaller than the model's minimum (the rule offline denoising applies). Raises SetupError.

    Any pixel type is taken: 32-bit float frames are stored as float32, colour frames as one channel
    per colour, each physical camera of a Multi Camera as channels of its own.
    """
    camera = core.getCameraDevice()
    if not camera:
        raise SetupError("no camera is chosen: set Core.Camera=NAME", option="settings")
    try:
        check_frame_size(
            core.getImageHeight(),
            core.getImageWidth(),
            f"camera {camera}: ",
            " (make its ROI or frame size larger)",
        )
    except InputError as err:
        raise SetupError(str(err), option="settings") from None
