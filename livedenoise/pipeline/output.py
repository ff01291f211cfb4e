"""The live pipeline as a pymmcore-plus MDA output, for any script that drives a core.

pymmcore-plus connects an output object's ``sequenceStarted``, ``frameReady`` and ``sequenceFinished``
methods to its runner's signals, as it does for its own writers::

    output = DenoisingOutput(RunSettings(out=Path("run.ome.zarr")), engine)
    core.mda.run(sequence, output=output)
    summary = output.finish()  # RunSummary; run.ome.zarr holds every raw and denoised frame

The store is sized from what the run reports when it starts (the summary metadata's image size, dtype
and pixel size, the sequence's axes), and records every device property as the run began.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import useq
from pydantic import BaseModel, ConfigDict, Field

from livedenoise.events import Events
from livedenoise.frames import FrameIndex, FrameInfo, RunLayout, grey_planes
from livedenoise.pipeline.live import Denoiser, LivePipeline, Policy, relay
from livedenoise.pipeline.mosaic import Mosaic
from livedenoise.pipeline.ring import FrameRing
from livedenoise.pipeline.stats import AutofocusFailure, RunSummary
from livedenoise.pipeline.windows import WindowAssembler, WindowAxis, default_axis
from livedenoise.storage import RunStore, check_new_store


class RunSettings(BaseModel):
    """How a run denoises and where it writes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    out: Path
    policy: Policy = Policy.record
    window: int = Field(4, ge=1, le=64, description="frames per denoising window (T)")
    window_axis: WindowAxis | None = Field(None, description="t or z; None picks from the sequence")
    ring_bytes: int = Field(512 * 2**20, ge=1, description="memory for the frame ring")


def axis_size(sequence: useq.MDASequence, axis: str) -> int:
    return max(1, sequence.sizes.get(axis, 0))


def is_image_event(event: useq.MDAEvent) -> bool:
    """An event that acquires a frame: not an autofocus step or another action (the MDA engine
    acquires only for these)."""
    return event.action is None or isinstance(event.action, useq.AcquireImage)


def expected_frames(sequence: useq.MDASequence) -> int:
    """Frames a sequence will deliver, counted over its image events (sub-sequences included).

    Count only once the run has started: the MDA engine sets a grid's field of view from the camera
    then, which decides how many tiles a grid with bounds has.
    """
    return sum(1 for event in sequence if is_image_event(event))


def summary_properties(meta: Mapping[str, Any]) -> list[list[str]]:
    """Every device property as ``[device, property, value]``, from pymmcore-plus summary metadata."""
    return [
        [dev["label"], prop["name"], str(prop["value"])]
        for dev in meta.get("devices", ())
        for prop in dev.get("properties", ())
    ]


def current_preset(meta: Mapping[str, Any], group: str) -> str | None:
    """The preset of config ``group`` whose settings all match the devices' values, if one does."""
    values = {(dev, prop): value for dev, prop, value in summary_properties(meta)}
    for g in meta.get("config_groups", ()):
        if g["name"] != group:
            continue
        for preset in g["presets"]:
            settings = preset["settings"]
            if settings and all(
                values.get((s["dev"], s["prop"])) == str(s["val"]) for s in settings
            ):
                return preset["name"]
    return None


def z_step_um(sequence: useq.MDASequence) -> float:
    """The z-step of a sequence's z plan (1 um without one, or for a plan of listed positions)."""
    return float(getattr(sequence.z_plan, "step", None) or 1.0)


def position_plan(sequence: useq.MDASequence, p: int) -> tuple[str | None, float]:
    """Stage position ``p``'s name and z-step: from its own sub-sequence's z plan where it has one,
    else the sequence's."""
    if p >= len(sequence.stage_positions):
        return None, z_step_um(sequence)
    position = sequence.stage_positions[p]
    own = position.sequence
    plan = own if own is not None and own.z_plan is not None else sequence
    return position.name, z_step_um(plan)


def camera_formats(meta: Mapping[str, Any]) -> dict[str, str]:
    """Every camera's pixel format by label, in pymmcore-plus's names (see ``grey_planes``)."""
    return {info["camera_label"]: str(info.get("pixel_format", "")) for info in meta["image_infos"]}


def physical_cameras(meta: Mapping[str, Any]) -> list[str]:
    """The cameras whose frames a run delivers, in their order: the chosen camera, or those a
    Utilities Multi Camera names in its ``Physical Camera N`` properties."""
    info = meta["image_infos"][0]
    label, count = info["camera_label"], int(info.get("num_camera_adapter_channels") or 1)
    cameras = camera_formats(meta)
    named = [
        value
        for device, prop, value in summary_properties(meta)
        if device == label and prop.startswith("Physical Camera") and value in cameras
    ]
    return named if count > 1 and len(named) == count else [label] * count


def planes_per_event(meta: Mapping[str, Any]) -> int:
    """Frames the pipeline takes in per image event: one per physical camera (a Multi Camera
    delivers each), three for a colour camera (see ``grey_planes``)."""
    formats = camera_formats(meta)
    return sum(3 if formats[camera].startswith("RGB") else 1 for camera in physical_cameras(meta))


def layout_from_meta(sequence: useq.MDASequence, meta: Mapping[str, Any]) -> RunLayout:
    """Sizes to allocate first and the physical scale, from the sequence and the run's metadata.

    Images take their frame shape and dtype from their first frame and grow as frames arrive, so a
    sequence whose sub-sequences or presets change sizes is stored as delivered.
    """
    info = meta["image_infos"][0]
    return RunLayout(
        timepoints=axis_size(sequence, "t"),
        channels=axis_size(sequence, "c") * planes_per_event(meta),
        slices=axis_size(sequence, "z"),
        pixel_size_um=float(info.get("pixel_size_um") or 1.0),
        z_step_um=z_step_um(sequence),
    )


def is_tiled(sequence: useq.MDASequence) -> bool:
    """Several stage positions or grid tiles, in the sequence or its positions' sub-sequences."""
    inner = [pos.sequence for pos in sequence.stage_positions if pos.sequence is not None]
    return (
        len(sequence.stage_positions) > 1
        or sequence.grid_plan is not None
        or any(sub.grid_plan is not None for sub in inner)
    )


def mosaic_path(store: Path) -> Path:
    """The stitched preview of a tiled run, beside its store."""
    return store.with_name(store.name.removesuffix(".zarr").removesuffix(".ome") + ".mosaic.tif")


class DenoisingOutput:
    """Writes raw and denoised frames of an MDA run to one OME-Zarr store; tiles fill a mosaic.

    ``attrs`` (the model card, backend, calibration profile...) are recorded in the store's metadata.
    ``events`` (see ``livedenoise.events``): started(LivePipeline) once the store exists; the
    pipeline's frame signals and failed(RunError), from its threads; finished(RunSummary) once the
    store is closed.
    """

    def __init__(
        self, settings: RunSettings, engine: Denoiser, attrs: dict[str, Any] | None = None
    ) -> None:
        check_new_store(settings.out)
        self.settings = settings
        self.engine = engine
        self.attrs = dict(attrs or {})
        self.pipeline: LivePipeline | None = None
        self.mosaic: Mosaic | None = None
        self.summary: RunSummary | None = None
        self.device_errors: list[str] = []  # filled by whoever watches the devices
        self.run_error: str | None = None  # why the MDA runner failed, from whoever ran it
        self.autofocus_failures: list[AutofocusFailure] = []  # filled by whoever watches the log
        self.stopped: str | None = None  # how the run was stopped early (STOPPED_BY_USER...)
        self.canceled = False  # the MDA runner was canceled (by whoever drives the core)
        # False when whoever runs the sequence closes the store itself, after recording errors the
        # runner raises only after ``sequenceFinished``
        self.finish_on_sequence_finished = True
        self.expected = 0  # frames the sequence will deliver, known once it started
        self._sequence = useq.MDASequence()
        self._images: dict[tuple[Any, ...], int] = {}  # (position, shape, dtype) -> image
        self._channels: dict[int, dict[str, int]] = {}  # image -> preset -> channel slot
        self._default_channel = "default"
        self._formats: dict[str, str] = {}  # camera -> pixel format
        self._camera = ""  # the chosen camera
        self._pixel_size_um = 1.0
        self._tiled = False
        self._finishing = threading.Lock()
        self.events = Events()

    @property
    def path(self) -> Path:
        return self.settings.out

    def sequenceStarted(self, sequence: useq.MDASequence, meta: Mapping[str, Any]) -> None:
        layout = layout_from_meta(sequence, meta)
        self.expected = expected_frames(sequence) * planes_per_event(meta)
        self._formats = camera_formats(meta)
        self._camera = meta["image_infos"][0]["camera_label"]
        self._sequence = sequence
        self._tiled = is_tiled(sequence)
        self._pixel_size_um = layout.pixel_size_um
        group = next(
            (v for d, p, v in summary_properties(meta) if (d, p) == ("Core", "ChannelGroup")), ""
        )
        self._default_channel = (current_preset(meta, group) if group else None) or "default"
        axis = self.settings.window_axis or default_axis(layout.timepoints, layout.slices)
        store = RunStore(
            self.settings.out,
            layout,
            {
                **self.attrs,
                "policy": self.settings.policy.value,
                "window": {"size": self.settings.window, "axis": axis},
                "sequence": sequence.model_dump(mode="json", exclude_unset=True),
                "devices": summary_properties(meta),
            },
        )
        info = meta["image_infos"][0]
        ring = FrameRing.for_memory(
            self.settings.ring_bytes, (info["height"], info["width"]), info["dtype"]
        )
        pipeline = LivePipeline(
            self.engine,
            store,
            ring,
            WindowAssembler(self.settings.window, axis),
            self.settings.policy,
        )
        relay(pipeline.events, self.events)
        if self._tiled:
            pipeline.events.frameDenoised.connect(self._place_tile)
        self.pipeline = pipeline
        pipeline.start()
        self.events.started.emit(pipeline)

    def _index(
        self, plane: np.ndarray, event: useq.MDAEvent, channel_name: str
    ) -> tuple[FrameIndex, dict[str, Any]]:
        """Where a plane goes: its image (a stage position or tile, and a frame shape and dtype) and
        its channel slot in that image, in the order they first appear."""
        i = event.index
        position = (i.get("p", 0), i.get("g"))
        key = (position, plane.shape, plane.dtype.str)
        image = self._images.setdefault(key, len(self._images))
        slots = self._channels.setdefault(image, {})
        channel = slots.setdefault(channel_name, len(slots))
        label = f"p{position[0]}" + (f" g{position[1]}" if position[1] is not None else "")
        index = FrameIndex(i.get("t", 0), image, channel, i.get("z", 0))
        name, z_step = position_plan(self._sequence, position[0])
        names = {"channel": channel_name, "position": label, "z_step_um": z_step}
        return index, names | ({"position_name": name} if name else {})

    def frameReady(self, img: np.ndarray, event: useq.MDAEvent, meta: Mapping[str, Any]) -> None:
        """Take a frame in: each physical camera's (Multi Camera) and each colour's plane is a
        channel of its own, named after the preset, the camera and the colour."""
        assert self.pipeline is not None, "frameReady before sequenceStarted"
        try:
            preset = event.channel.config if event.channel else self._default_channel
            camera = meta.get("camera_device") if "cam" in event.index else None
            stage = (event.x_pos or 0.0, event.y_pos or 0.0, event.z_pos or 0.0)
            pixel_format = self._formats.get(camera or self._camera, "")
            for colour, plane in grey_planes(img, pixel_format):
                channel_name = " ".join(filter(None, (preset, camera, colour)))
                index, names = self._index(plane, event, channel_name)
                extra = {"exposure_ms": meta.get("exposure_ms"), **names}
                self.pipeline.put_frame(plane, index, stage, extra)
        except Exception as err:  # the runner only logs a handler's error: make it the run's
            self.pipeline.report_error(f"frame {dict(event.index)} could not be taken in: {err}")
            raise

    def sequenceCanceled(self, sequence: useq.MDASequence) -> None:
        self.canceled = True

    def sequenceFinished(self, sequence: useq.MDASequence) -> None:
        if self.finish_on_sequence_finished:
            self.finish()

    def finish(self) -> RunSummary | None:
        """Denoise what is left, save the mosaic, close the store; the run's summary.

        ``sequenceFinished`` calls it; call it yourself after ``core.mda.run`` returns as well:
        pymmcore-plus delivers outputs' events from a relay thread that can end before the last
        event reaches it. A second call returns the same summary. None if the run never started.
        """
        with self._finishing:
            closing = self.pipeline if self.summary is None else None
            if closing is not None:
                self.summary = self._close(closing)
        if closing is not None:  # outside the lock: a receiver may ask for the summary again
            self.events.finished.emit(self.summary)
        return self.summary

    def _close(self, pipeline: LivePipeline) -> RunSummary:
        pipeline.drain()
        acquired = pipeline.stats.acquired
        missing = max(0, self.expected - acquired)
        if error := self._failure(acquired, missing):
            pipeline.report_error(error)
        extra: dict[str, Any] = {
            "missing": missing,
            "ended": self.stopped or ("canceled" if self.canceled else "completed"),
            "autofocus_failures": self.autofocus_failures,
        }
        if self.mosaic is not None and self.mosaic.tiles:
            extra["mosaic"] = str(self.mosaic.save(mosaic_path(self.path)))
        return pipeline.close(extra)

    def _failure(self, acquired: int, missing: int) -> str | None:
        """Why the run failed, if it did: a device, the MDA runner, or frames that never arrived
        although nobody stopped the run (a camera's buffer overflowed, it stopped delivering)."""
        saved = f"Every frame acquired before that is saved in {self.path}."
        if self.device_errors:
            reason = f"because a device failed: {self.device_errors[0]}"
        elif self.run_error:
            reason = f"because {self.run_error}"
        elif missing and self.stopped is None and not self.canceled:
            reason = (
                f"({missing} never arrived): the camera stopped delivering or its buffer "
                "overflowed; see pymmcore-plus's log"
            )
        else:
            return None
        return f"the run stopped after {acquired} of {self.expected} frames {reason}. {saved}"

    def _place_tile(self, raw: np.ndarray, denoised: np.ndarray, info: FrameInfo) -> None:
        """Blend a denoised tile into the mosaic (tiles of the first tile's shape; others stay out)."""
        assert info.stage_um is not None
        if self.mosaic is None:
            self.mosaic = Mosaic(self._pixel_size_um, denoised.shape)
        if denoised.shape == self.mosaic.tile_shape:
            x, y, _ = info.stage_um
            self.mosaic.add(denoised, x, y, info.index.c, info.index.z)
