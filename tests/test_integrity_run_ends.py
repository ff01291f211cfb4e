"""How a run ends when it does not complete, and what its store then says (issue 28, items 4, 7, 8).

A camera buffer that overflows, a SIGTERM, a failing autofocus: each is recorded in the store's
summary, told on screen and gives a non-zero exit; frames never written never read as real data.
Micro-Manager's own DemoCamera (sequence acquisition, an autofocus, a Z stage with a travel range)
where the item is about a camera or a focus device; the simulated microscope elsewhere.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import numpy as np
import pytest
import useq
from conftest import MM_DEMO_CFG, LivedenoiseProcess
from typer.testing import CliRunner

from livedenoise.app import Acquisition, RunRequest, denoising_output
from livedenoise.cli import app
from livedenoise.pipeline.stats import TERMINATED
from livedenoise.storage import open_run

runner = CliRunner()
LOOPS = 40  # a hardware-sequenced time-lapse of 512x512 frames into a 1 MB (two-frame) buffer


def _small_slow_buffer(core) -> None:
    """A 1 MB circular buffer (two 512x512 16-bit frames) and a consumer stalled at its first frame
    (a busy computer) until the camera has overflowed the buffer: an overflow on every run, however
    fast or slow this machine is (a consumer that was merely slow kept up on a loaded machine)."""
    core.setExposure(1)
    core.setCircularBufferMemoryFootprint(1)

    def stall_until_overflowed(*_: object) -> None:
        deadline = time.monotonic() + 60
        while not core.isBufferOverflowed() and time.monotonic() < deadline:
            time.sleep(0.01)

    core.mda.events.frameReady.connect(stall_until_overflowed)


def test_a_buffer_overflow_in_a_script_is_a_failed_run_in_the_store(
    demo_core, small_model_path, tmp_path
) -> None:
    _small_slow_buffer(demo_core)
    out = tmp_path / "overflow.ome.zarr"
    output = denoising_output(out, small_model_path, backend="torch", window=1)
    sequence = useq.MDASequence(time_plan={"interval": 0, "loops": LOOPS})
    with pytest.raises(MemoryError, match="Buffer overflowed"):
        demo_core.mda.run(sequence, output=output)
    summary = output.finish()
    assert summary is not None and summary.ended == "failed"
    assert summary.acquired < LOOPS and summary.missing == LOOPS - summary.acquired
    assert f"{summary.missing} never arrived" in summary.error
    stored = open_run(out)
    assert stored.attrs["complete"]
    assert stored.attrs["summary"]["ended"] == "failed"
    assert stored.attrs["summary"]["missing"] == summary.missing
    assert stored.attrs["summary"]["error"] == summary.error
    assert np.isfinite(stored.timing["acquired_s"]).sum() == summary.acquired


def test_a_buffer_overflow_fails_the_run_the_acquire_command_makes(
    demo_core, small_model_path, tmp_path
) -> None:
    """The application layer the acquire command and the viewer run (the command turns a failed
    summary into its table and exit code 1)."""
    _small_slow_buffer(demo_core)
    out = tmp_path / "overflow.ome.zarr"
    request = RunRequest(model=small_model_path, backend="torch", window=1, out=out)
    acquisition = Acquisition(demo_core, request)
    summary = acquisition.run_sequence(useq.MDASequence(time_plan={"interval": 0, "loops": LOOPS}))
    assert summary.ended == "failed" and "circular buffer overflowed" in summary.error
    assert summary.acquired < LOOPS and summary.missing == LOOPS - summary.acquired
    stored = open_run(out).attrs["summary"]
    assert stored["ended"] == "failed" and "circular buffer overflowed" in stored["error"]
    assert stored["missing"] == summary.missing


def test_frames_never_written_do_not_read_as_data(sim_core, small_model_path, tmp_path) -> None:
    """A time-lapse of z-stacks terminated after four frames: the second stack holds one slice;
    its other two read as the type's largest value, with no acquisition time, never as zeros."""
    acquisition = Acquisition(
        sim_core,
        RunRequest(model=small_model_path, backend="torch", out=tmp_path / "cut.ome.zarr"),
    )
    frames = []

    def stop_after_four(img, event, meta) -> None:
        frames.append(img)
        if len(frames) == 4:
            acquisition.stop_acquiring(TERMINATED)

    sim_core.mda.events.frameReady.connect(stop_after_four)
    sequence = useq.MDASequence(
        time_plan={"interval": 0, "loops": 3}, z_plan={"range": 2, "step": 1}
    )
    summary = acquisition.run_sequence(sequence)
    assert summary.ended == TERMINATED and summary.error is None
    assert summary.acquired == 4 and summary.missing == 5
    stored = open_run(tmp_path / "cut.ome.zarr")
    assert stored.attrs["complete"] and stored.attrs["summary"]["ended"] == TERMINATED
    raw = np.asarray(stored.raw[0])
    assert raw.shape[:3] == (2, 1, 3)
    written = np.isfinite(stored.timing["acquired_s"][:, 0, 0, :])
    assert written.tolist() == [[True, True, True], [True, False, False]]
    top = np.iinfo(raw.dtype).max
    assert (raw[1, 0, 1:] == top).all()
    assert all(np.array_equal(raw[t, 0, z], frames[3 * t + z]) for t, z in np.argwhere(written))


SMALL_FRAMES = ["--set", "Detector.FrameWidth=48", "--set", "Detector.FrameHeight=40"]


def _terminated(out: Path) -> dict:
    """The summary of a store closed after a SIGTERM, with every frame acquired and saved."""
    stored = open_run(out)
    summary = stored.attrs["summary"]
    assert stored.attrs["complete"] and summary["ended"] == TERMINATED
    assert summary["acquired"] > 0 and summary["dropped"] == 0
    return summary


def test_sigterm_mid_acquisition_is_a_clean_stop(small_model_path, tmp_path) -> None:
    """SIGTERM (a job scheduler, ``kill``) to a real `livedenoise acquire`: the store is closed
    with its summary, says SIGTERM ended it and holds every frame acquired; exit code 143."""
    seq = tmp_path / "long.yaml"
    seq.write_text("time_plan: {interval: 0, loops: 2000}\nz_plan: {range: 2, step: 1}\n")
    out = tmp_path / "terminated.ome.zarr"
    args = ["acquire", str(seq), "--model", str(small_model_path), "--backend", "torch"]
    run = LivedenoiseProcess(*args, *SMALL_FRAMES, "--headless", "--out", str(out))
    run.wait_for("acquiring into")
    run.proc.send_signal(signal.SIGTERM)
    run.wait_for("SIGTERM received")
    if any("Ctrl-C again" in line for line in run.lines):  # a backlog waits for the engine
        run.proc.send_signal(signal.SIGTERM)  # a second SIGTERM leaves it raw-only
        run.wait_for("skipping the denoise backlog")
    code, output = run.finish()
    assert code == 143, output
    assert "Traceback" not in output and f"({TERMINATED})" in output
    summary = _terminated(out)
    assert summary["acquired"] < 6000 and summary["missing"] == 6000 - summary["acquired"]
    stored = open_run(out)
    raw = np.asarray(stored.raw[0])
    written = np.isfinite(stored.timing["acquired_s"][:, 0, 0, :])
    assert written.sum() == summary["acquired"]
    assert (raw[:, 0][~written] == np.iinfo(raw.dtype).max).all()


def test_sigterm_ends_live_mode_cleanly(small_model_path, tmp_path) -> None:
    out = tmp_path / "live.ome.zarr"
    args = ["acquire", "--model", str(small_model_path), "--backend", "torch", *SMALL_FRAMES]
    run = LivedenoiseProcess(*args, "--duration", "600", "--headless", "--out", str(out))
    run.wait_for("acquiring into")
    run.proc.send_signal(signal.SIGTERM)
    code, output = run.finish()
    assert code == 143, output
    assert "Traceback" not in output and f"({TERMINATED})" in output
    _terminated(out)


def test_sigterm_closes_the_viewer_and_the_store(small_model_path, tmp_path) -> None:
    """With the viewer (offscreen), SIGTERM acts as closing the window, the store saying why."""
    seq = tmp_path / "long.yaml"
    seq.write_text("time_plan: {interval: 0, loops: 2000}\n")
    out = tmp_path / "viewer.ome.zarr"
    args = ["acquire", str(seq), "--model", str(small_model_path), "--backend", "torch"]
    args += [*SMALL_FRAMES, "--out", str(out)]
    run = LivedenoiseProcess(*args, env={"QT_QPA_PLATFORM": "offscreen"})
    run.wait_for("engine:")
    while not (out / "raw" / "p0").exists():  # the first frame is on disk
        assert run.proc.poll() is None, "".join(run.lines)
        time.sleep(0.1)
    run.proc.send_signal(signal.SIGTERM)
    code, output = run.finish()
    assert code == 143, output
    assert "Traceback" not in output
    assert _terminated(out)["acquired"] < 2000


AUTOFOCUS_SEQUENCE = """\
stage_positions: [{x: 0, y: 0, z: 0}, {x: 10, y: 10, z: 0}]
z_plan: {range: 2, step: 1}
autofocus_plan: {autofocus_device_name: Z, autofocus_motor_offset: OFFSET, axes: [p]}
"""
SMALL_DEMO = ["--set", "Camera.OnCameraCCDXSize=64", "--set", "Camera.OnCameraCCDYSize=64"]
IMAGE_FRAMES = 6  # two positions of three z-slices; the autofocus steps are not frames


def _acquire_with_autofocus(offset: float, model: Path, tmp_path: Path) -> tuple[int, str, dict]:
    """The command on Micro-Manager's demo configuration (its Z stage, autofocus and camera)."""
    seq = tmp_path / "autofocus.yaml"
    seq.write_text(AUTOFOCUS_SEQUENCE.replace("OFFSET", str(offset)))
    out = tmp_path / "autofocus.ome.zarr"
    result = runner.invoke(
        app,
        [
            "acquire",
            str(seq),
            "--config",
            str(MM_DEMO_CFG),
            "--model",
            str(model),
            *SMALL_DEMO,
            "--backend",
            "torch",
            "--headless",
            "--out",
            str(out),
        ],
        terminal_width=200,
    )
    return result.exit_code, " ".join(result.output.split()), open_run(out).attrs["summary"]


def test_a_failing_autofocus_is_recorded_shown_and_fails_the_command(
    mm_adapters, small_model_path, tmp_path
) -> None:
    """The autofocus offset lies beyond the Z stage's travel, so every autofocus step fails (how
    many attempts pymmcore-plus makes is its own affair); the frames are all acquired."""
    code, output, summary = _acquire_with_autofocus(1e6, small_model_path, tmp_path)
    assert code == 1, output
    failures = summary["autofocus_failures"]
    assert len(failures) >= 1
    for failure in failures:
        where = " ".join(f"{a}{failure[a]}" for a in "ptz" if failure[a] is not None)
        assert f"autofocus failed at {where}: {failure['message']}" in output
    assert "may be out of focus" in output and "Traceback" not in output
    assert summary["acquired"] == IMAGE_FRAMES and summary["missing"] == 0


def test_a_working_autofocus_is_no_missing_frame(mm_adapters, small_model_path, tmp_path) -> None:
    code, output, summary = _acquire_with_autofocus(0, small_model_path, tmp_path)
    assert code == 0, output
    assert summary["ended"] == "completed" and summary["autofocus_failures"] == []
    assert summary["acquired"] == IMAGE_FRAMES and summary["missing"] == 0
