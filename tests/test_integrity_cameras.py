"""Cameras beyond one grey camera: two cameras behind Micro-Manager's Multi Camera, 32-bit float and
colour pixel types, cameras whose frames are too small for the model; and what each stage position's
own plan says.

Micro-Manager's own DemoCamera and Utilities adapters (``demo_core``), with the simulated microscope
where the camera does not matter. Every frame the core emits is recorded and looked up in the store.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import useq
from typer.testing import CliRunner

from livedenoise.app import denoising_output
from livedenoise.cli import app
from livedenoise.storage import open_run

SIDE = 64  # pixels: small frames keep the runs fast


class Recorder:
    """Copies of the frames the core emits, with their events and metadata."""

    def __init__(self, core) -> None:
        self.core = core
        self.frames: list[tuple[np.ndarray, useq.MDAEvent, dict]] = []
        core.mda.events.frameReady.connect(self.add)

    def add(self, img: np.ndarray, event: useq.MDAEvent, meta: dict) -> None:
        self.frames.append((np.array(img, copy=True), event, dict(meta)))

    def close(self) -> None:
        self.core.mda.events.frameReady.disconnect(self.add)


def run(core, sequence: useq.MDASequence, model: Path, out: Path):
    """``sequence`` through ``denoising_output``, as a user's script runs it; the summary and the
    frames the core emitted."""
    recorder = Recorder(core)
    try:
        output = denoising_output(out, model, backend="torch", window=2)
        core.mda.run(sequence, output=output)
        summary = output.finish()
    finally:
        recorder.close()
    return summary, recorder.frames


def small_camera(core, camera: str = "Camera") -> None:
    core.setProperty(camera, "OnCameraCCDXSize", SIDE)
    core.setProperty(camera, "OnCameraCCDYSize", SIDE)


@pytest.fixture
def two_cameras(demo_core):
    """The demo core with two more DemoCamera cameras behind a Utilities Multi Camera, chosen as the
    camera; Cam2 shows noise where Cam1 shows waves, so their frames differ."""
    for name in ("Cam1", "Cam2"):
        demo_core.loadDevice(name, "DemoCamera", "DCam")
        demo_core.initializeDevice(name)
        small_camera(demo_core, name)
    demo_core.setProperty("Cam2", "Mode", "Noise")
    demo_core.loadDevice("Multi", "Utilities", "Multi Camera")
    demo_core.initializeDevice("Multi")
    demo_core.setProperty("Multi", "Physical Camera 1", "Cam1")
    demo_core.setProperty("Multi", "Physical Camera 2", "Cam2")
    demo_core.setCameraDevice("Multi")
    return demo_core


def test_two_cameras_are_two_channels_every_frame_stored_once(
    two_cameras, identity_model_path, tmp_path
):
    """Issue 28 #2: each camera's frames are their own channel, named by camera, all counted."""
    out = tmp_path / "two.ome.zarr"
    sequence = useq.MDASequence(channels=["DAPI", "FITC"], time_plan={"interval": 0, "loops": 3})
    summary, frames = run(two_cameras, sequence, identity_model_path, out)
    assert len(frames) == 12  # 3 time points x 2 presets x 2 cameras
    assert summary.error is None
    assert (summary.acquired, summary.dropped, summary.missing) == (12, 0, 0)
    stored = open_run(out)
    assert len(stored.raw) == 1
    channels = stored.attrs["images"][0]["channels"]
    assert channels == ["DAPI Cam1", "DAPI Cam2", "FITC Cam1", "FITC Cam2"]
    raw = np.asarray(stored.raw[0])
    assert raw.shape == (3, 4, 1, SIDE, SIDE)
    for img, event, meta in frames:
        c = channels.index(f"{event.channel.config} {meta['camera_device']}")
        np.testing.assert_array_equal(raw[event.index["t"], c, 0], img)
    assert not np.array_equal(raw[:, 0], raw[:, 1])  # the cameras are told apart
    assert np.isfinite(np.asarray(stored.denoised[0])).all()


def test_a_float_camera_is_stored_as_float32_values(demo_core, identity_model_path, tmp_path):
    """Issue 28 #3: DemoCamera's 32-bit float frames reach Python as uint32 bit patterns (values near
    1e9); the store holds the float32 values the camera measured, and denoises those."""
    small_camera(demo_core)
    demo_core.setProperty("Camera", "PixelType", "32bit")
    out = tmp_path / "float.ome.zarr"
    sequence = useq.MDASequence(time_plan={"interval": 0, "loops": 2})
    summary, frames = run(demo_core, sequence, identity_model_path, out)
    assert summary.error is None and summary.acquired == 2 and summary.missing == 0
    stored = open_run(out)
    raw = np.asarray(stored.raw[0])
    assert raw.dtype == np.float32 and stored.attrs["images"][0]["dtype"] == "float32"
    for img, event, _ in frames:
        assert img.dtype == np.uint32  # what pymmcore-plus hands over
        np.testing.assert_array_equal(raw[event.index["t"], 0, 0], img.view(np.float32))
    assert 0 < raw.max() < 1e4  # the demo's waves, not bit patterns read as integers
    denoised = np.asarray(stored.denoised[0])
    assert np.isfinite(denoised).all() and denoised.max() < 1e4


def test_a_colour_camera_is_stored_as_one_channel_per_colour(
    demo_core, identity_model_path, tmp_path
):
    """Issue 28 #3: a 32bitRGB camera's frames (height x width x 3) become channels R, G and B of
    the preset, every plane stored and denoised; no traceback, the store complete."""
    small_camera(demo_core)
    demo_core.setProperty("Camera", "PixelType", "32bitRGB")
    demo_core.setProperty("Camera", "Mode", "Color Test Pattern")
    out = tmp_path / "rgb.ome.zarr"
    sequence = useq.MDASequence(channels=["DAPI"], time_plan={"interval": 0, "loops": 2})
    summary, frames = run(demo_core, sequence, identity_model_path, out)
    assert summary.error is None
    assert (summary.acquired, summary.dropped, summary.missing) == (6, 0, 0)
    stored = open_run(out)
    assert stored.attrs["complete"] is True
    assert stored.attrs["images"][0]["channels"] == ["DAPI R", "DAPI G", "DAPI B"]
    raw = np.asarray(stored.raw[0])
    for img, event, _ in frames:
        assert img.shape == (SIDE, SIDE, 3)
        for colour in range(3):
            np.testing.assert_array_equal(raw[event.index["t"], colour, 0], img[:, :, colour])
    assert np.isfinite(np.asarray(stored.denoised[0])).all()


def test_colour_cameras_behind_a_multi_camera_are_stored_as_their_colours(
    two_cameras, identity_model_path, tmp_path
):
    """Issue 28 #2 and #3: a Multi Camera passes its colour cameras' frames on still packed (one
    32-bit word a pixel, not float); each camera's colours are stored as they are when that camera
    is used alone, which for DemoCamera's colour test pattern is the same every frame."""
    for name in ("Cam1", "Cam2"):
        two_cameras.setProperty(name, "PixelType", "32bitRGB")
        two_cameras.setProperty(name, "Mode", "Color Test Pattern")
    two_cameras.setCameraDevice("Cam1")
    pattern = two_cameras.snap()  # pymmcore-plus unpacks a colour camera's own frames
    assert pattern.shape == (SIDE, SIDE, 3)
    two_cameras.setCameraDevice("Multi")
    out = tmp_path / "colours.ome.zarr"
    sequence = useq.MDASequence(channels=["DAPI"], time_plan={"interval": 0, "loops": 2})
    summary, frames = run(two_cameras, sequence, identity_model_path, out)
    assert len(frames) == 4 and frames[0][0].shape == (SIDE, SIDE)  # packed, as delivered
    assert summary.error is None
    assert (summary.acquired, summary.dropped, summary.missing) == (12, 0, 0)
    stored = open_run(out)
    names = [f"DAPI {camera} {colour}" for camera in ("Cam1", "Cam2") for colour in "RGB"]
    assert stored.attrs["images"][0]["channels"] == names
    raw = np.asarray(stored.raw[0])
    assert raw.dtype == np.uint8 and raw.shape == (2, 6, 1, SIDE, SIDE)
    for c in range(6):
        np.testing.assert_array_equal(raw[:, c, 0], np.stack([pattern[:, :, c % 3]] * 2))


def test_frames_smaller_than_the_model_are_refused_as_offline_denoise_refuses(
    demo_core, identity_model_path, tmp_path
):
    """Issue 28 #10: one rule for live runs, sequences, scripts and offline ``denoise``: 6x6 frames
    are refused before anything is acquired, with the message offline denoising gives."""
    import tifffile

    from livedenoise.app import Acquisition, RunRequest
    from livedenoise.pipeline.setup import SetupError

    rule = "frames of 6x6 px are smaller than the model's minimum of 8x8 px"
    demo_core.setROI(0, 0, 6, 6)
    out = tmp_path / "tiny.ome.zarr"
    request = RunRequest(model=identity_model_path, backend="torch", out=out)
    acquisition = Acquisition(demo_core, request)
    sequence = useq.MDASequence(time_plan={"interval": 0, "loops": 3})
    with pytest.raises(SetupError, match=f"camera Camera: {rule}"):
        acquisition.check(sequence)
    with pytest.raises(SetupError, match=f"camera Camera: {rule}"):
        acquisition.start_live()
    assert not acquisition.running and not out.exists()

    # a script's run fails with the same words, its raw frames kept
    summary, frames = run(demo_core, sequence, identity_model_path, out)
    assert summary.error is not None and rule in summary.error
    assert summary.denoised == 0
    tiny = np.stack([f for f, *_ in frames])
    np.testing.assert_array_equal(np.asarray(open_run(out).raw[0])[:, 0, 0], tiny)

    # offline denoise refuses the same frames with the same words
    tifffile.imwrite(tmp_path / "tiny.tif", tiny, photometric="minisblack")
    result = CliRunner().invoke(
        app,
        ["denoise", str(identity_model_path), str(tmp_path / "tiny.tif"), str(tmp_path / "d.tif")],
    )
    assert result.exit_code != 0 and rule in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_no_camera_is_refused_before_the_run(demo_core, identity_model_path, tmp_path):
    from livedenoise.app import Acquisition, RunRequest
    from livedenoise.pipeline.setup import SetupError

    demo_core.setCameraDevice("")
    acquisition = Acquisition(demo_core, RunRequest(model=identity_model_path, backend="torch"))
    with pytest.raises(SetupError, match="no camera is chosen"):
        acquisition.check(useq.MDASequence(time_plan={"interval": 0, "loops": 1}))


def test_positions_with_their_own_plans_record_their_own_z_step_and_name(
    sim_core, identity_model_path, tmp_path
):
    """Issue 28 #9: a stage position whose sub-sequence has its own z plan is recorded with its own
    z-step (in the store's metadata and its image's NGFF scale), and each position with its name."""
    import zarr

    out = tmp_path / "plans.ome.zarr"
    sequence = useq.MDASequence(
        z_plan={"range": 2.0, "step": 2.0},
        stage_positions=[
            {"x": 0, "y": 0, "name": "cell A", "sequence": {"z_plan": {"range": 1.0, "step": 0.5}}},
            {"x": 40, "y": 0, "name": "cell B"},
        ],
    )
    summary, frames = run(sim_core, sequence, identity_model_path, out)
    assert summary.error is None and summary.acquired == len(frames) == 5
    images = open_run(out).attrs["images"]
    assert [(i["position_name"], i["z_step_um"]) for i in images] == [
        ("cell A", 0.5),
        ("cell B", 2.0),
    ]
    assert [np.asarray(r).shape[2] for r in open_run(out).raw] == [3, 2]
    root = zarr.open_group(out, mode="r")
    for kind in ("raw", "denoised"):
        scales = [
            root[f"{kind}/p{p}"].attrs["ome"]["multiscales"][0]["datasets"][0][
                "coordinateTransformations"
            ][0]["scale"]
            for p in (0, 1)
        ]
        assert [s[2] for s in scales] == [0.5, 2.0]


def test_live_mode_keeps_each_camera_of_a_multi_camera_apart(
    two_cameras, identity_model_path, tmp_path
):
    """Issue 28 #2 in live mode: frames of two cameras arrive interleaved in the core's buffer; each
    camera's are its own channel, none stored under the other (Cam1 shows its test pattern, the
    same every frame; Cam2 noise, which never equals it)."""
    from livedenoise.app import Acquisition, RunRequest

    for name, mode in (("Cam1", "Color Test Pattern"), ("Cam2", "Noise")):
        two_cameras.setProperty(name, "PixelType", "16bit")
        two_cameras.setProperty(name, "Mode", mode)
    two_cameras.setCameraDevice("Cam1")
    pattern = two_cameras.snap()
    two_cameras.setCameraDevice("Multi")
    two_cameras.setConfig("Channel", "DAPI")
    out = tmp_path / "live.ome.zarr"
    request = RunRequest(model=identity_model_path, backend="torch", window=2, out=out)
    acquisition = Acquisition(two_cameras, request)
    acquisition.start_live()
    try:
        deadline = time.monotonic() + 60
        while acquisition.pipeline.stats.acquired < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        summary = acquisition.stop()
    assert summary is not None and summary.error is None and summary.dropped == 0
    stored = open_run(out)
    channels = stored.attrs["images"][0]["channels"]
    assert sorted(channels) == ["DAPI Cam1", "DAPI Cam2"]
    raw = stored.raw[0]
    written = np.isfinite(stored.timing["acquired_s"][:, 0, :, 0])  # (t, c): frames taken in
    assert written.sum() == summary.acquired >= 6
    for c, name in enumerate(channels):
        assert written[:, c].any()
        for t in np.flatnonzero(written[:, c]):
            assert np.array_equal(raw[t, c, 0], pattern) == (name == "DAPI Cam1"), (name, t)


def test_acquire_with_a_multi_camera_configuration_stores_both_cameras(
    mm_adapters, identity_model_path, tmp_path
):
    """Issue 28 #2 through ``livedenoise acquire``: a configuration with two DemoCamera cameras
    behind a Utilities Multi Camera (as Micro-Manager's Hardware Configuration Wizard writes it)
    saves both cameras' frames and says no raw frame was lost."""
    lines = (mm_adapters / "MMConfig_demo.cfg").read_text().splitlines()
    devices = [f"Device,{name},DemoCamera,DCam" for name in ("Cam1", "Cam2")]
    devices.append("Device,Multi,Utilities,Multi Camera")
    start = lines.index("Property,Core,Initialize,1")
    settings = [
        "Property,Multi,Physical Camera 1,Cam1",
        "Property,Multi,Physical Camera 2,Cam2",
        "Property,Core,Camera,Multi",
    ]
    config = tmp_path / "two-cameras.cfg"
    config.write_text("\n".join([*lines[:start], *devices, *lines[start:], *settings]) + "\n")
    sequence = tmp_path / "seq.yaml"
    # frame by frame (interval > 0): a burst of a Multi Camera now and then returns one camera's
    # images short under load, inside pymmcore-plus ("Expected 4, got 2"), not in livedenoise
    sequence.write_text("channels: [DAPI]\ntime_plan: {interval: 0.05, loops: 2}\n")
    out = tmp_path / "cli.ome.zarr"
    sizes = [f"--set=Cam{i}.OnCameraCCD{a}Size={SIDE}" for i in (1, 2) for a in "XY"]
    model = ["--model", str(identity_model_path), "--backend", "torch", "--out", str(out)]
    result = CliRunner().invoke(
        app, ["acquire", str(sequence), "--config", str(config), *sizes, "--headless", *model]
    )
    assert result.exit_code == 0, result.output
    lost = next(line for line in result.output.splitlines() if "raw frames lost" in line)
    assert lost.split("raw frames lost")[1].strip(" │") == "0", lost
    stored = open_run(out)
    assert stored.attrs["images"][0]["channels"] == ["DAPI Cam1", "DAPI Cam2"]
    assert stored.attrs["summary"]["acquired"] == 4 and stored.attrs["summary"]["missing"] == 0
    assert np.asarray(stored.raw[0]).shape == (2, 2, 1, SIDE, SIDE)
