"""What every command shares: one console and one way to report a user's mistake."""

from __future__ import annotations

import typer
from rich.console import Console

console = Console()


def fail(message: str) -> typer.Exit:
    """Print a user-facing error (what is wrong, what to do) and return the exit to raise."""
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=1)
