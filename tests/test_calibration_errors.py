"""A calibration's refusals speak the library's terms (no command-line flag) and name the parameter
that fixes them; the command line turns that parameter into its flag."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from livedenoise.app.calibration import CalibrationRequest, RecordedStack, calibrate_from_stack
from livedenoise.calibration.errors import CalibrationError
from livedenoise.cli import app
from livedenoise.errors import LivedenoiseError

TIRF = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "repeats"
    / "tirf_microtubules_20x5ms.tif"
)


@pytest.fixture
def stack(tmp_path: Path) -> Path:
    """The real TIRF repeats (20 frames: 1..10 averages), a 64 px crop."""
    path = tmp_path / "tirf.npy"
    np.save(path, tifffile.imread(TIRF)[:, :64, :64])
    return path


@pytest.mark.parametrize(
    ("change", "option", "flag"),
    [
        ({"reference": 16}, "reference", "--reference"),  # more than 20 repeats measure
        ({"out_exists": True}, "overwrite", "--overwrite"),
        ({"out_in_stack": True}, "directory", "--out"),
    ],
)
def test_refusal_names_the_parameter_and_the_command_line_its_flag(
    identity_model_path: Path, stack: Path, tmp_path: Path, change: dict, option: str, flag: str
) -> None:
    out = tmp_path / "out"
    if change.pop("out_exists", False):
        out.mkdir()
    if change.pop("out_in_stack", False):
        out = stack / "inside"
    request = CalibrationRequest(model=identity_model_path, backend="onnxruntime", **change)
    with pytest.raises(CalibrationError) as caught:
        calibrate_from_stack(RecordedStack(paths=[stack]), request, out)
    error = caught.value
    assert isinstance(error, LivedenoiseError) and isinstance(error, ValueError)
    assert error.option == option and "--" not in str(error)
    args = ["calibrate", "--model", str(identity_model_path), "--backend", "onnxruntime"]
    extra = ["--reference", "16"] if option == "reference" else []
    result = CliRunner().invoke(app, [*args, "--from-stack", str(stack), "--out", str(out), *extra])
    assert result.exit_code == 1 and "Traceback" not in result.output
    line = " ".join(result.output.split())
    assert line.startswith("error: ") and f"({flag})" in line and str(error)[:30] in line
