"""The ``livedenoise`` command: one small module per group of commands, registered here."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="livedenoise",
    help="Denoise a running microscope in real time with a CNNT model.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)

from livedenoise.cli import model as _model  # noqa: E402

_model.register(app)

from livedenoise.cli import devices as _devices  # noqa: E402

_devices.register(app)


def main() -> None:
    app()
