"""Runs on a Micro-Manager core through the live pipeline: an MDA sequence or live mode.

Only standard Micro-Manager calls are used, so the same code drives the simulated microscope, the demo
configuration and real hardware. An MDA run goes through ``DenoisingOutput``, the same output any
pymmcore-plus script can pass to ``core.mda.run``; this module adds what a front end needs around it:
stopping at the first device fault, and cancelling.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import useq
from pymmcore_plus import CMMCorePlus
from pymmcore_plus.metadata import summary_metadata

from livedenoise.frames import FrameIndex, RunLayout, grey_planes
from livedenoise.pipeline.live import Denoiser, LivePipeline, RunError
from livedenoise.pipeline.output import DenoisingOutput, RunSettings, camera_formats
from livedenoise.pipeline.ring import FrameRing
from livedenoise.pipeline.stats import STOPPED_BY_USER, AutofocusFailure, RunSummary
from livedenoise.pipeline.windows import WindowAssembler
from livedenoise.storage import RunStore


def frame_dtype(core: CMMCorePlus) -> np.dtype:
    return np.dtype({1: np.uint8, 2: np.uint16, 4: np.uint32}[core.getBytesPerPixel()])


def core_properties(core: CMMCorePlus) -> list[list[str]]:
    """Every device property as ``[device, property, value]``, read from the core now: the
    acquisition settings, as a store records them."""
    return [
        [dev, prop, str(core.getProperty(dev, prop))]
        for dev in core.getLoadedDevices()
        for prop in core.getDevicePropertyNames(dev)
    ]


class _DeviceFailures(logging.Handler):
    """Stops the run at the first device error, wherever the core reports it.

    The MDA engine logs a frame whose snap raised and moves on: the run is cancelled there, since a
    microscopist would rather stop than scan on with a broken detector. A hardware-sequenced
    acquisition fails in the core's own thread and ends by itself once the frames already in the
    core's buffer are delivered, so it is not cancelled (that would lose them). Either way the
    device's message is kept for the user.
    """

    def __init__(self, cancel: Callable[[], None], messages: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.cancel = cancel
        self.messages = messages
        self._previous_hook = threading.excepthook

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "failed to snap" in message.lower():
            self.messages.append(message)
            self.cancel()

    def _thread_failed(self, args: threading.ExceptHookArgs) -> None:
        self.messages.append(str(args.exc_value))
        self._previous_hook(args)

    def __enter__(self) -> _DeviceFailures:
        logging.getLogger("pymmcore-plus").addHandler(self)
        threading.excepthook = self._thread_failed
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("pymmcore-plus").removeHandler(self)
        threading.excepthook = self._previous_hook


class _AutofocusFailures(logging.Handler):
    """Records each autofocus step the MDA engine reports as failed (or could not run for want of
    an autofocus device), with the step's place in the sequence. The engine logs it and acquires
    on; the run then says so, since the frames after it may be out of focus.

    Log records and ``eventStarted`` both come from the runner's thread, so the step in hand is the
    one that failed.
    """

    def __init__(self, core: CMMCorePlus, failures: list[AutofocusFailure]) -> None:
        super().__init__(logging.WARNING)
        self.core = core
        self.failures = failures
        self._event: useq.MDAEvent | None = None

    def _started(self, event: useq.MDAEvent) -> None:
        self._event = event

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        lowered = message.lower()
        if "autofocus failed" not in lowered and "no autofocus device" not in lowered:
            return
        index = self._event.index if self._event is not None else {}
        self.failures.append(
            AutofocusFailure(t=index.get("t"), p=index.get("p"), z=index.get("z"), message=message)
        )

    def __enter__(self) -> _AutofocusFailures:
        self.core.mda.events.eventStarted.connect(self._started)
        logging.getLogger("pymmcore-plus").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("pymmcore-plus").removeHandler(self)
        self.core.mda.events.eventStarted.disconnect(self._started)


class AcquisitionRun:
    """One MDA sequence through the pipeline: frames to disk as they arrive, denoised as they can be."""

    def __init__(
        self,
        core: CMMCorePlus,
        sequence: useq.MDASequence,
        engine: Denoiser,
        settings: RunSettings,
        attrs: dict[str, Any],
    ) -> None:
        self.core = core
        self.sequence = sequence
        self.output = DenoisingOutput(settings, engine, attrs)
        # the runner raises its error after ``sequenceFinished``: close the store here, with it
        self.output.finish_on_sequence_finished = False

    @property
    def pipeline(self) -> LivePipeline | None:
        """The run's pipeline, once the run has started."""
        return self.output.pipeline

    def run(self) -> RunSummary:
        """Acquire in this thread (it becomes the acquisition thread) and return the run's summary.

        Any failure (a device, the engine, the disk, the MDA runner: a camera buffer that
        overflowed) stops the acquisition: the run ends with what it saved and says why. Failed
        autofocus steps are in the summary.
        """
        output = self.output
        output.events.failed.connect(self._stop_on_failure)
        try:
            with (
                _DeviceFailures(self.core.mda.cancel, output.device_errors),
                _AutofocusFailures(self.core, output.autofocus_failures),
            ):
                self.core.mda.run(self.sequence, output=output)
        except Exception as err:  # the runner's own failure: the store records it
            output.run_error = self._runner_failure(err)
        finally:
            output.events.failed.disconnect(self._stop_on_failure)
        summary = output.finish()
        if summary is None:  # the run ended before it started
            why = output.run_error or output.device_errors or "see log"
            raise RunError(f"the run did not start: {why}", path=output.path)
        return summary

    def _runner_failure(self, err: Exception) -> str:
        """What the MDA runner's exception means for the user, and what to do."""
        if self.core.isBufferOverflowed():
            return (
                f"the camera's circular buffer overflowed ({err}): frames came faster than they "
                "were taken out. Give it more memory (Micro-Manager: Tools > Options > sequence "
                "buffer size; pymmcore-plus: core.setCircularBufferMemoryFootprint(MB)) or lower "
                "the frame rate"
            )
        return f"the acquisition failed: {err}"

    def _stop_on_failure(self, error: Exception) -> None:
        self.core.mda.cancel()

    def cancel(self, ended: str = STOPPED_BY_USER) -> None:
        """Stop acquiring at the user's word (or a SIGTERM: ``ended`` says which, the first one
        given is kept); frames already acquired are saved (and denoised)."""
        if self.output.stopped is None:
            self.output.stopped = ended
        self.core.mda.cancel()

    def skip_backlog(self) -> None:
        """Leave the frames that still wait for the engine raw-only."""
        if self.output.pipeline is not None:
            self.output.pipeline.skip_backlog()


class LiveAcquisition:
    """Continuous acquisition (Micro-Manager's live mode) through the pipeline until stopped."""

    def __init__(
        self, core: CMMCorePlus, engine: Denoiser, settings: RunSettings, attrs: dict[str, Any]
    ):
        self.core = core
        group = core.getChannelGroup()
        self.channel = (core.getCurrentConfig(group) if group else "") or "default"
        self._formats = camera_formats(summary_metadata(core))  # camera -> pixel format
        self._slots: dict[str, int] = {}  # channel name -> channel
        self._counts: list[int] = []  # frames taken in per channel
        layout = RunLayout(timepoints=64, pixel_size_um=core.getPixelSizeUm() or 1.0)
        store = RunStore(
            settings.out,
            layout,
            {
                **attrs,
                "policy": settings.policy.value,
                "window": {"size": settings.window, "axis": "t"},
                "mode": "live",
                "devices": core_properties(core),
            },
        )
        ring = FrameRing.for_memory(
            settings.ring_bytes, (core.getImageHeight(), core.getImageWidth()), frame_dtype(core)
        )
        self.pipeline = LivePipeline(
            engine, store, ring, WindowAssembler(settings.window, "t"), settings.policy
        )
        self._stopping = threading.Event()  # stop asked: the camera may end its sequence now
        self._stop = threading.Event()  # the camera is stopped: drain what it delivered, then end
        self._thread = threading.Thread(target=self._pump, name="livedenoise-live")
        self.summary: RunSummary | None = None
        self.ended = "completed"  # live mode ends when stopped; a SIGTERM says so (TERMINATED)

    def _pump(self) -> None:
        try:
            self._move_frames()
        except Exception as err:  # no thread dies quietly: the run fails with the reason
            self.pipeline.report_error(f"live acquisition failed: {err}")

    def _move_frames(self) -> None:
        """Move frames from the core's buffer to the ring; after stop, drain what is left."""
        t = 0
        core = self.core
        camera = core.getCameraDevice()
        several = core.getNumberOfCameraChannels() > 1  # a Multi Camera: frames name their camera
        stage = (
            (core.getXPosition(), core.getYPosition(), core.getPosition())
            if core.getXYStageDevice() and core.getFocusDevice()
            else None
        )
        while True:
            if core.getRemainingImageCount() == 0:
                if self._stop.is_set():
                    return
                if not core.isSequenceRunning() and not self._stopping.is_set():
                    raise RuntimeError(
                        f"the camera {core.getCameraDevice()} stopped delivering frames (a device "
                        f"fault?) after {t} frames; they are saved"
                    )
                time.sleep(0.001)
                continue
            frame, meta = core.popNextImageAndMD()
            self._take(frame, meta.get("Camera") or camera, several, stage)
            t += 1

    def _take(
        self,
        frame: np.ndarray,
        camera: str,
        several: bool,
        stage: tuple[float, float, float] | None,
    ) -> None:
        """Each physical camera's and each colour's plane of a frame into a channel of its own,
        named as ``DenoisingOutput`` names them, the next time point of that channel."""
        for colour, plane in grey_planes(frame, self._formats.get(camera, "")):
            name = " ".join(filter(None, (self.channel, camera if several else "", colour)))
            c = self._slots.setdefault(name, len(self._slots))
            self._counts += [0] * (c + 1 - len(self._counts))
            index = FrameIndex(self._counts[c], 0, c, 0)
            self.pipeline.put_frame(plane, index, stage, {"channel": name, "position": "live"})
            self._counts[c] += 1

    def start(self) -> None:
        self.pipeline.start()
        self.core.startContinuousSequenceAcquisition(0)
        self._thread.start()

    def stop_acquiring(self, ended: str | None = None) -> None:
        """Stop the camera; the frames it already delivered are still taken in. ``ended``: how
        the store says live mode ended, if not "completed" (the first one given is kept)."""
        if ended is not None and not self._stopping.is_set():
            self.ended = ended
        self._stopping.set()
        self.core.stopSequenceAcquisition()
        self._stop.set()

    def stop(self) -> RunSummary:
        self.stop_acquiring()
        self._thread.join()
        self.pipeline.drain()
        self.summary = self.pipeline.close({"ended": self.ended})
        return self.summary
