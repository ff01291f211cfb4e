"""One typed signal group for everything a livedenoise task reports, live or offline.

Each object that runs work owns one ``Events`` (``pipeline.events``, ``acquisition.events``, the
``events`` argument of the offline tasks), as pymmcore-plus's MDA runner owns its ``events``: the
viewer, the CLI's progress bars and the napari plugin connect to it; nothing polls. Signals are
emitted from worker threads; a Qt receiver connects with ``thread="main"`` (psygnal queues the call
onto the Qt thread) or reads state on its own timer.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from psygnal import Signal, SignalGroup

from livedenoise.frames import FrameInfo


class Progress(NamedTuple):
    """How far a task is: ``done`` of ``total`` units of ``what`` (``total`` None: not known)."""

    done: int
    total: int | None
    what: str


class Events(SignalGroup):
    """The signals of one run or task. Payloads are typed; a task emits the ones that apply to it.

    Frames (live runs and the MDA output):
        frameAcquired(raw, info): a raw frame reached the pipeline (``[H, W]`` as the camera gave it).
        frameDenoised(raw, denoised, info): its denoised frame (float32 ``[H, W]``, raw units).
        frameSkipped(info): the live policy passed it over for a newer frame (its raw frame is stored).
        frameLost(info): it left the ring before reaching disk (the run then fails).
    Any task:
        started(subject): the task began; ``subject`` is what it runs (a ``LivePipeline``, a path).
        progress(Progress): how far it is, for a progress bar.
        measured(part): one part of its result is measured (a calibration's rung of the ladder), so
            a viewer can draw the result as it fills in.
        status(text): what it is doing now ("reading x.tif", "model loaded"), one line.
        warning(text): something the user should know; the task goes on.
        failed(error): why it stopped; whatever it acquired or wrote is on disk.
        finished(result): its result (a ``RunSummary``, a ``DenoiseResult``, ...).
    """

    frameAcquired = Signal(np.ndarray, FrameInfo)
    frameDenoised = Signal(np.ndarray, np.ndarray, FrameInfo)
    frameSkipped = Signal(FrameInfo)
    frameLost = Signal(FrameInfo)
    started = Signal(object)
    progress = Signal(Progress)
    measured = Signal(object)
    status = Signal(str)
    warning = Signal(str)
    failed = Signal(Exception)
    finished = Signal(object)


def events_or_new(events: Events | None) -> Events:
    """The caller's event group, or a fresh one nobody listens to (so a task can always emit)."""
    return events if events is not None else Events()


__all__ = ["Events", "Progress", "events_or_new"]
