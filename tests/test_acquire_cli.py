"""`livedenoise acquire` from a useq YAML, headless: frames saved, statistics shown, bad input refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from livedenoise.cli import app
from livedenoise.storage import open_run

runner = CliRunner()
SMALL_FRAMES = ["--set", "Detector.FrameWidth=48", "--set", "Detector.FrameHeight=40"]
FAST = ["--set", "Detector.TimeScale=0"]


@pytest.fixture
def sequence_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "seq.yaml"
    path.write_text("channels: [FITC, DAPI]\ntime_plan: {interval: 0, loops: 3}\n")
    return path


def _acquire(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["acquire", *args], terminal_width=200)
    return result.exit_code, " ".join(result.output.split())


def test_acquire_yaml_headless_saves_and_reports(sequence_yaml, small_model_path, tmp_path) -> None:
    out = tmp_path / "run.ome.zarr"
    code, output = _acquire(
        str(sequence_yaml),
        *SMALL_FRAMES,
        *FAST,
        "--set",
        "Detector.LineAverage=3",
        "--model",
        str(small_model_path),
        "--backend",
        "torch",
        "--headless",
        "--out",
        str(out),
    )
    assert code == 0, output
    assert "frames acquired / denoised │ 6 / 6" in output
    run = open_run(out)
    raw = np.asarray(run.raw[0])
    assert raw.shape == (3, 2, 1, 40, 48) and raw.reshape(6, -1).max(axis=1).min() > 0
    assert ["Detector", "LineAverage", "3"] in run.attrs["devices"]
    assert run.attrs["sequence"]["channels"] == [{"config": "FITC"}, {"config": "DAPI"}]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("Detector.NoSuchThing=1", "Detector has no property 'NoSuchThing'"),
        ("Scope.LineAverage=1", "no device 'Scope'"),
        ("Detector.LineAverage=100", "value refused (limits 1..64)"),
        ("Detector.LineAverage", "write DEVICE.PROPERTY=VALUE"),
    ],
)
def test_invalid_settings_are_refused_before_anything_runs(
    setting, message, sequence_yaml, small_model_path, tmp_path
) -> None:
    out = tmp_path / "never.ome.zarr"
    code, output = _acquire(
        str(sequence_yaml),
        "--set",
        setting,
        "--model",
        str(small_model_path),
        "--headless",
        "--out",
        str(out),
    )
    assert code == 1 and f"setting {setting!r}: {message}" in output
    assert output.endswith("(--set)")  # the command line names its flag for the setting
    assert not out.exists()


def test_a_refused_setting_names_the_parameter_not_a_flag() -> None:
    """A script or viewer user never typed ``--set``: the library names its own parameter."""
    from livedenoise.acquisition import make_core
    from livedenoise.app import release_microscope
    from livedenoise.errors import LivedenoiseError
    from livedenoise.pipeline.setup import SetupError, apply_assignments

    core = make_core()
    try:
        with pytest.raises(SetupError) as refused:
            apply_assignments(core, ["Scope.LineAverage=1"])
    finally:
        release_microscope(core)
    error = refused.value
    assert isinstance(error, LivedenoiseError) and isinstance(error, ValueError)
    assert error.option == "settings" and error.value == "Scope.LineAverage=1"
    assert str(error).startswith("setting 'Scope.LineAverage=1': no device 'Scope'")
    assert "--" not in str(error)


def test_a_broken_sequence_file_is_named_in_the_error(tmp_path: Path, small_model_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("time_plan: {loops: -3}\n")
    code, output = _acquire(str(bad), "--model", str(small_model_path), "--headless")
    assert code == 1 and "bad.yaml: not a valid useq MDA sequence" in output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time_plan: {loops: 3\n", "not valid YAML/JSON"),
        ("foo: bar\n", "unknown key(s) foo"),
        ("grid_plan: {rows: 0, columns: 2}\n", "grid_plan.rows must be 1 or more"),
        ("channels: [NoSuchDye]\n", "no such preset in group 'Channel'"),
        ("{}\n", "the sequence has no events"),
    ],
)
def test_a_sequence_that_would_fail_is_refused_before_anything_is_created(
    text, message, tmp_path, small_model_path
) -> None:
    seq = tmp_path / "seq.yaml"
    seq.write_text(text)
    out = tmp_path / "never.ome.zarr"
    code, output = _acquire(
        str(seq), "--model", str(small_model_path), "--headless", "--out", str(out)
    )
    assert code == 1 and message in output and "Traceback" not in output
    assert not out.exists()


@pytest.mark.parametrize(
    ("out", "message"),
    [("run.tif", "name it NAME.ome.zarr"), ("/proc/run.ome.zarr", "cannot write in /proc")],
)
def test_an_output_that_cannot_be_written_is_refused_first(
    out, message, sequence_yaml, small_model_path, tmp_path
) -> None:
    code, output = _acquire(
        str(sequence_yaml), "--model", str(small_model_path), "--headless", "--out", out
    )
    assert code == 1 and message in output


def test_window_zero_is_refused_by_the_option(sequence_yaml, small_model_path) -> None:
    code, output = _acquire(str(sequence_yaml), "--window", "0", "--model", str(small_model_path))
    assert code == 2 and "Traceback" not in output


def test_live_mode_honours_its_duration(small_model_path, tmp_path) -> None:
    """Live mode drops to the newest frame, so it ends soon after its duration (not minutes later)."""
    import time

    out = tmp_path / "live.ome.zarr"
    start = time.monotonic()
    code, output = _acquire(
        *SMALL_FRAMES, "--model", str(small_model_path), "--backend", "torch", "--headless",
        "--duration", "3", "--out", str(out),
    )  # fmt: skip
    took = time.monotonic() - start
    assert code == 0, output
    assert 3 <= took < 3 + 30  # engine loading plus at most one frame of backlog
    run = open_run(out)
    assert run.attrs["policy"] == "live" and run.attrs["summary"]["ended"] == "completed"
    assert run.attrs["summary"]["acquired"] > 0 and run.attrs["summary"]["dropped"] == 0


def _long_run(tmp_path: Path, mode: str) -> list[str]:
    """What `acquire` runs until stopped: a sequence of 2000 time points, or 600 s of live mode."""
    if mode == "live":
        return ["--duration", "600"]
    seq = tmp_path / "long.yaml"
    seq.write_text("time_plan: {interval: 0, loops: 2000}\n")
    return [str(seq)]


@pytest.mark.parametrize("mode", ["sequence", "live"])
def test_ctrl_c_twice_stops_acquiring_then_skips_the_backlog(
    small_model_path, tmp_path, mode
) -> None:
    """SIGINT to a real `livedenoise acquire`: no traceback, every acquired frame saved, the store
    complete and saying the user stopped it; exit 130, live mode too (it did not run its duration)."""
    import time

    from conftest import LivedenoiseProcess

    out = tmp_path / "stopped.ome.zarr"
    args = ["acquire", *_long_run(tmp_path, mode), "--model", str(small_model_path)]
    args += ["--backend", "torch"]
    args += ["--set", "Detector.FrameWidth=128", "--set", "Detector.FrameHeight=128"]
    run = LivedenoiseProcess(*args, "--window", "8", "--headless", "--out", str(out))
    run.wait_for("engine:")
    while not (out / "raw" / "p0").exists() and run.proc.poll() is None:
        time.sleep(0.1)
    time.sleep(1)
    run.interrupt()
    run.wait_for("stopping")
    if any("Ctrl-C again" in line for line in run.lines):  # a backlog waits for the engine
        run.interrupt()
        run.wait_for("skipping the denoise backlog")
    code, output = run.finish()
    assert code == 130, output
    assert "Traceback" not in output and "terminate" not in output
    assert "MDA Canceled" not in output  # pymmcore-plus' own warning: the command says it plainly
    stored = open_run(out)
    summary = stored.attrs["summary"]
    assert stored.attrs["complete"] and summary["ended"] == "stopped by the user"
    assert 0 < summary["acquired"] < 2000 and summary["dropped"] == 0
    assert summary["acquired"] == summary["denoised"] + summary["raw_only"]
    raw = np.asarray(stored.raw[0])
    assert raw.shape[0] == summary["acquired"] and (raw.reshape(raw.shape[0], -1).max(1) > 0).all()


@pytest.mark.parametrize("mode", ["sequence", "live"])
def test_ctrl_c_in_the_viewer_closes_it_and_the_store(small_model_path, tmp_path, mode) -> None:
    """`livedenoise acquire` with the viewer (offscreen): Ctrl-C acts like closing the window, the
    store saying the user stopped the run."""
    import time

    from conftest import LivedenoiseProcess

    out = tmp_path / "viewer.ome.zarr"
    args = ["acquire", *_long_run(tmp_path, mode), "--model", str(small_model_path)]
    args += ["--backend", "torch"]
    args += [*SMALL_FRAMES, "--set", "Detector.TimeScale=1", "--out", str(out)]
    run = LivedenoiseProcess(*args, env={"QT_QPA_PLATFORM": "offscreen"})
    run.wait_for("engine:")
    while not (out / "raw" / "p0").exists() and run.proc.poll() is None:
        time.sleep(0.1)
    time.sleep(1)
    run.interrupt()
    code, output = run.finish()
    assert code == 130, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output
    stored = open_run(out)
    summary = stored.attrs["summary"]
    assert stored.attrs["complete"] and summary["ended"] == "stopped by the user"
    assert 0 < summary["acquired"] < 2000 and summary["dropped"] == 0


def test_the_progress_bars_follow_the_runs_events(sim_core, small_model_path, tmp_path, capsys):
    """The bars move as frames reach disk and the engine, not on a timer; the first frame on disk
    says where the run is saved."""
    import io

    import useq
    from rich.console import Console
    from rich.progress import Progress

    from livedenoise.app import Acquisition, RunRequest
    from livedenoise.cli.headless import Bars

    request = RunRequest(model=small_model_path, backend="torch", out=tmp_path / "b.ome.zarr")
    acquisition = Acquisition(sim_core, request)
    progress = Progress(console=Console(file=io.StringIO()))
    bars = Bars(progress, acquisition)
    acquisition.run_sequence(useq.MDASequence(time_plan={"interval": 0, "loops": 5}))
    bars.disconnect()

    acquired, denoised = (progress.tasks[task] for task in (bars.acquired, bars.denoised))
    assert (acquired.completed, acquired.total) == (denoised.completed, denoised.total) == (5, 5)
    said = " ".join(capsys.readouterr().out.split())
    assert said.count("acquiring into") == 1 and "b.ome.zarr" in said


@pytest.mark.parametrize(
    ("number", "ended"), [("SIGTERM", "terminated by SIGTERM"), ("SIGINT", "stopped by the user")]
)
def test_a_signal_is_acted_on_by_the_waiting_loop_not_in_its_handler(
    sim_core, small_model_path, tmp_path, number, ended
) -> None:
    """The handler runs between two bytecodes of the main thread, which may be inside the lock that
    stopping takes (Event.wait's); stopping there, or a KeyboardInterrupt raised there, hung the
    command now and then."""
    import signal

    from livedenoise.app import Acquisition, RunRequest
    from livedenoise.cli.headless import Interrupts, wait

    request = RunRequest(model=small_model_path, backend="torch", out=tmp_path / "t.ome.zarr")
    acquisition = Acquisition(sim_core, request)
    acquisition.start_live()
    interrupts = Interrupts(acquisition)
    interrupts.note(getattr(signal, number), None)
    assert acquisition.live  # the handler stopped nothing itself
    wait(acquisition, interrupts, None)
    assert not acquisition.running and acquisition.last_summary.ended == ended


def test_a_sequence_whose_denoising_falls_behind_is_told_how_long_the_backlog_takes() -> None:
    """400 frames came in 20 s and 6 were denoised: the 500 frames of the sequence take 500 / 0.3
    s to denoise, 25 s to acquire, so the last is denoised about 27 minutes after the last frame."""
    from livedenoise.cli.headless import behind_note

    note = behind_note(acquired=400, denoised=6, seconds=20.0, expected=500)
    assert note is not None
    assert "0.3 frames/s denoised, 20 acquired" in note and "about 27 min after" in note
    assert "--policy live" in note  # and what to do about it
    assert behind_note(acquired=400, denoised=6, seconds=20.0, expected=0) is not None  # live
    assert behind_note(acquired=40, denoised=30, seconds=20.0, expected=500) is None  # keeps up
    assert behind_note(acquired=40, denoised=0, seconds=5.0, expected=500) is None  # too early
