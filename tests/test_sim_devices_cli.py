"""`livedenoise devices` shows a user what the microscope lets them change."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from livedenoise.acquisition import SIMULATED_CFG
from livedenoise.cli import app

runner = CliRunner()


def test_devices_lists_properties_with_values_limits_and_access() -> None:
    result = runner.invoke(app, ["devices"], terminal_width=200)
    assert result.exit_code == 0, result.output
    rows = {
        tuple(cell.strip() for cell in line.strip("│ ").split("│"))[:2]: line
        for line in result.output.splitlines()
        if line.count("│") >= 5
    }
    assert "1 .. 64" in rows["Detector", "LineAverage"]
    assert "8, 12, 16" in rows["Detector", "BitDepth"]
    assert "405nm," in rows["LaserLine", "Label"]  # the allowed labels (wrapped in the table)
    assert "read-only" in rows["Detector", "PixelDwell_us"]
    assert "pre-init" in rows["XYStage", "Rig"]
    assert "Detector" in rows["Core", "Camera"]  # the roles, as UniMMCore knows them
    assert "DAPI, FITC, TRITC" in result.output.replace("Cy5, ", "")  # the channel presets


def test_devices_reads_a_configuration_file() -> None:
    result = runner.invoke(app, ["devices", "--config", str(SIMULATED_CFG)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "simulated.cfg" in result.output
    assert "Zoom1x, Zoom2x, Zoom4x" in result.output


def test_a_missing_configuration_file_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["devices", "--config", str(tmp_path / "none.cfg")])
    assert result.exit_code == 1
    assert "no Micro-Manager configuration file" in " ".join(result.output.split())
    assert "Traceback" not in result.output
