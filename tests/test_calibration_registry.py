"""A calibration criterion added through the registry alone runs a real calibration end to end.

The criterion is defined here, as a user's script would: a rule no one would use ("good enough from a
fixed number of averages up"), so that the chosen setting visibly follows it. The repeats are recorded
on the simulated microscope (a cell at zoom 2, 128 px: 16 crops) and calibrated from the file with the
model fine-tuned for that microscope, which beats the raw average safely on every rung measured.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from livedenoise.acquisition import make_core
from livedenoise.app.calibration import CalibrationRequest, RecordedStack, calibrate_from_stack
from livedenoise.calibration.analysis import Measurement, Rung
from livedenoise.calibration.choose import device_control
from livedenoise.calibration.criteria import (
    Criterion,
    Guide,
    Metric,
    Plateau,
    Reference,
    Tolerance,
    register,
)
from livedenoise.calibration.profile import load_profile
from livedenoise.calibration.repeats import acquire_repeats
from livedenoise.pipeline.setup import apply_assignments

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@register
class FromAverages(Criterion):
    """Good enough from ``averages`` up, whatever the quality."""

    kind: Literal["from-averages"] = "from-averages"
    averages: int
    description = "the denoised result at n is accepted from a fixed number of averages up"
    help = "accepted from a fixed number of averages up"
    shortfall = "no rung below the reference reaches the fixed number of averages"

    def meets(self, rungs: Sequence[Rung], tolerance: Tolerance) -> np.ndarray:
        return np.array([r.averages >= self.averages for r in rungs])

    def target(
        self, rung: Rung, rungs: Sequence[Rung], tolerance: Tolerance, reference_averages: float
    ) -> str:
        return f"is accepted from {self.averages} averages up by rule"

    def guide(self, measurement: Measurement, metric: Metric) -> Guide:
        level = getattr(measurement.reference_raw, metric).mean
        return Guide("accepted from here", [self.averages], [level], [level], [level])


@pytest.fixture(scope="module")
def repeats_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """32 repeats of a cell on the simulated microscope, saved as a user's recorded stack."""
    core = make_core()
    settings = ["FrameWidth=128", "FrameHeight=128", "Zoom=2", "TimeScale=0", "Photobleaching=Off"]
    apply_assignments(core, [f"Detector.{s}" for s in settings])
    core.setXYPosition(22.5, 22.5)
    path = tmp_path_factory.mktemp("repeats") / "cell.npy"
    np.save(path, acquire_repeats(core, 32, device_control(core)).frames)
    return path


@pytest.mark.parametrize("averages", [3, 6])
def test_registered_criterion_decides_the_calibration(
    repeats_file: Path, tmp_path: Path, averages: int
) -> None:
    request = CalibrationRequest(
        model=ROOT / "livedenoise" / "weights" / "sim-confocal-small",
        backend="onnxruntime",
        criterion={"kind": "from-averages", "averages": averages},
        margin=0,
    )
    profile = calibrate_from_stack(RecordedStack(paths=[repeats_file]), request, tmp_path / "out")
    assert profile.verdict.breaking_point == averages
    assert profile.chosen.averages == averages and profile.reference.averages == 16
    saved = load_profile(tmp_path / "out")
    assert saved.verdict.criterion == FromAverages(averages=averages)
    assert saved.chosen == profile.chosen
    report = (tmp_path / "out" / "report.md").read_text()
    assert "criterion**: from-averages: the denoised result at n is accepted from a fixed" in report
    assert f"is accepted from {averages} averages up by rule" in report
    assert (tmp_path / "out" / "calibration.png").stat().st_size > 0


def test_unknown_criterion_is_refused_naming_the_registered_ones() -> None:
    with pytest.raises(ValueError, match="'reference', 'plateau', 'from-averages'"):
        CalibrationRequest(model=Path("m"), criterion="best-guess")


def test_profiles_saved_before_the_registry_load_and_save_their_criterion_by_name(
    tmp_path: Path,
) -> None:
    """The shipped TIRF profile names its criterion as a plain kind; it loads as that criterion and
    is written back the same way."""
    profile = load_profile(ROOT / "calibration" / "tirf" / "profile.json")
    assert profile.verdict.criterion == Reference()
    data = json.loads(profile.model_dump_json())
    assert data["verdict"]["criterion"] == "reference"
    plateau = profile.model_copy(
        update={"verdict": profile.verdict.model_copy(update={"criterion": Plateau()})}
    )
    assert json.loads(plateau.model_dump_json())["verdict"]["criterion"] == "plateau"
