"""What every command shares: one console, one way to report a user's mistake, ``--threads``."""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer
from rich.console import Console

from livedenoise.backends import backend_names
from livedenoise.errors import LivedenoiseError

console = Console()


def _known_backend(name: str) -> str:
    """``--backend``: one of the registry's names, or one line that lists them (not a usage box)."""
    if name not in backend_names():
        raise fail(f"unknown --backend '{name}': choose one of {', '.join(backend_names())}")
    return name


BackendOption = Annotated[
    str,
    typer.Option(
        metavar="NAME",
        callback=_known_backend,
        help=f"Inference engine: {', '.join(backend_names())}.",
    ),
]


def fail(message: str | Exception, flags: dict[str, str] | None = None) -> typer.Exit:
    """Print a user-facing error (what is wrong, what to do) and return the exit to raise.

    A ``LivedenoiseError`` names the parameter that fixes it; the command line names its flag:
    ``--name-of-it``, or ``flags[option]`` where a command calls it otherwise."""
    text = str(message)
    if isinstance(message, LivedenoiseError) and message.option:
        flag = (flags or {}).get(message.option, "--" + message.option.replace("_", "-"))
        text = f"{text} ({flag})"
    console.print(f"[bold red]error:[/] {text}", soft_wrap=True)
    return typer.Exit(code=1)


Threads = Annotated[
    int | None,
    typer.Option(
        min=1,
        metavar="N",
        help="CPU threads for the engine (as OMP_NUM_THREADS); default: one per physical core, "
        "fewer while other programs keep cores busy.",
    ),
]


def use_threads(threads: int | None) -> None:
    """``--threads N``: every engine of this process, and of the Dask workers it starts, runs N CPU
    threads in all; ``livedenoise.cpu`` lets ``OMP_NUM_THREADS`` override its own count."""
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)


class _ConsoleLines(logging.Handler):
    """Log records a user should see as they happen, printed as console lines."""

    def emit(self, record: logging.LogRecord) -> None:
        console.print(self.format(record), highlight=False, soft_wrap=True)


def show_builds() -> None:
    """Print each export or engine build the cache starts (a model's first use, a new torch): they
    take seconds to minutes, and a command that sits silent that long looks stuck."""
    logger = logging.getLogger("livedenoise.inference.cache")  # by name: importing it loads torch
    logger.setLevel(logging.INFO)
    if not any(isinstance(handler, _ConsoleLines) for handler in logger.handlers):
        logger.addHandler(_ConsoleLines())
