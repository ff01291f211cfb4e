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
    assert code == 1 and message in output
    assert not out.exists()


def test_a_broken_sequence_file_is_named_in_the_error(tmp_path: Path, small_model_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("time_plan: {loops: -3}\n")
    code, output = _acquire(str(bad), "--model", str(small_model_path), "--headless")
    assert code == 1 and "bad.yaml: not a valid useq MDA sequence" in output
