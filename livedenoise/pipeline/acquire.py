"""The bridge from a Micro-Manager core to the live pipeline, for MDA sequences and live mode.

Only standard Micro-Manager calls are used, so the same code drives the simulated microscope, the demo
configuration and real hardware.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import useq
from pydantic import BaseModel, ConfigDict, Field
from pymmcore_plus import CMMCorePlus

from livedenoise.pipeline.live import Denoiser, LivePipeline, Policy
from livedenoise.pipeline.mosaic import Mosaic
from livedenoise.pipeline.ring import FrameInfo, FrameRing
from livedenoise.pipeline.windows import WindowAssembler, WindowAxis, default_axis
from livedenoise.storage import FrameIndex, RunLayout, RunStore


class RunSettings(BaseModel):
    """How a run denoises and where it writes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    out: Path
    policy: Policy = Policy.record
    window: int = Field(4, ge=1, le=64, description="frames per denoising window (T)")
    window_axis: WindowAxis | None = Field(None, description="t or z; None picks from the sequence")
    ring_bytes: int = Field(512 * 2**20, ge=1, description="memory for the frame ring")


def _axis_size(sequence: useq.MDASequence, axis: str) -> int:
    return max(1, sequence.sizes.get(axis, 0))


def expected_frames(sequence: useq.MDASequence) -> int:
    """Frames a sequence will deliver, from its sizes.

    Never iterate the sequence before the run: useq caches its events, and the MDA engine sets the
    grid's field of view from the camera only when the run starts.
    """
    return int(np.prod([max(1, n) for n in sequence.sizes.values()]))


def frame_dtype(core: CMMCorePlus) -> np.dtype:
    return np.dtype({1: np.uint8, 2: np.uint16, 4: np.uint32}[core.getBytesPerPixel()])


def layout_for(core: CMMCorePlus, sequence: useq.MDASequence) -> RunLayout:
    """The run's array shape from the sequence and the camera's current frame size and depth."""
    channels = tuple(ch.config for ch in sequence.channels) or (
        core.getCurrentConfig("Channel") or "default",
    )
    z_step = getattr(sequence.z_plan, "step", 1.0) if sequence.z_plan else 1.0
    interval = sequence.time_plan.interval.total_seconds() if sequence.time_plan else 1.0
    return RunLayout(
        height=core.getImageHeight(),
        width=core.getImageWidth(),
        dtype=frame_dtype(core).name,
        timepoints=_axis_size(sequence, "t"),
        positions=_axis_size(sequence, "p") * _axis_size(sequence, "g"),
        channels=channels,
        slices=_axis_size(sequence, "z"),
        pixel_size_um=core.getPixelSizeUm() or 1.0,
        z_step_um=float(z_step or 1.0),
        interval_s=float(interval or 1.0),
    )


def device_state(core: CMMCorePlus) -> list[list[str]]:
    """Every device property value at the start of the run: the acquisition settings, as recorded."""
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

    def __init__(self, cancel: Callable[[], None]) -> None:
        super().__init__(logging.WARNING)
        self.cancel = cancel
        self.messages: list[str] = []
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
        layout = layout_for(core, sequence)
        self._grid = _axis_size(sequence, "g")
        self._expected = expected_frames(sequence)
        axis = settings.window_axis or default_axis(layout.timepoints, layout.slices)
        store = RunStore(
            settings.out,
            layout,
            {
                **attrs,
                "policy": settings.policy.value,
                "window": {"size": settings.window, "axis": axis},
                "sequence": sequence.model_dump(mode="json", exclude_unset=True),
                "devices": device_state(core),
            },
        )
        ring = FrameRing.for_memory(
            settings.ring_bytes, (layout.height, layout.width), layout.dtype
        )
        self.pipeline = LivePipeline(
            engine, store, ring, WindowAssembler(settings.window, axis), settings.policy
        )
        self.mosaic: Mosaic | None = None
        if layout.positions > 1:
            self.mosaic = Mosaic(layout.pixel_size_um, (layout.height, layout.width))
            self.pipeline.frameDenoised.connect(self._place_tile)
        self.summary: dict[str, Any] | None = None

    @property
    def mosaic_path(self) -> Path:
        """The stitched preview, beside the store."""
        store = self.pipeline.store.path
        return store.with_name(
            store.name.removesuffix(".zarr").removesuffix(".ome") + ".mosaic.tif"
        )

    def _place_tile(self, raw: np.ndarray, denoised: np.ndarray, info: FrameInfo) -> None:
        assert self.mosaic is not None and info.stage_um is not None
        x, y, _ = info.stage_um
        self.mosaic.add(denoised, x, y, info.index.c, info.index.z)

    def _on_frame(self, img: np.ndarray, event: useq.MDAEvent, meta: dict) -> None:
        i = event.index
        index = FrameIndex(
            i.get("t", 0), i.get("p", 0) * self._grid + i.get("g", 0), i.get("c", 0), i.get("z", 0)
        )
        stage = (event.x_pos or 0.0, event.y_pos or 0.0, event.z_pos or 0.0)
        self.pipeline.put_frame(img, index, stage, {"exposure_ms": meta.get("exposure_ms")})

    def run(self) -> dict[str, Any]:
        """Acquire in this thread (it becomes the acquisition thread) and return the run's summary."""
        self.pipeline.start()
        self.core.mda.events.frameReady.connect(self._on_frame)
        try:
            with _DeviceFailures(self.core.mda.cancel) as failures:
                self.core.mda.run(self.sequence)
        finally:
            self.core.mda.events.frameReady.disconnect(self._on_frame)
            missing = self._expected - self.pipeline.stats.acquired
            self.summary = self.pipeline.finish()
            if self.mosaic is not None and self.mosaic.tiles:
                self.summary["mosaic"] = str(self.mosaic.save(self.mosaic_path))
            self.summary["missing"] = missing
            if failures.messages:
                self.summary["error"] = (
                    f"the run stopped after {self.pipeline.stats.acquired} of {self._expected} "
                    f"frames because a device failed: {failures.messages[0]}. Every frame acquired "
                    f"before that is saved in {self.pipeline.store.path}."
                )
        return self.summary

    def cancel(self) -> None:
        self.core.mda.cancel()


class LiveAcquisition:
    """Continuous acquisition (Micro-Manager's live mode) through the pipeline until stopped."""

    def __init__(
        self, core: CMMCorePlus, engine: Denoiser, settings: RunSettings, attrs: dict[str, Any]
    ):
        self.core = core
        channel = (
            core.getCurrentConfig("Channel") if "Channel" in core.getAvailableConfigGroups() else ""
        )
        layout = RunLayout(
            height=core.getImageHeight(),
            width=core.getImageWidth(),
            dtype=frame_dtype(core).name,
            timepoints=64,
            channels=(channel or "default",),
            pixel_size_um=core.getPixelSizeUm() or 1.0,
            interval_s=max(core.getExposure(), 1.0) / 1e3,
        )
        store = RunStore(
            settings.out,
            layout,
            {
                **attrs,
                "policy": settings.policy.value,
                "mode": "live",
                "devices": device_state(core),
            },
        )
        ring = FrameRing.for_memory(
            settings.ring_bytes, (layout.height, layout.width), layout.dtype
        )
        self.pipeline = LivePipeline(
            engine, store, ring, WindowAssembler(settings.window, "t"), settings.policy
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, name="livedenoise-live")
        self.summary: dict[str, Any] | None = None

    def _pump(self) -> None:
        """Move frames from the core's buffer to the ring; after stop, drain what is left."""
        t = 0
        core = self.core
        stage = (
            (core.getXPosition(), core.getYPosition(), core.getPosition())
            if core.getXYStageDevice() and core.getFocusDevice()
            else None
        )
        while True:
            if core.getRemainingImageCount() == 0:
                if self._stop.is_set():
                    return
                time.sleep(0.001)
                continue
            self.pipeline.put_frame(core.popNextImage(), FrameIndex(t, 0, 0, 0), stage)
            t += 1

    def start(self) -> None:
        self.pipeline.start()
        self.core.startContinuousSequenceAcquisition(0)
        self._thread.start()

    def stop(self) -> dict[str, Any]:
        self.core.stopSequenceAcquisition()
        self._stop.set()
        self._thread.join()
        self.summary = self.pipeline.finish()
        return self.summary
