"""Cache of built artefacts (ONNX exports, TensorRT engines) that never hands out a wrong one.

Each artefact ``NAME`` has a sidecar ``NAME.json`` holding the key it was built for and the sha256 of its
bytes. An artefact is used only when the sidecar's key equals the one asked for and the bytes still hash
to what the sidecar says; anything else (stale, foreign, truncated, corrupt) is rebuilt in place. This
matters most for TensorRT: a serialised engine is opaque, and deserialising a corrupt or foreign one can
crash the process instead of failing cleanly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from livedenoise.hashing import file_sha256
from livedenoise.model import CNNT, ModelCard, export_onnx
from livedenoise.model.card import SHIPPED_DIR
from livedenoise.model.onnx_export import OPSET, onnx_metadata

log = logging.getLogger(__name__)

CACHE_ENV = "LIVEDENOISE_CACHE"


def default_cache_dir() -> Path:
    """``$LIVEDENOISE_CACHE``, else ``engines/cache`` of the checkout, else the user's cache folder."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    engines = Path(__file__).resolve().parents[2] / "engines"
    if engines.is_dir():
        return engines / "cache"
    return Path.home() / ".cache" / "livedenoise"


def key_digest(key: Mapping[str, object]) -> str:
    """Stable short name for a key: the sha256 of its canonical JSON."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def why_unusable(path: Path, key: Mapping[str, object]) -> str | None:
    """Why the cached ``path`` must not be used for ``key``, or None when it may be."""
    sidecar = _sidecar(path)
    if not path.is_file() or not sidecar.is_file():
        return "first use"
    try:
        meta = json.loads(sidecar.read_text())
        stored_key, stored_hash = meta["key"], meta["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return "its sidecar is unreadable"
    if stored_key != dict(key):
        changed = sorted(k for k in set(stored_key) | set(key) if stored_key.get(k) != key.get(k))
        return f"it was built for another {', '.join(changed)}"
    if file_sha256(path) != stored_hash:
        return "its bytes do not match their recorded hash (corrupt or replaced)"
    return None


def cached(
    path: Path, key: Mapping[str, object], build: Callable[[Path], object], what: str = ""
) -> Path:
    """``path``, rebuilt with ``build(tmp_path)`` unless it is a verified build for ``key``.

    A build is logged at INFO, as ``what`` (default: building NAME) and why: it takes seconds to
    minutes, so the command line shows this line rather than sit silent.
    """
    reason = why_unusable(path, key)
    if reason is None:
        return path
    log.info("%s: %s", what or f"building {path.name}", reason)
    path.parent.mkdir(parents=True, exist_ok=True)
    # one partial file per process: Dask workers may build the same artefact at the same time
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    build(partial)
    digest = file_sha256(partial)
    _sidecar(path).unlink(missing_ok=True)  # a reader between the two writes sees "not built yet"
    os.replace(partial, path)
    _sidecar(path).write_text(json.dumps({"key": dict(key), "sha256": digest}, indent=2) + "\n")
    return path


def onnx_entry(card: ModelCard, cache_dir: Path) -> tuple[Path, dict[str, object]]:
    """Where a saved model's ONNX export is cached, and its key: weights, opset and exporter."""
    key = {
        "artefact": "onnx",
        "weights_sha256": card.weights_sha256,
        "opset": OPSET,
        "torch": torch.__version__,
    }
    return cache_dir / f"{card.name}.{key_digest(key)}.onnx", key


def shipped_onnx(card: ModelCard) -> Path | None:
    """The ONNX export shipped with the package for this very model, or None.

    It counts only when its metadata names these weights (``livedenoise.weights_sha256``, the card's
    hash) and it uses this opset: a user's model of the same name, or a graph from another exporter,
    is exported instead. Reading the 0.6 MB file takes milliseconds; exporting takes a minute.
    """
    path = SHIPPED_DIR / f"{card.name}.onnx"
    if not card.weights_sha256 or not path.is_file():
        return None
    import onnx  # only when a shipped graph is there to check
    from google.protobuf.message import DecodeError

    try:
        graph = onnx.load(str(path), load_external_data=False)
    except (OSError, DecodeError) as err:
        log.warning("ignoring the shipped %s: %s", path.name, err)
        return None
    meta = {prop.key: prop.value for prop in graph.metadata_props}
    opsets = {op.domain: op.version for op in graph.opset_import}
    if meta.get("livedenoise.weights_sha256") != card.weights_sha256 or opsets.get("") != OPSET:
        return None
    return path


def cached_onnx(model: CNNT, card: ModelCard, cache_dir: Path) -> Path:
    """The ONNX export of a saved model, exported once per weights, opset and torch version.

    A shipped model's first use copies the export shipped beside its weights (``shipped_onnx``)
    instead of exporting it.
    """
    path, key = onnx_entry(card, cache_dir)
    shipped = shipped_onnx(card)
    if shipped is not None:
        what = (
            f"copying the ONNX export shipped with {card.name} into the engine cache, {cache_dir}"
        )
        return cached(path, key, lambda out: shutil.copyfile(shipped, out), what)
    what = f"exporting {card.name} to ONNX, once (under a minute on a 2-core CPU)"
    return cached(
        path, key, lambda out: export_onnx(model, out, metadata=onnx_metadata(card)), what
    )
