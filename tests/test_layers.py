"""The layer rules in pyproject.toml hold, and `lint-imports` really fails when one is broken."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "pyproject.toml"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(package_parent: Path, *args: str) -> tuple[int, str]:
    """Run lint-imports with the project's contracts on the `livedenoise` found in ``package_parent``."""
    env = {**os.environ, "PYTHONPATH": str(package_parent), "COLUMNS": "200"}
    result = subprocess.run(
        [str(LINT_IMPORTS), str(CONFIG), "--no-cache", "--no-logo", *args],
        cwd=package_parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode, result.stdout + result.stderr


def test_the_layer_rules_hold() -> None:
    code, output = lint_imports(ROOT)
    assert code == 0, output


def test_a_forbidden_import_breaks_the_named_contract(tmp_path: Path) -> None:
    shutil.copytree(
        ROOT / "livedenoise",
        tmp_path / "livedenoise",
        ignore=shutil.ignore_patterns("__pycache__", "weights"),
    )
    module = tmp_path / "livedenoise" / "pipeline" / "ring.py"
    module.write_text(
        module.read_text() + "\nimport livedenoise.gui  # a pipeline that knows the viewer\n"
    )
    code, output = lint_imports(tmp_path, "--contract", "pipeline")
    assert code != 0
    assert "knows no front end BROKEN" in output
    assert "livedenoise.pipeline.ring -> livedenoise.gui" in output
