"""The command answers ``--help``, ``--version`` and a mistyped command without loading the heavy
libraries (torch, ONNX Runtime, Qt, Micro-Manager, zarr, SciPy, matplotlib): they cost seconds of
start-up. Guarded by what is imported, not by timing."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version

HEAVY = ("torch", "onnxruntime", "qtpy", "pymmcore_plus", "zarr", "scipy", "matplotlib")
COMMANDS = ("acquire", "demo", "calibrate", "devices", "finetune", "new", "info", "export")
COMMANDS += ("import", "denoise")


def _run(args: list[str] | None) -> tuple[str, list[str]]:
    """The command's output and the heavy libraries imported, in a fresh interpreter (``None``:
    import the command only)."""
    script = "import json, sys\nfrom livedenoise.cli import app\n"
    if args is not None:
        script += (
            f"try:\n    app({args!r}, prog_name='livedenoise')\nexcept SystemExit:\n    pass\n"
        )
    script += f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    *output, loaded = result.stdout.strip().splitlines()
    return "\n".join(output) + result.stderr, json.loads(loaded)


def test_importing_the_command_loads_no_heavy_library() -> None:
    assert _run(None) == ("", [])


def test_help_lists_every_command_without_loading_them() -> None:
    output, loaded = _run(["--help"])
    assert loaded == []
    for command in COMMANDS:
        assert f" {command} " in output
    assert "Denoise a 2D image, time series or z-stack" in output  # the command's own docstring


def test_version_loads_no_heavy_library() -> None:
    output, loaded = _run(["--version"])
    assert output.strip() == f"livedenoise {version('livedenoise')}"
    assert loaded == []


def test_a_mistyped_command_is_answered_without_loading_them() -> None:
    output, loaded = _run(["denoize"])
    assert "No such command 'denoize'" in output
    assert "denoise" in output.split("Did you mean", 1)[1]
    assert loaded == []


def test_a_command_loads_when_it_runs() -> None:
    """The lazy list still reaches the real command: its own options and its argument errors."""
    output, _ = _run(["denoise", "--help"])
    assert "--window" in output
    output, _ = _run(["info"])
    assert "Missing argument" in output


def test_a_mistaken_denoise_is_answered_without_loading_them() -> None:
    output, loaded = _run(["denoise", "model", "in.tif"])
    assert "Missing argument 'output'" in output
    assert loaded == []
    both = ["--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"]
    output, loaded = _run(["denoise", "model", "in.tif", "out.tif", *both])
    assert "--workers starts a local cluster and --scheduler uses a running one" in output
    assert loaded == []
