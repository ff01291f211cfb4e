"""The command line reads well and turns a broken model into a clear message."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from typer.testing import CliRunner

from livedenoise.cli import app

runner = CliRunner()


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("new", "info", "export"):
        assert command in result.output


def test_new_then_info_shows_the_card(tmp_path: Path) -> None:
    assert runner.invoke(app, ["new", str(tmp_path / "m"), "--preset", "small"]).exit_code == 0
    result = runner.invoke(app, ["info", str(tmp_path / "m")], terminal_width=200)
    assert result.exit_code == 0
    sha = json.loads((tmp_path / "m.json").read_text())["weights_sha256"]
    assert sha[:12] in result.output
    assert "untrained" in result.output


def test_missing_model_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["info", str(tmp_path / "nothing")])
    assert result.exit_code == 1
    assert "model card not found" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_version_prints_the_installed_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"livedenoise {version('livedenoise')}"


def test_python_dash_m_is_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "livedenoise", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"livedenoise {version('livedenoise')}"
