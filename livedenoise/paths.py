"""Output locations checked before the work that fills them (an acquisition, a denoising, a training)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def unwritable_folder(path: Path) -> tuple[Path, str] | None:
    """The folder that would hold ``path`` and why it cannot take a new file, or None if it can.

    Missing folders are created later by the writer, so the nearest existing folder above ``path``
    is the one tried (a real file is created and removed: permissions and read-only mounts count).
    """
    folder = path.parent.resolve()
    while not folder.exists():
        folder = folder.parent
    try:
        with tempfile.TemporaryFile(dir=folder):
            return None
    except OSError as err:
        return folder, str(err.strerror or err)


def output_refusal(output: Path, inputs: Iterable[tuple[str, Path]], what: str) -> str | None:
    """Why ``output`` must not be written, in one line for people, or None if it may: it would
    change an input (``input_refusal``) or its folder cannot be written. ``what`` names the output
    in the message (``OUTPUT``, "the output folder")."""
    if refused := input_refusal(output, inputs, what):
        return refused
    if unwritable := unwritable_folder(output):
        return f"cannot write in {unwritable[0]} ({unwritable[1]}); choose another {what}."
    return None


def input_refusal(output: Path, inputs: Iterable[tuple[str, Path]], what: str) -> str | None:
    """Why writing ``output`` would destroy an input, in one line for people, or None.

    Refused: an output that is an input, holds one (writing or replacing it would delete that input)
    or lies inside one (writing would change it), for every ``(role, path)`` of ``inputs`` (the
    image read, the model used). Symlinks and ``..`` are resolved first and hard links compared, so
    another name of the same place is the same place.
    """
    target = output.resolve()
    for role, path in inputs:
        source = path.resolve()
        if target == source or _same_file(target, source):
            return f"{what} is the {role} ({path}): write to a new path."
        if target in source.parents:
            return (
                f"{what} {output} holds the {role} ({path}): writing it would delete the {role}; "
                f"choose an {what} outside it."
            )
        if source in target.parents:
            return (
                f"{what} {output} lies inside the {role} ({path}): writing it would change the "
                f"{role}; choose an {what} outside it."
            )
    return None


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` both exist and are one file (hard links)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
