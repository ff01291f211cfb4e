"""Every frame the microscope delivers is stored exactly once, bit-exact, or the run fails loudly.

The frames are recorded as the core emits them (its own ``frameReady``) and looked up in the store by
the position, channel, t and z their event names. On the simulated microscope, and on Micro-Manager's
own DemoCamera and Utilities adapters for several cameras, float and colour pixel types.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import useq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livedenoise.acquisition import make_core
from livedenoise.inference import load_engine
from livedenoise.pipeline.output import RunSettings
from livedenoise.pipeline.runs import AcquisitionRun
from livedenoise.pipeline.setup import apply_assignments
from livedenoise.storage import open_run

# presets of the "Channel" group that change what the detector delivers mid-run
PRESETS = {
    "Small": [("FrameWidth", "24"), ("FrameHeight", "16"), ("BitDepth", "12")],
    "Big": [("FrameWidth", "40"), ("FrameHeight", "32"), ("BitDepth", "12")],
    "Shallow": [("FrameWidth", "24"), ("FrameHeight", "16"), ("BitDepth", "8")],
}


def make_test_core():
    core = make_core()
    apply_assignments(
        core,
        [
            "Detector.FrameWidth=32",
            "Detector.FrameHeight=32",
            "Detector.TimeScale=0",
            "Detector.Photobleaching=Off",
        ],
    )
    for name, settings_ in PRESETS.items():
        for prop, value in settings_:
            core.defineConfig("Channel", name, "Detector", prop, value)
    return core


class Recorder:
    """Copies of the frames the core emits, with their events and the camera that took them."""

    def __init__(self, core) -> None:
        self.frames: list[tuple[np.ndarray, useq.MDAEvent]] = []
        self.cameras: list[str | None] = []
        core.mda.events.frameReady.connect(self.add)

    def add(self, img: np.ndarray, event: useq.MDAEvent, meta: dict) -> None:
        self.frames.append((np.array(img, copy=True), event))
        self.cameras.append(meta.get("camera_device"))


def assert_stored_exactly(path: Path, frames: list[tuple[np.ndarray, useq.MDAEvent]]) -> None:
    """Each emitted frame is in the store, bit-exact and in its own dtype, where its event says
    (without a channel in the sequence, frames are the current preset's: one channel)."""
    channels = [event.channel.config if event.channel else None for _, event in frames]
    assert_planes_stored(
        path, [(img, event, c) for (img, event), c in zip(frames, channels, strict=True)]
    )
    assert open_run(path).attrs["summary"]["acquired"] == len(frames)


def assert_planes_stored(
    path: Path, planes: list[tuple[np.ndarray, useq.MDAEvent, str | None]]
) -> None:
    """Each plane is in the store, bit-exact and in its dtype, at its event's position, t and z, in
    the channel named (None: the image's only channel)."""
    run = open_run(path)
    images = run.attrs["images"]
    assert sum(int(np.prod(r.shape[:3])) for r in run.raw) >= len(planes)
    for img, event, channel in planes:
        i = event.index
        label = f"p{i.get('p', 0)}" + (f" g{i['g']}" if "g" in i else "")
        matches = [
            n
            for n, image in enumerate(images)
            if image["position"] == label
            and tuple(image["shape"]) == img.shape
            and image["dtype"] == str(img.dtype)
        ]
        assert len(matches) == 1, (label, img.shape, img.dtype, images)
        n = matches[0]
        c = images[n]["channels"].index(channel) if channel is not None else 0
        stored = np.asarray(run.raw[n][i.get("t", 0), c, i.get("z", 0)])
        assert stored.dtype == img.dtype
        np.testing.assert_array_equal(stored, img)
        assert np.isfinite(np.asarray(run.denoised[n][i.get("t", 0), c, i.get("z", 0)])).all()


@pytest.fixture(scope="module")
def engine(identity_model_path: Path):
    return load_engine(identity_model_path, "torch")


def _run(core, sequence: useq.MDASequence, engine, out: Path):
    recorder = Recorder(core)
    try:
        summary = AcquisitionRun(core, sequence, engine, RunSettings(out=out, window=2), {}).run()
    finally:
        core.mda.events.frameReady.disconnect(recorder.add)
    return summary, recorder.frames


def test_presets_that_change_the_roi_and_bit_depth_are_stored_as_delivered(engine, tmp_path):
    """The camera is 32x32 12-bit before the run; the presets make 24x16 and 40x32 frames, and 8-bit
    ones: each shape and dtype is its own image, nothing cropped, cast or dropped."""
    core = make_test_core()
    sequence = useq.MDASequence(
        channels=["Small", "Big", "Shallow"], time_plan={"interval": 0, "loops": 2}
    )
    summary, frames = _run(core, sequence, engine, tmp_path / "roi.ome.zarr")
    assert summary.error is None and summary.acquired == 6 and summary.dropped == 0
    assert {f.dtype for f, _ in frames} == {np.dtype("uint16"), np.dtype("uint8")}
    assert_stored_exactly(tmp_path / "roi.ome.zarr", frames)
    shapes = [tuple(i["shape"]) for i in open_run(tmp_path / "roi.ome.zarr").attrs["images"]]
    assert sorted(shapes) == [(16, 24), (16, 24), (32, 40)]


def test_a_grid_sub_sequence_stores_every_tile(engine, tmp_path):
    """Two positions, the second with its own 2x2 grid: five images, not two."""
    core = make_test_core()
    sub = {"grid_plan": {"rows": 2, "columns": 2}}
    sequence = useq.MDASequence(stage_positions=[(0, 0), {"x": 50, "y": 50, "sequence": sub}])
    summary, frames = _run(core, sequence, engine, tmp_path / "grid.ome.zarr")
    assert len(frames) == 5 and summary.acquired == 5 and summary.missing == 0
    assert_stored_exactly(tmp_path / "grid.ome.zarr", frames)
    run = open_run(tmp_path / "grid.ome.zarr")
    assert [i["position"] for i in run.attrs["images"]] == [
        "p0",
        "p1 g0",
        "p1 g1",
        "p1 g2",
        "p1 g3",
    ]
    # each tile sits where the stage put it (the position is the field's centre, 0.2 um pixels)
    for (_, event), image in zip(frames, run.attrs["images"], strict=True):
        y, x = image["translation_um"]
        assert x == pytest.approx(event.x_pos - 16 * 0.2) and y == pytest.approx(
            event.y_pos - 16 * 0.2
        )


@st.composite
def sequences(draw) -> useq.MDASequence:
    """Small sequences over time, z, channels whose presets change ROI or bit depth, positions
    with and without grid sub-sequences."""
    plan: dict = {"axis_order": draw(st.sampled_from(["tpgcz", "tpgzc", "tpcz"]))}
    if loops := draw(st.integers(0, 3)):
        plan["time_plan"] = {"interval": 0, "loops": loops}
    if steps := draw(st.integers(0, 2)):
        plan["z_plan"] = {"range": float(steps), "step": 1.0}
    channels = draw(st.lists(st.sampled_from([*PRESETS, "FITC"]), unique=True, max_size=3))
    if channels:
        plan["channels"] = channels
    positions = []
    for p in range(draw(st.integers(0, 2))):
        position: dict = {"x": 40.0 * p, "y": -30.0 * p}
        if draw(st.booleans()):
            position["sequence"] = {"grid_plan": {"rows": 1, "columns": draw(st.integers(1, 2))}}
        positions.append(position)
    if positions:
        plan["stage_positions"] = positions
    if not (loops or steps or channels or positions):
        plan["time_plan"] = {"interval": 0, "loops": 1}
    return useq.MDASequence(**plan)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sequence=sequences())
def test_every_frame_the_core_emits_is_stored_bit_exact(engine, tmp_path, sequence) -> None:
    core = make_test_core()
    out = tmp_path / f"run-{abs(hash(sequence.model_dump_json()))}.ome.zarr"
    if out.exists():  # hypothesis may replay an example
        return
    summary, frames = _run(core, sequence, engine, out)
    if summary.error is not None:  # allowed: the run says why, and the store says it too
        assert open_run(out).attrs["summary"]["error"] == summary.error
        return
    assert summary.acquired == len(frames) and summary.dropped == 0 and summary.missing == 0
    assert_stored_exactly(out, frames)


# Micro-Manager's DemoCamera pixel types: 8/16-bit grey, 32-bit float grey (delivered as uint32 bit
# patterns), 32-bit colour (height x width x 3; packed one word a pixel behind a Multi Camera)
PIXEL_TYPES = ("8bit", "16bit", "32bit", "32bitRGB")


@contextmanager
def demo_cameras(adapters: Path, cameras: int, pixel_type: str) -> Iterator:
    """Micro-Manager's demo configuration with ``cameras`` DemoCamera cameras of ``pixel_type``
    (24x16 frames of waves), several of them behind a Utilities Multi Camera; unloaded after."""
    from pymmcore_plus import CMMCorePlus

    core = CMMCorePlus()
    core.setDeviceAdapterSearchPaths([str(adapters)])
    core.loadSystemConfiguration(str(adapters / "MMConfig_demo.cfg"))
    try:
        names = ["Camera"] if cameras == 1 else [f"Cam{i + 1}" for i in range(cameras)]
        for name in names:
            if name not in core.getLoadedDevices():
                core.loadDevice(name, "DemoCamera", "DCam")
                core.initializeDevice(name)
            core.setProperty(name, "OnCameraCCDXSize", 24)
            core.setProperty(name, "OnCameraCCDYSize", 16)
            core.setProperty(name, "PixelType", pixel_type)
        if cameras > 1:
            core.loadDevice("Multi", "Utilities", "Multi Camera")
            core.initializeDevice("Multi")
            for i, name in enumerate(names):
                core.setProperty("Multi", f"Physical Camera {i + 1}", name)
            core.setCameraDevice("Multi")
        yield core
    finally:
        core.unloadAllDevices()


def camera_planes(img: np.ndarray, pixel_type: str) -> list[tuple[str, np.ndarray]]:
    """What the camera measured, from a frame as pymmcore-plus delivers it: float32 values for the
    32-bit grey type, one plane per colour for the colour type."""
    if pixel_type == "32bit":
        return [("", img.view(np.float32))]
    if pixel_type == "32bitRGB":
        rgb = img if img.ndim == 3 else img.view(np.uint8).reshape(*img.shape, 4)[:, :, 2::-1]
        return [(colour, rgb[:, :, k]) for k, colour in enumerate("RGB")]
    return [("", img)]


@st.composite
def camera_runs(draw) -> tuple[int, str, useq.MDASequence]:
    """One to three cameras of one pixel type, and a small sequence over time, z, the demo's
    channel presets and stage positions, with or without autofocus steps."""
    plan: dict = {
        "channels": draw(
            st.lists(st.sampled_from(["DAPI", "FITC", "Cy5"]), min_size=1, max_size=2, unique=True)
        )
    }
    if loops := draw(st.integers(0, 2)):
        plan["time_plan"] = {"interval": 0, "loops": loops}
    if steps := draw(st.integers(0, 2)):
        plan["z_plan"] = {"range": float(steps), "step": 1.0}
    if positions := draw(st.integers(0, 2)):
        plan["stage_positions"] = [(10.0 * p, -5.0 * p, 0.0) for p in range(positions)]
    if draw(st.booleans()):
        axes = draw(st.sampled_from([("t",), ("p",), ("c",), ("t", "p")]))
        plan["autofocus_plan"] = {"autofocus_device_name": "Z", "axes": axes}
    return draw(st.integers(1, 3)), draw(st.sampled_from(PIXEL_TYPES)), useq.MDASequence(**plan)


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,  # the same examples on every machine: a CI run must not hinge on the draw
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(run=camera_runs())
def test_every_plane_of_every_camera_is_stored_bit_exact(
    engine, mm_adapters, tmp_path, run
) -> None:
    """Several cameras, float and colour pixel types, autofocus steps: each camera's frames, each
    colour's plane, are a channel named by preset, camera and colour; every one stored once, as the
    camera measured it; autofocus steps are not frames."""
    cameras, pixel_type, sequence = run
    out = Path(tempfile.mkdtemp(dir=tmp_path)) / "run.ome.zarr"  # a new one for each example
    with demo_cameras(mm_adapters, cameras, pixel_type) as core:
        recorder = Recorder(core)
        summary = AcquisitionRun(core, sequence, engine, RunSettings(out=out, window=2), {}).run()
    images = sum(1 for e in sequence if not isinstance(e.action, useq.HardwareAutofocus))
    assert len(recorder.frames) == images * cameras
    planes = []
    for (img, event), camera in zip(recorder.frames, recorder.cameras, strict=True):
        named = camera if cameras > 1 else ""
        for colour, plane in camera_planes(img, pixel_type):
            channel = " ".join(filter(None, (event.channel.config, named, colour)))
            planes.append((plane, event, channel))
    assert summary.error is None, summary.error
    assert summary.acquired == len(planes) and summary.dropped == 0 and summary.missing == 0
    assert_planes_stored(out, planes)
    if pixel_type == "32bit":  # the demo's waves, not bit patterns read as integers
        assert all(np.isfinite(plane).all() and plane.max() < 1e4 for plane, _, _ in planes)
