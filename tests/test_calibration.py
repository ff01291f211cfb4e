"""Auto-calibration as a microscopist meets it: the breaking point, the chosen setting, the saved profile.

The simulated microscope is used at 64x64 px (128x128 px for the quality curve) without waiting or
bleaching, on a field with cells in it, at zoom 2: 0.1 um pixels sample its 0.24 um (FWHM) PSF at Nyquist,
as a microscopist sets up before calibrating (at zoom 1 the filaments are one pixel wide and the small model
blurs them from 2 averages on; the calibration then reports no benefit there). Every model runs on ONNX
Runtime (``auto`` would time the backends first).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tifffile
from scipy.ndimage import gaussian_filter
from typer.testing import CliRunner

from livedenoise.app.calibration import CalibrationRequest, Recording, calibrate_on_core
from livedenoise.calibration.analysis import Measurement, measure
from livedenoise.calibration.breaking import find_breaking_point
from livedenoise.calibration.choose import choose_value, device_control
from livedenoise.calibration.criteria import Criterion, Plateau, Reference, Tolerance
from livedenoise.calibration.errors import CalibrationError
from livedenoise.calibration.profile import apply_profile, load_profile, publish
from livedenoise.calibration.repeats import acquire_repeats
from livedenoise.calibration.report import write_outputs
from livedenoise.calibration.residual import structure_share, unsafe
from livedenoise.cli import app
from livedenoise.inference import Engine, load_engine
from livedenoise.inference.base import Backend
from livedenoise.pipeline.setup import apply_assignments

ROOT = Path(__file__).resolve().parents[1]
TIRF = ROOT.parent / "shared" / "data" / "repeats" / "tirf_microtubules_20x5ms.tif"
FMD = ROOT.parent / "shared" / "data" / "fmd_test" / "noisy"
CELL_XY = (22.5, 22.5)  # um: a cell of the simulated specimen (the origin lies between cells)
OTHER_CELLS = [(67.5, 67.5), (112.5, 67.5)]  # two more cells (the lattice has empty squares)
SIM = [
    "--xy",
    "22.5,22.5",
    *("--set", "Detector.FrameWidth=64"),
    *("--set", "Detector.FrameHeight=64"),
    *("--set", "Detector.Zoom=2"),
    *("--set", "Detector.TimeScale=0"),
    *("--set", "Detector.Photobleaching=Off"),
    *("--backend", "onnxruntime"),
]
REPEATS = 32
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # the viewer's calibration tab, headless


@pytest.fixture(scope="session")
def backbone_path() -> Path:
    """The shipped backbone: what a user calibrates real recordings with before fine-tuning."""
    return ROOT / "livedenoise" / "weights" / "backbone-small"


@pytest.fixture(scope="session")
def sim_model_path() -> Path:
    """The backbone fine-tuned on the simulated microscope's pairs: the model for that microscope."""
    return ROOT / "livedenoise" / "weights" / "sim-confocal-small"


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory: calibrations land in its ``calibration/``."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["calibrate", *map(str, args)])
    return result.exit_code, " ".join(result.output.split())  # unwrapped, as one line


def sim_repeats(size: int = 128, xy: tuple[float, float] = CELL_XY) -> np.ndarray:
    """Repeats of a cell on the simulated microscope at zoom 2."""
    from livedenoise.acquisition import make_core

    core = make_core()
    settings = [f"FrameWidth={size}", f"FrameHeight={size}", "Zoom=2", "TimeScale=0"]
    apply_assignments(core, [f"Detector.{s}" for s in [*settings, "Photobleaching=Off"]])
    core.setXYPosition(*xy)
    return acquire_repeats(core, REPEATS, device_control(core)).frames


def sim_measurement(model: Path | Engine) -> Measurement:
    """A ladder of 1..16 averages of a cell on the simulated microscope against a reference protocol
    of 16, through the API."""
    if not isinstance(model, Engine):
        model = load_engine(model, "onnxruntime", window=1, frame_size=(128, 128))
    return measure(model, sim_repeats(), 16)


class _Blur(Backend):
    """A "denoiser" that is a Gaussian filter (sigma in pixels): it removes noise and structure."""

    name = "gaussian"

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = sigma

    def run(self, x: np.ndarray) -> np.ndarray:
        return gaussian_filter(x, (0, 0, 0, self.sigma, self.sigma))

    def describe(self) -> str:
        return f"Gaussian filter, sigma {self.sigma} px"


@pytest.fixture(scope="module")
def sim_ladder(sim_model_path: Path) -> Measurement:
    return sim_measurement(sim_model_path)


@pytest.fixture(scope="module")
def sim_profile(sim_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``livedenoise calibrate`` with the backbone on the simulated microscope, as a user runs it."""
    cwd = Path.cwd()
    os.chdir(tmp_path_factory.mktemp("sim"))
    try:
        code, out = run("--model", sim_model_path, "--out", "sim", "--repeats", REPEATS, *SIM)
        assert code == 0, out
        return Path.cwd() / "calibration" / "sim" / "profile.json"
    finally:
        os.chdir(cwd)


def test_simulated_calibration_completes_with_profile_plot_and_report(sim_profile: Path) -> None:
    folder = sim_profile.parent
    assert sorted(p.name for p in folder.iterdir()) == [
        "calibration.png",
        "profile.json",
        "report.md",
    ]
    profile = load_profile(folder)
    assert (profile.device, profile.property) == ("Detector", "LineAverage")
    assert [r.averages for r in profile.measurement.rungs] == [1, 2, 3, 4, 6, 8, 12, 16]
    assert profile.fastest.text == "1" and profile.reference.text == "16"
    assert 1 <= profile.chosen.value <= 16 and profile.chosen.value == round(profile.chosen.value)
    assert profile.chosen.frame_ms <= profile.reference.frame_ms
    assert len(profile.model_sha256) == 64 and profile.fields[0].field["xy_um"] == "22.50, 22.50"
    report = (folder / "report.md").read_text()
    assert f"Detector.LineAverage = {profile.chosen.text}" in report
    assert "criterion**: reference" in report and "time saved per frame" in report
    assert (folder / "calibration.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_viewer_calibrates_as_the_command_line_does(
    qtbot, sim_core, sim_model_path: Path, sim_profile: Path, tmp_path: Path
) -> None:
    """ "Calibrate here" in the viewer, on the field ``livedenoise calibrate`` measured (the simulated
    microscope repeats itself from a fresh start), finds the same breaking point and setting."""
    from qtpy.QtCore import Qt

    from livedenoise.gui.calibration_tab import CalibrationTab

    apply_assignments(sim_core, ["Detector.Zoom=2"])
    sim_core.setXYPosition(*CELL_XY)
    controller = SimpleNamespace(
        core=sim_core, model=sim_model_path, backend="onnxruntime", running=False
    )
    tab = CalibrationTab(controller, out_dir=tmp_path / "calibration")
    qtbot.addWidget(tab)
    tab.repeats.setValue(REPEATS)
    qtbot.mouseClick(tab.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not tab.running, timeout=60_000)
    tab.refresh()
    assert tab.profile is not None, tab.message
    cli = load_profile(sim_profile)
    assert tab.profile.verdict.breaking_point == cli.verdict.breaking_point
    assert tab.profile.chosen == cli.chosen
    assert tab.profile.measurement.rungs == cli.measurement.rungs
    assert load_profile(tab.profile_path) == tab.profile
    assert tab.profile_path.parent.name.startswith("viewer-")
    assert list(tab.denoised_curve.getData()[0]) == [r.averages for r in cli.measurement.rungs]
    assert f"chosen: Detector.LineAverage = {cli.chosen.text}" in tab.verdict.text()
    assert "criterion: reference" in tab.verdict.text()


def test_denoised_curve_lies_above_the_raw_curve(sim_ladder: Measurement) -> None:
    """At every rung of the ladder the model's output is closer to the reference than its input."""
    for rung in sim_ladder.rungs:
        assert rung.denoised.psnr.mean > rung.raw.psnr.mean, rung.averages
        assert rung.denoised.ssim.mean > rung.raw.ssim.mean, rung.averages
    one = sim_ladder.rungs[0]  # where the scan is fastest the gain is largest
    assert one.denoised.psnr.mean > one.raw.psnr.mean + 3


@pytest.fixture(scope="module")
def tirf_ladder(backbone_path: Path) -> Measurement:
    frames = tifffile.imread(TIRF)
    engine = load_engine(backbone_path, "onnxruntime", window=1, frame_size=frames.shape[1:])
    return measure(engine, frames, 10)


@pytest.mark.parametrize("criterion", [Reference(), Plateau()], ids=str)
@pytest.mark.parametrize("ladder", ["sim_ladder", "tirf_ladder"])
def test_stricter_tolerance_never_chooses_fewer_averages(
    ladder: str, criterion: Criterion, request: pytest.FixtureRequest, sim_core
) -> None:
    rungs = request.getfixturevalue(ladder).rungs
    control = device_control(sim_core, "Detector.LineAverage")
    strict_to_lenient = [
        Tolerance(psnr_db=p, ssim=s, structure=h)
        for p, s, h in [(0.1, 0.002, 0.02), (0.25, 0.005, 0.05), (0.5, 0.01, 0.1), (1, 0.03, 0.2)]
    ] + [Tolerance(psnr_db=3, ssim=0.1, structure=h) for h in (0.3, 0.5, 1.0)]
    points = [
        find_breaking_point(rungs, t, 16, criterion).breaking_point for t in strict_to_lenient
    ]
    chosen = [16 if p is None else choose_value(control, p + 1, 16) for p in points]
    assert chosen == sorted(chosen, reverse=True), chosen


def test_no_single_noisy_rung_decides_the_plateau(sim_ladder: Measurement) -> None:
    rungs = [r.model_copy(deep=True) for r in sim_ladder.rungs]
    before = find_breaking_point(rungs, Tolerance(), 16, Plateau()).breaking_point
    rungs[0].denoised.psnr.mean += 30  # one wild measurement at a single average
    rungs[0].denoised.ssim.mean = 1.0
    assert find_breaking_point(rungs, Tolerance(), 16, Plateau()).breaking_point == before


def test_model_that_helps_matches_the_reference_protocol_with_fewer_averages(
    sim_profile: Path,
) -> None:
    """The fine-tuned model's denoised average of n < 16 lines is as good as the raw 16-line average:
    the scan is faster, and the profile says by how much and what quality to expect."""
    profile = load_profile(sim_profile)
    point = profile.verdict.breaking_point
    assert point is not None and point < 16
    assert profile.chosen.averages < profile.reference.averages and profile.time_saved > 0
    rung = next(r for r in profile.measurement.rungs if r.averages == point)
    assert rung.vs_reference.psnr.low >= -profile.tolerance.psnr_db
    assert rung.vs_reference.ssim.low >= -profile.tolerance.ssim
    assert (
        profile.expected.denoised and point <= profile.expected.averages <= profile.chosen.averages
    )


@pytest.mark.parametrize("criterion", [Reference(), Plateau()], ids=str)
def test_model_returning_its_input_gives_no_benefit(
    identity_model_path: Path, criterion: Criterion
) -> None:
    ladder = sim_measurement(identity_model_path)
    verdict = find_breaking_point(ladder.rungs, Tolerance(), 16, criterion)
    assert not verdict.benefit and verdict.breaking_point is None
    assert "no benefit" in verdict.reason
    assert verdict.unsafe == []  # it changes nothing, so it invents nothing either


def test_model_that_blurs_is_caught_by_the_residual_check(sim_ladder: Measurement) -> None:
    """A Gaussian filter passed off as a denoiser: the residual check flags every rung, where the
    filter takes the filaments' contrast, and the calibration keeps the reference protocol."""
    card = load_engine(
        ROOT / "livedenoise" / "weights" / "sim-confocal-small", "onnxruntime", window=1
    ).card
    ladder = sim_measurement(Engine(_Blur(1.5), card))
    verdict = find_breaking_point(ladder.rungs, Tolerance(), 16)
    assert verdict.unsafe == [r.averages for r in ladder.rungs]
    assert all(r.structure.mean < -0.1 for r in ladder.rungs)  # structure removed, not added
    assert not any(t.safe for t in verdict.tests) and verdict.breaking_point is None
    assert all(r.structure.mean > -0.1 for r in sim_ladder.rungs)  # the real model keeps it


def test_setting_chosen_on_two_fields_holds_on_a_third(
    sim_model_path: Path, sim_core, tmp_path: Path
) -> None:
    # 128 px frames: 16 crops per field; the 4 crops of a 64 px frame leave 95% intervals too wide to
    # decide anything on a sparse field
    size = ["Detector.FrameWidth=128", "Detector.FrameHeight=128"]
    apply_assignments(sim_core, ["Detector.Zoom=2", *size])
    request = CalibrationRequest(model=sim_model_path, backend="onnxruntime", frames=100)
    recording = Recording(repeats=REPEATS, positions=[CELL_XY, OTHER_CELLS[0]])
    profile = calibrate_on_core(sim_core, request, recording, tmp_path / "two")
    assert len(profile.fields) == 2 and profile.measurement.fields == 2
    point = profile.verdict.breaking_point
    assert point is not None and profile.time_saved > 0
    assert all(r.verdict.breaking_point <= point for r in profile.fields)  # holds on both
    report = (tmp_path / "two" / "report.md").read_text()
    assert report.count("## camera Detector at") == 2 and "planned acquisition of 100" in report
    third = measure(
        load_engine(sim_model_path, "onnxruntime", window=1, frame_size=(128, 128)),
        sim_repeats(128, OTHER_CELLS[1]),
        16,
    )
    at = [r for r in third.rungs if r.averages <= profile.chosen.averages][-1]
    assert at.denoised.psnr.mean >= third.reference_raw.psnr.low
    assert at.denoised.ssim.mean >= third.reference_raw.ssim.low


def test_denoiser_that_blurs_filaments_away_is_unsafe() -> None:
    """On the real TIRF repeats: blurring (what an overreaching denoiser does) leaves the sample's
    structure in the residual; returning the input, or the input with noise removed, does not."""
    frames = tifffile.imread(TIRF).astype(np.float64)
    later = frames[10:]
    reference, noise_var = later.mean(0), float(later.var(0, ddof=1).mean() / len(later))
    raw = frames[:2].mean(0)
    blurred = structure_share(gaussian_filter(raw, 2.0), raw, reference, noise_var)
    unchanged = structure_share(raw, raw, reference, noise_var)
    assert blurred[0] < -0.1 and unsafe(*blurred)
    assert unchanged == (0.0, 0.0) and not unsafe(*unchanged)


def test_applied_profile_sets_the_property_on_the_core(sim_profile: Path, sim_core) -> None:
    apply_assignments(sim_core, ["Detector.Zoom=2"])  # as calibrated (another zoom is refused)
    sim_core.setProperty("Detector", "LineAverage", 64)
    profile = apply_profile(sim_core, sim_profile)
    assert str(sim_core.getProperty("Detector", "LineAverage")) == profile.chosen.text
    assert sim_core.getExposure() == pytest.approx(profile.chosen.frame_ms)


def test_exposure_can_be_the_averaging_property(
    identity_model_path: Path, in_tmp: Path, sim_core
) -> None:
    """As on a camera: one 'average' is the current exposure (9 ms for 64 lines); 16 repeats measure
    up to 8 of them, the default reference protocol then (72 ms)."""
    args = ["--model", identity_model_path, "--property", "Exposure", "--repeats", 16, *SIM]
    code, out = run(*args, "--out", "cam")
    assert code == 0, out
    assert "Detector.Exposure = 72" in out  # no benefit: the reference protocol, 8 x 9 ms
    apply_assignments(sim_core, ["Detector.Zoom=2"])  # as calibrated
    profile = apply_profile(sim_core, in_tmp / "calibration" / "cam")
    assert sim_core.getExposure() == pytest.approx(profile.chosen.frame_ms)


def test_profile_naming_a_missing_property_is_refused(
    sim_profile: Path, sim_core, tmp_path: Path
) -> None:
    data = json.loads(sim_profile.read_text())
    data["property"] = "ScanAverage"
    edited = tmp_path / "profile.json"
    edited.write_text(json.dumps(data))
    with pytest.raises(CalibrationError, match="no property 'ScanAverage'"):
        apply_profile(sim_core, edited)
    assert sim_core.getProperty("Detector", "LineAverage") == 1


def test_offline_calibration_of_real_tirf_repeats(
    backbone_path: Path, in_tmp: Path, sim_core
) -> None:
    """20 repeats measure 1..10 averages: the reference protocol and any breaking point lie there."""
    code, out = run(
        "--model", backbone_path, "--from-stack", TIRF, "--frame-ms", 5, "--out", "tirf"
    )
    assert code == 0, out
    profile = load_profile(in_tmp / "calibration" / "tirf")
    assert [r.averages for r in profile.measurement.rungs] == [1, 2, 3, 4, 6, 8, 10]
    assert profile.measurement.reference_frames == 10
    assert profile.verdict.breaking_point in (None, 1, 2, 3, 4, 6, 8)
    assert profile.device is None and profile.reference.frame_ms == 50
    code, out = run(
        "--model", backbone_path, "--from-stack", TIRF, "--reference", 16, "--out", "tirf16"
    )
    assert code == 1 and "more than the 10 these repeats measure" in out and "32 repeats" in out
    assert (in_tmp / "calibration" / "tirf" / "calibration.png").is_file()
    with pytest.raises(CalibrationError, match="offline"):
        apply_profile(sim_core, in_tmp / "calibration" / "tirf" / "profile.json")


def test_stack_with_too_few_repeats_is_refused(identity_model_path: Path, in_tmp: Path) -> None:
    stack = in_tmp / "three.tif"
    tifffile.imwrite(stack, tifffile.imread(TIRF)[:3], imagej=True, metadata={"axes": "TYX"})
    code, out = run("--model", identity_model_path, "--from-stack", stack, "--out", "few")
    assert code == 1 and "3 repeated frame(s) are too few" in out and "at least 4" in out
    for count in (2, 1, 0):  # 0 and 1 once blamed the reference drawn from them
        code, out = run("--model", identity_model_path, "--repeats", count, "--out", "few", *SIM)
        assert code == 1 and f"{count} repeats are too few" in out and "(--repeats)" in out, out
    assert not (in_tmp / "calibration").exists()


def test_property_the_device_lacks_is_refused(identity_model_path: Path, in_tmp: Path) -> None:
    code, out = run(
        "--model", identity_model_path, "--property", "Detector.Averages", "--out", "x", *SIM
    )
    assert (
        code == 1 and "device Detector has no property 'Averages'" in out and "LineAverage" in out
    )
    code, out = run(
        "--model", identity_model_path, "--property", "Bidirectional", "--out", "x", *SIM
    )
    assert code == 1 and "Detector.Bidirectional is not numeric" in out


def test_model_that_does_not_load_is_refused(in_tmp: Path) -> None:
    code, out = run("--model", in_tmp / "missing", "--out", "x", *SIM)
    assert code == 1 and "missing" in out
    (in_tmp / "broken.safetensors").write_bytes(b"not weights")
    (in_tmp / "broken.json").write_text("{}")
    code, out = run("--model", in_tmp / "broken", "--out", "x", *SIM)
    assert code == 1 and "broken" in out
    assert not (in_tmp / "calibration").exists()


def test_interrupted_calibration_leaves_no_profile(identity_model_path: Path, in_tmp: Path) -> None:
    args = ["--model", identity_model_path, "--repeats", 16, *SIM]
    code, out = run(*args, "--out", "run")
    assert code == 0, out
    before = (in_tmp / "calibration" / "run" / "profile.json").read_bytes()
    # the detector faults after 10 frames, in a fresh run and in one replacing the first
    for extra in (["--out", "new"], ["--out", "run", "--overwrite"]):
        code, out = run(*args, "--set", "Detector.FailAfterFrames=10", *extra)
        assert code == 1 and "detector fault" in out and "nothing was written" in out
    assert sorted(p.name for p in (in_tmp / "calibration").iterdir()) == ["run"]
    assert (in_tmp / "calibration" / "run" / "profile.json").read_bytes() == before


def test_interruption_while_writing_leaves_the_previous_profile(
    sim_profile: Path, tmp_path: Path
) -> None:
    profile = load_profile(sim_profile)
    target = tmp_path / "calibration" / "sim"
    publish(target, lambda d: write_outputs(d, profile))
    before = (target / "profile.json").read_bytes()

    def interrupted(directory: Path) -> None:
        write_outputs(directory, profile.model_copy(update={"margin": 5.0}))
        raise KeyboardInterrupt  # Ctrl-C after the files, before they are moved into place

    with pytest.raises(KeyboardInterrupt):
        publish(target, interrupted, overwrite=True)
    assert [p.name for p in target.parent.iterdir()] == ["sim"]
    assert (target / "profile.json").read_bytes() == before
    assert np.isclose(load_profile(target).margin, profile.margin)


def test_out_path_is_written_where_it_points(identity_model_path: Path, in_tmp: Path) -> None:
    """``--out NAME`` goes under calibration/, ``--out /some/folder`` is written there."""
    target = in_tmp / "elsewhere" / "x"
    args = ["--model", identity_model_path, "--repeats", 8, *SIM]
    code, out = run(*args, "--out", target, "--frames", 50)
    assert code == 0, out
    assert (target / "profile.json").is_file() and not (in_tmp / "calibration").exists()
    assert "planned acquisition of 50 frames" in out
    code, out = run(*args, "--out", "plain")
    assert code == 0 and (in_tmp / "calibration" / "plain" / "profile.json").is_file()


def test_four_repeats_of_several_fields_calibrate_offline(
    backbone_path: Path, in_tmp: Path
) -> None:
    """The FMD test fields hold 4 raw frames each: a ladder of 1 and 2 frames against a 2-frame
    reference, on every field given, with each field's table in the report."""
    names = ["Confocal_BPAE_G", "Confocal_FISH"]
    for name in names:  # a 128 px crop of each keeps the test fast
        tifffile.imwrite(
            in_tmp / f"{name}.tif",
            tifffile.imread(FMD / f"{name}.tif")[:, :128, :128],
            imagej=True,
            metadata={"axes": "TYX"},
        )
    stacks = [arg for name in names for arg in ("--from-stack", in_tmp / f"{name}.tif")]
    code, out = run("--model", backbone_path, *stacks, "--out", "fmd")
    assert code == 0, out
    profile = load_profile(in_tmp / "calibration" / "fmd")
    assert [f.source for f in profile.fields] == [f"stack {n}.tif" for n in names]
    for result in [*profile.fields, profile]:
        m = result.measurement
        assert [r.averages for r in m.rungs] == [1, 2] and m.reference_frames == 2
    assert profile.reference.averages == 2 and profile.verdict.breaking_point in (None, 1)
    report = (in_tmp / "calibration" / "fmd" / "report.md").read_text()
    assert all(f"## stack {n}.tif" in report for n in names) and "pooled" in report
