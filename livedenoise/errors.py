"""One base for every error a user can cause, so front ends catch one type and say it their own way.

The library says what is wrong in its own terms (a path, a parameter, a value) and never names a
command-line flag: a script or viewer user never typed one. The structured fields let each front end
add its own words: the CLI turns ``option`` into its ``--flag`` (``livedenoise.cli.common.fail``),
the viewer into the name of its control.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class LivedenoiseError(Exception):
    """What went wrong, in the library's terms, with fields a front end can act on.

    Args:
        message: what is wrong and, in the library's words, what to do (one line).
        path: the file or folder concerned, if any.
        option: the parameter (a Python name, e.g. ``"overwrite"``, ``"image"``) the user can set to
            fix it, if any; the CLI names it as its flag (``--overwrite``).
        value: the offending value, if any.
        hint: a second sentence on what to do, in the library's words.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        option: str | None = None,
        value: Any = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = Path(path) if path is not None else None
        self.option = option
        self.value = value
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message
