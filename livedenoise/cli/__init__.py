"""The ``livedenoise`` command: one small module per group of commands, registered here."""

from __future__ import annotations

import logging
from importlib.metadata import version
from typing import Annotated

import typer

from livedenoise.cli import acquire, calibrate, denoise, devices, model, train

app = typer.Typer(
    name="livedenoise",
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
    """Options that come before any command."""


for _commands in (acquire, devices, calibrate, train, denoise, model):
    _commands.register(app)


def main() -> None:
    _quiet_pymmcore_plus()
    app(prog_name="livedenoise")


def _quiet_pymmcore_plus() -> None:
    """pymmcore-plus prints its own warnings (e.g. "MDA Canceled" on Ctrl-C) to the terminal; the
    commands report what matters themselves. Its log file and livedenoise's own handlers keep them."""
    for handler in logging.getLogger("pymmcore-plus").handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(
            handler, logging.FileHandler
        ):
            handler.setLevel(logging.ERROR)
