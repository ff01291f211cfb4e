"""Output locations checked before the work that fills them (an acquisition, a training)."""

from __future__ import annotations

import tempfile
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
