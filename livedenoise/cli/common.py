"""What every command shares: one console and one way to report a user's mistake."""

from __future__ import annotations

from enum import Enum

import typer
from rich.console import Console

from livedenoise.inference import BACKENDS

console = Console()
Backend = Enum("Backend", {name: name for name in BACKENDS}, type=str)  # typer's choice list


def fail(message: str) -> typer.Exit:
    """Print a user-facing error (what is wrong, what to do) and return the exit to raise."""
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    return typer.Exit(code=1)
