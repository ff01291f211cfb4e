"""The code's own rules (docs/design.md, "The code"), checked over the package's sources.

A script or viewer user never typed a command-line flag, so no library message names one; one event
group carries every report; modules stay small enough to read.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import livedenoise

PACKAGE = Path(livedenoise.__file__).parent
SOURCES = sorted(PACKAGE.rglob("*.py"))
LIBRARY = [path for path in SOURCES if "cli" not in path.relative_to(PACKAGE).parts]
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (they may explain the command line)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _name(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


def test_no_library_message_names_a_command_line_flag() -> None:
    offenders = []
    for path in LIBRARY:
        tree = ast.parse(path.read_text())
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            is_text = isinstance(node, ast.Constant) and isinstance(node.value, str)
            if is_text and id(node) not in docstrings and FLAG.search(node.value):
                offenders.append(f"{_name(path)}:{node.lineno}: {node.value[:60]!r}")
    assert offenders == [], "library messages name command-line flags:\n" + "\n".join(offenders)


def test_one_signal_group_and_no_callback_or_console_parameters() -> None:
    offenders = []
    for path in LIBRARY:
        if path.name == "events.py" and path.parent == PACKAGE:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "psygnal":
                names = {alias.name for alias in node.names}
                if names & {"Signal", "SignalGroup"}:
                    offenders.append(f"{_name(path)}:{node.lineno}: declares psygnal signals")
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                arguments = node.args.args + node.args.kwonlyargs
                for arg in arguments:
                    annotation = ast.unparse(arg.annotation) if arg.annotation else ""
                    if arg.arg.startswith("on_") or "Console" in annotation:
                        offenders.append(f"{_name(path)}:{node.lineno}: parameter {arg.arg}")
    assert offenders == [], "events go through livedenoise.events.Events:\n" + "\n".join(offenders)


def test_no_module_is_over_400_lines() -> None:
    sizes = {_name(path): len(path.read_text().splitlines()) for path in SOURCES}
    assert {name: n for name, n in sizes.items() if n > 400} == {}
