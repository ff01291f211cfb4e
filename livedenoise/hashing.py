"""Content hashes of files: the identity a model's weights, an ONNX graph and cached engines are
checked and keyed by. A module of its own because the model, its exporters and the engine cache all
need it and none of them should import another for it."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes, as hex, read in 1 MiB chunks (files may be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
