"""The application layer: one acquisition, driven from a script, the command line and the viewer."""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
import useq
from typer.testing import CliRunner

from livedenoise.app import Acquisition, RunRequest, denoising_output
from livedenoise.cli import app
from livedenoise.pipeline.setup import apply_assignments
from livedenoise.storage import open_run

SEQUENCE = "channels: [FITC, TRITC]\ntime_plan: {interval: 0, loops: 3}\n"
CHECKOUT = Path(__file__).resolve().parents[1]


@pytest.fixture
def line_average_profile(tmp_path: Path, small_model_path: Path) -> Path:
    """A calibration profile that sets the simulated detector's line average to 5, as measured with
    the small model (a profile of another model is refused)."""
    from livedenoise.model import load_card

    profile = json.loads((CHECKOUT / "calibration" / "tirf" / "profile.json").read_text())
    profile.update(
        device="Detector",
        property="LineAverage",
        model_sha256=load_card(small_model_path).weights_sha256,
    )
    profile["chosen"].update(value=5, text="5", averages=5)
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    return path


def test_a_pymmcore_plus_script_gets_every_raw_and_denoised_frame(
    sim_core, small_model_path, tmp_path
) -> None:
    """`core.mda.run(sequence, output=...)` with the livedenoise output, as in the README."""
    sequence = useq.MDASequence(
        channels=["FITC", "DAPI"],
        z_plan={"range": 1.0, "step": 1.0},
        time_plan={"interval": 0, "loops": 3},
    )
    output = denoising_output(tmp_path / "script.ome.zarr", small_model_path, backend="torch")
    sim_core.mda.run(sequence, output=output)
    summary = output.finish()

    assert summary is not None and summary.error is None and output.finish() is summary
    assert summary.acquired == summary.denoised == 12
    run = open_run(tmp_path / "script.ome.zarr")
    raw, denoised = np.asarray(run.raw[0]), np.asarray(run.denoised[0])
    assert raw.shape == denoised.shape == (3, 2, 2, 64, 64)
    assert (raw.reshape(12, -1).max(axis=1) > 0).all()
    assert np.isfinite(denoised).all() and not np.allclose(raw, denoised)
    assert run.attrs["complete"] and run.attrs["model"]["name"] == "small"
    assert run.attrs["images"][0]["channels"] == ["FITC", "DAPI"]


def _store_facts(path: Path) -> dict:
    """What a user compares between two stores of the same sequence."""
    run = open_run(path)
    attrs = run.attrs
    return {
        "layout": attrs["layout"],
        "images": attrs["images"],
        "keys": sorted(attrs),
        "calibration": attrs["calibration"]["chosen"],
        "sequence": attrs["sequence"],
        "policy": attrs["policy"],
        "window": attrs["window"],
        "line average": next(
            v for d, p, v in attrs["devices"] if (d, p) == ("Detector", "LineAverage")
        ),
        "shapes": [a.shape for a in (*run.raw, *run.denoised)],
        "denoised everywhere": all(np.isfinite(np.asarray(a)).all() for a in run.denoised),
    }


def test_headless_and_viewer_runs_write_the_same_store(
    qtbot, small_model_path, line_average_profile, tmp_path
) -> None:
    """The same request through the command line and through the viewer: same layout and metadata,
    the calibration profile applied and recorded in both."""
    from livedenoise.app import open_microscope
    from livedenoise.gui.main_window import LiveWindow

    settings = ["Detector.FrameWidth=48", "Detector.FrameHeight=40", "Detector.TimeScale=0"]
    seq_path = tmp_path / "seq.yaml"
    seq_path.write_text(SEQUENCE)
    headless = tmp_path / "headless.ome.zarr"
    args = ["acquire", str(seq_path), "--model", str(small_model_path), "--backend", "torch"]
    args += [a for s in settings for a in ("--set", s)]
    args += ["--calibration", str(line_average_profile), "--headless", "--out", str(headless)]
    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output

    viewed = tmp_path / "viewer.ome.zarr"
    request = RunRequest(
        model=small_model_path,
        backend="torch",
        out=viewed,
        calibration=line_average_profile,
    )
    acquisition = Acquisition(open_microscope(None, settings), request)
    window = LiveWindow(acquisition)
    qtbot.addWidget(window)
    window.run_sequence(useq.MDASequence.from_file(seq_path))
    qtbot.waitUntil(lambda: acquisition.last_summary is not None, timeout=60_000)

    facts = _store_facts(headless)
    assert facts == _store_facts(viewed)
    assert facts["line average"] == "5" and facts["calibration"]["value"] == 5
    assert facts["shapes"][0] == (3, 2, 1, 40, 48)


# the core's acquisition thread raising is the fault under test, not a problem of the test
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_viewer_shows_a_device_failure_and_keeps_every_frame(
    qtbot, sim_core, small_model_path, tmp_path
) -> None:
    from livedenoise.gui.main_window import LiveWindow

    apply_assignments(sim_core, ["Detector.FailAfterFrames=5"])
    request = RunRequest(model=small_model_path, backend="torch", out=tmp_path / "f.ome.zarr")
    acquisition = Acquisition(sim_core, request)
    window = LiveWindow(acquisition)
    qtbot.addWidget(window)
    window.show()
    window.run_sequence(useq.MDASequence(time_plan={"interval": 0, "loops": 12}))
    qtbot.waitUntil(lambda: acquisition.last_error is not None, timeout=60_000)
    qtbot.waitUntil(
        lambda: window.error_box is not None and window.error_box.isVisible(), timeout=10_000
    )
    assert "PMT stopped responding" in window.error_box.text()
    qtbot.waitUntil(lambda: not acquisition.running, timeout=30_000)
    window.refresh()
    assert "FAILED" in window.status.text() and "stopped" in window.status.text()

    run = open_run(tmp_path / "f.ome.zarr")
    raw = np.asarray(run.raw[0])
    assert run.attrs["complete"] and run.attrs["summary"]["acquired"] == 5
    assert "PMT stopped responding" in run.attrs["summary"]["error"]
    assert (raw[:5].reshape(5, -1).max(axis=1) > 0).all()


def test_a_second_run_on_a_busy_core_is_refused(sim_core, small_model_path, tmp_path) -> None:
    from livedenoise.app.session import RunInProgress
    from livedenoise.errors import LivedenoiseError

    request = RunRequest(model=small_model_path, backend="torch", out_dir=tmp_path)
    acquisition = Acquisition(sim_core, request)
    acquisition.start_live()
    try:
        with pytest.raises(RunInProgress, match="a run is in progress: stop it first") as refused:
            acquisition.start_sequence(useq.MDASequence(time_plan={"interval": 0, "loops": 2}))
    finally:
        summary = acquisition.stop()
    assert isinstance(refused.value, LivedenoiseError) and isinstance(refused.value, RuntimeError)
    assert summary is not None and summary.error is None


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 256 KiB file system (tmpfs), to fill up during a run; needs the right to mount."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)])
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk_ends_the_run_with_a_clear_error(sim_core, small_model_path, small_disk):
    request = RunRequest(model=small_model_path, backend="torch", out=small_disk / "full.ome.zarr")
    acquisition = Acquisition(sim_core, request)
    summary = acquisition.run_sequence(useq.MDASequence(time_plan={"interval": 0, "loops": 40}))

    assert summary.error is not None and "free disk space" in summary.error
    assert "No space left" in summary.error and acquisition.last_error == summary.error
    run = open_run(small_disk / "full.ome.zarr")
    written = np.asarray(run.raw[0])[: 40 - summary.dropped]
    assert (written.reshape(written.shape[0], -1).max(axis=1) > 0).all()


def test_live_mode_denoises_in_windows_of_one_and_sequences_in_four_by_default(
    qtbot, sim_core, small_model_path, tmp_path
) -> None:
    """A live frame's latency is one engine call, whose cost grows with the window: live mode
    takes one frame unless asked otherwise; a sequence, where every frame is denoised, four."""
    request = RunRequest(model=small_model_path, backend="torch", out_dir=tmp_path)
    acquisition = Acquisition(sim_core, request)
    acquisition.start_live()
    try:
        qtbot.waitUntil(lambda: acquisition.latest.denoised is not None, timeout=20_000)
    finally:
        acquisition.stop()
    live = acquisition.last_out
    acquisition.run_sequence(useq.MDASequence(time_plan={"interval": 0, "loops": 2}))
    sequence = acquisition.last_out
    acquisition.window = 2
    acquisition.start_live()
    try:
        qtbot.waitUntil(lambda: acquisition.pipeline.stats.denoised > 0, timeout=20_000)
    finally:
        acquisition.stop()
    windows = [open_run(p).attrs["window"]["size"] for p in (live, sequence, acquisition.last_out)]
    assert windows == [1, 4, 2]
