"""The ``livedenoise`` command: one small module per group of commands, registered here."""

from __future__ import annotations

import typer

from livedenoise.cli import acquire, calibrate, denoise, devices, model, train

app = typer.Typer(
    name="livedenoise",
    help="Denoise a running microscope in real time with a CNNT model.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)

for _commands in (acquire, devices, calibrate, train, denoise, model):
    _commands.register(app)


def main() -> None:
    app()
