"""The ``livedenoise`` command: one small module per group of commands, loaded when it is used.

``--help``, ``--version`` and a mistyped command answer without importing any command module: those
pull in torch, ONNX Runtime, Micro-Manager and zarr, seconds of start-up that a user asking for help
should not wait for. The command list shows each command's docstring, read from its source.
"""

from __future__ import annotations

import ast
import importlib
import os
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:  # the click that typer's group is typed with (typer vendors its own)
    from typer._click import Command, Context, HelpFormatter

# name: (module under livedenoise.cli, function, help panel), in the order --help lists them
COMMANDS: dict[str, tuple[str, str, str]] = {
    "acquire": ("acquire", "acquire", "Acquisition"),
    "demo": ("acquire", "demo", "Acquisition"),
    "devices": ("devices", "devices", "Microscope"),
    "calibrate": ("calibrate", "calibrate_command", "Acquisition"),
    "finetune": ("train", "finetune", "Models"),
    "denoise": ("denoise", "denoise", "Denoising"),
    "new": ("model", "new", "Models"),
    "info": ("model", "info", "Models"),
    "export": ("model", "export", "Models"),
    "import": ("model", "import_package", "Models"),
}


class _LazyCommands(TyperGroup):
    """Imports a command's module only to run the command (or show its own help).

    ``commands`` holds stand-ins (name and panel) for the list in ``--help`` and typer's "did you
    mean" suggestions; their help is read from the source when that list is drawn.
    """

    listing = False  # True while the group's own help is drawn

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name, (_, _, panel) in COMMANDS.items():
            self.commands[name] = TyperCommand(name, rich_help_panel=panel)

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if self.listing or cmd_name not in COMMANDS:
            return self.commands.get(cmd_name)
        module, function, panel = COMMANDS[cmd_name]
        callback = getattr(importlib.import_module(f"livedenoise.cli.{module}"), function)
        single = typer.Typer(add_completion=False, rich_markup_mode="rich")
        single.command(cmd_name, rich_help_panel=panel)(callback)
        return typer.main.get_command(single)

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        for name, (module, function, _) in COMMANDS.items():
            self.commands[name].help = _docstring(module, function)
        self.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.listing = False


def _docstring(module: str, function: str) -> str:
    """A command's docstring from its module's source, without running the module's imports."""
    spec = find_spec(f"livedenoise.cli.{module}")
    source = Path(spec.origin).read_text(encoding="utf-8")  # type: ignore[union-attr, arg-type]
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            return ast.get_docstring(node) or ""
    raise LookupError(f"livedenoise.cli.{module} has no command {function}")


app = typer.Typer(
    name="livedenoise",
    cls=_LazyCommands,
    help="Denoise a running microscope in real time with a CNNT model.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)


def _print_version(requested: bool) -> None:
    if requested:
        typer.echo(f"livedenoise {version('livedenoise')}")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            metavar="",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Options that come before any command, which runs next: it shows the cache's builds."""
    from livedenoise.cli.common import show_builds  # heavy; the command has imported it already

    show_builds()


def main() -> None:
    _quiet_pymmcore_plus()
    app(prog_name="livedenoise")


def _quiet_pymmcore_plus() -> None:
    """pymmcore-plus prints its own warnings (e.g. "MDA Canceled" and the whole sequence on Ctrl-C)
    to the terminal; the commands report what matters themselves, and its log file and livedenoise's
    own handlers keep them. Its stderr level is read from PYMM_LOG_LEVEL when it is first imported
    (inside a command, after this), so a level the user set stays theirs."""
    os.environ.setdefault("PYMM_LOG_LEVEL", "ERROR")
