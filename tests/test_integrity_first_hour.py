"""The first hour of a new user (issue 28): the demo tiles, YAML typos, the viewer's system libraries,
adapters that are not installed, and calibration profiles made under other conditions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from livedenoise.acquisition import make_core
from livedenoise.cli import app
from livedenoise.pipeline.setup import DEMO_SETTINGS, apply_assignments, demo_sequence

runner = CliRunner()


def _cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args], terminal_width=200)
    return result.exit_code, " ".join(result.output.split())


def test_demo_tiles_step_by_the_field_of_view() -> None:
    """The demo's 2x2 grid, counted first as the demo command does, then run on the simulated
    microscope at the demo's settings: neighbouring tiles lie 90% of a field of view apart (the
    plan's 10% overlap), so the mosaic shows four fields, not one field four times."""
    core = make_core()
    apply_assignments(core, [*DEMO_SETTINGS, "Detector.TimeScale=0"])
    fov_um = core.getPixelSizeUm() * core.getImageWidth()
    sequence = demo_sequence()
    assert len(list(sequence)) == 48
    tiles: dict[int, tuple[float, float]] = {}
    core.mda.events.frameReady.connect(
        lambda frame, event, meta: tiles.setdefault(event.index["g"], (event.x_pos, event.y_pos))
    )
    core.mda.run(sequence)
    assert len(tiles) == 4
    for axis in (0, 1):
        low, high = sorted({round(xy[axis], 6) for xy in tiles.values()})
        assert high - low == pytest.approx(0.9 * fov_um)


@pytest.mark.parametrize(
    ("text", "key", "allowed"),
    [
        ("grid_plan: {rows: 2, colums: 2}\n", "grid_plan.colums", "grid_plan has columns"),
        (
            "stage_positions:\n  - {x: 0, y: 0, sequence: {z_plan: {range: 2, stepp: 1}}}\n",
            "stage_positions[0].sequence.z_plan.stepp",
            "has go_up, range, step",
        ),
        (
            "channels: [FITC, {config: DAPI, exposur: 5}]\n",
            "channels[1].exposur",
            "has acquire_every, camera, config",
        ),
        ("time_plan: {interval: 0, loop: 3}\n", "time_plan.loop", "interval, loops"),
    ],
)
def test_a_misspelt_key_at_any_level_is_refused_before_acquiring(
    text: str, key: str, allowed: str, tmp_path: Path, small_model_path: Path
) -> None:
    sequence = tmp_path / "seq.yaml"
    sequence.write_text(text)
    out = tmp_path / "never.ome.zarr"
    code, output = _cli(
        "acquire", sequence, "--model", small_model_path, "--headless", "--out", out
    )
    assert code == 1, output
    assert f"seq.yaml: unknown key(s) {key};" in output and allowed in output
    assert "Traceback" not in output and not out.exists()


def test_a_well_spelt_nested_sequence_still_runs(tmp_path: Path, small_model_path: Path) -> None:
    sequence = tmp_path / "seq.yaml"
    sequence.write_text(
        "grid_plan: {rows: 1, columns: 2, overlap: 10}\nchannels: [{config: FITC, exposure: 5}]\n"
    )
    out = tmp_path / "run.ome.zarr"
    code, output = _cli(
        "acquire",
        sequence,
        *("--set", "Detector.FrameWidth=32", "--set", "Detector.FrameHeight=32"),
        *("--set", "Detector.TimeScale=0"),
        *("--model", small_model_path, "--backend", "torch", "--headless", "--out", out),
    )
    assert code == 0, output
    assert "frames acquired / denoised │ 2 / 2" in output


# what each command needs besides --config (calibrate: a model; nothing is measured before the core)
COMMANDS = {
    "acquire": ["--headless"],
    "devices": [],
    "calibrate": ["--model", "backbone-small", "--out", "never"],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_a_configuration_naming_an_adapter_not_installed_says_which_and_how_to_get_it(
    command: str, mm_adapters: Path, tmp_path: Path, monkeypatch
) -> None:
    """Micro-Manager's DemoCamera adapter is found; the other adapter is not installed."""
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "scope.cfg"
    config.write_text(
        "Device,Camera,DemoCamera,DCam\nDevice,Cam2,NotInstalledAdapter,DCam\n"
        "Property,Core,Initialize,1\nProperty,Core,Camera,Camera\n"
    )
    code, output = _cli(command, "--config", config, *COMMANDS[command])
    assert code == 1, output
    assert "adapter(s) NotInstalledAdapter, not installed" in output
    assert f"looked in {mm_adapters}; found: DemoCamera, Utilities" in output
    assert "mmcore install" in output and "MICROMANAGER_PATH" in output
    assert "Traceback" not in output and sorted(tmp_path.iterdir()) == [config]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# nothing here\nProperty,Core,Initialize,1\n", "loads no devices"),
        (
            "Device,Z,DemoCamera,DStage\nProperty,Core,Initialize,1\n",
            "sets no camera: add the line Property,Core,Camera,LABEL naming a camera device",
        ),
    ],
)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_configuration_with_no_camera_is_refused_in_one_line(
    command: str, text: str, message: str, mm_adapters: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)  # whatever happens, nothing is written in the checkout
    config = tmp_path / "scope.cfg"
    config.write_text(text)
    code, output = _cli(command, "--config", config, *COMMANDS[command])
    assert code == 1 and message in output and "Traceback" not in output, output


def test_a_configuration_error_names_its_file(tmp_path: Path) -> None:
    """The library says which file gives no microscope, for a script or viewer to act on."""
    from livedenoise.acquisition import ConfigError
    from livedenoise.errors import LivedenoiseError

    config = tmp_path / "scope.cfg"
    config.write_text("# nothing here\nProperty,Core,Initialize,1\n")
    with pytest.raises(ConfigError, match="loads no devices") as refused:
        make_core(config)
    assert isinstance(refused.value, LivedenoiseError) and isinstance(refused.value, ValueError)
    assert refused.value.path == config


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Qt's xcb platform is Linux's")
def test_no_display_is_said_without_naming_a_flag(monkeypatch) -> None:
    """Without a display the library says so and names its option; the command line adds its flag."""
    from livedenoise.gui.display import DisplayError, check_display

    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(DisplayError, match="the viewer cannot start") as refused:
        check_display()
    assert refused.value.option == "headless" and "--" not in str(refused.value)


def test_micromanagers_demo_configuration_still_lists_its_devices(mm_adapters: Path) -> None:
    code, output = _cli("devices", "--config", mm_adapters / "MMConfig_demo.cfg")
    assert code == 0, output
    assert "White Light Shutter" in output  # a device of the demo configuration


def test_the_missing_viewer_libraries_are_named_with_their_apt_get_line() -> None:
    from livedenoise.gui.display import XCB_LIBRARIES, missing_libraries, missing_message

    assert missing_libraries(["libc.so.6", "libnot-installed-xcb-test.so.0"]) == [
        "libnot-installed-xcb-test.so.0"
    ]
    message = missing_message(["libxcb-icccm.so.4", "libxcb-keysyms.so.1"], XCB_LIBRARIES)
    assert "libxcb-icccm.so.4, libxcb-keysyms.so.1" in message
    assert "sudo apt-get install libxcb-icccm4 libxcb-keysyms1" in message
    assert "--headless" not in message  # a flag only the command line has: it adds it


FAKE_MISSING = (
    "import livedenoise.gui.display as d; "
    "d.XCB_LIBRARIES['libnot-installed-xcb-test.so.0'] = 'libnot-installed-xcb-test0'; "
    "from livedenoise.cli import app; app()"
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Qt's xcb platform is Linux's")
def test_the_viewer_says_what_is_missing_instead_of_qt_aborting(
    small_model_path: Path, tmp_path: Path
) -> None:
    """A viewer run where a library Qt's xcb platform needs is missing (one that exists nowhere is
    added to the list, so that the test holds on any Linux machine): one line naming it and the
    package to install, exit 1, before anything is loaded or written; Qt never gets to abort."""
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb", "DISPLAY": ":99", "COLUMNS": "300"}
    env.pop("WAYLAND_DISPLAY", None)
    out = tmp_path / "run.ome.zarr"
    result = subprocess.run(
        [sys.executable, "-c", FAKE_MISSING, "acquire", "--model", small_model_path, "--out", out],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    said = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 1, said
    assert "libnot-installed-xcb-test.so.0" in said and "apt-get install" in said
    assert "libnot-installed-xcb-test0" in said and not out.exists()
    assert said.endswith("or run headless, without a window (--headless)")


SIM_32 = [
    *("--set", "Detector.FrameWidth=32"),
    *("--set", "Detector.FrameHeight=32"),
    *("--set", "Detector.TimeScale=0"),
    *("--backend", "torch"),
]


@pytest.fixture(scope="module")
def zoom2_profile(identity_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``livedenoise calibrate`` on the simulated microscope at zoom 2, 32 x 32 px frames."""
    folder = tmp_path_factory.mktemp("calibration") / "zoom2"
    code, output = _cli(
        "calibrate",
        *("--model", identity_model_path, "--out", folder, "--repeats", 8, "--xy", "22.5,22.5"),
        *("--set", "Detector.Zoom=2", *SIM_32),
    )
    assert code == 0, output
    return folder / "profile.json"


def test_a_profile_records_the_settings_it_was_measured_at(zoom2_profile: Path) -> None:
    from livedenoise.calibration.profile import load_profile

    settings = load_profile(zoom2_profile).settings
    assert settings is not None
    assert settings["pixel size"] == "0.1 um" and settings["frame"] == "32 x 32 px"
    assert settings["camera"] == "Detector"


def _acquire_with(profile: Path, model: Path, zoom: int, out: Path, *extra: str):
    sequence = out.with_suffix(".yaml")
    sequence.write_text("time_plan: {interval: 0, loops: 2}\n")
    return _cli(
        "acquire",
        sequence,
        *("--model", model, "--calibration", profile, "--headless", "--out", out),
        *("--set", f"Detector.Zoom={zoom}", *SIM_32, *extra),
    )


def test_a_profile_made_with_another_model_and_zoom_is_refused_naming_both(
    zoom2_profile: Path, small_model_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run.ome.zarr"
    code, output = _acquire_with(zoom2_profile, small_model_path, 1, out)
    assert code == 1, output
    assert "measured under other conditions" in output
    assert "model identity (" in output and ", now small (" in output
    assert "pixel size 0.1 um, now 0.2 um" in output
    assert "--accept-calibration" in output and "Traceback" not in output
    assert not out.exists()


def test_accept_calibration_applies_it_anyway_and_a_matching_profile_needs_no_flag(
    zoom2_profile: Path, identity_model_path: Path, small_model_path: Path, tmp_path: Path
) -> None:
    from livedenoise.calibration.profile import load_profile
    from livedenoise.storage import open_run

    chosen = load_profile(zoom2_profile).chosen.text
    runs = {
        "accepted": (small_model_path, 1, "--accept-calibration"),
        "matching": (identity_model_path, 2),
    }
    for name, (model, zoom, *extra) in runs.items():
        out = tmp_path / f"{name}.ome.zarr"
        code, output = _acquire_with(zoom2_profile, model, zoom, out, *extra)
        assert code == 0, output
        assert "other conditions" not in output
        attrs = open_run(out).attrs
        assert ["Detector", "LineAverage", chosen] in attrs["devices"]
        assert attrs["calibration"]["chosen"]["text"] == chosen
