"""Fine-tuning data on disk: a folder with ``noisy/`` and ``clean/`` holding files of the same name.

Files are TIFF or NumPy ``.npy``: one image (H x W), or a time series or z-stack (N x H x W). A noisy
stack may be paired with a single clean image (repeats of a static field and their average). Every
problem is reported naming the file, because a user fixing a set of 10 pairs needs to know which one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

SUFFIXES = (".tif", ".tiff", ".npy")


class PairsError(ValueError):
    """A fine-tuning folder or one of its files cannot be used; the message names the file."""


@dataclass(frozen=True)
class ImagePair:
    """A noisy recording and its clean counterpart, both ``[N, H, W]`` float32 in the file's units."""

    name: str
    noisy: np.ndarray
    clean: np.ndarray


def read_frames(path: Path) -> np.ndarray:
    """One image file as ``[N, H, W]`` float32 (a single image has N = 1)."""
    try:
        if path.suffix.lower() == ".npy":
            data = np.load(path, allow_pickle=False)
        else:
            data = tifffile.imread(path)
    except Exception as err:  # any reader failure means the same thing to the user
        raise PairsError(f"{path}: cannot be read as an image ({err}).") from None
    data = np.asarray(data)
    if not (np.issubdtype(data.dtype, np.integer) or np.issubdtype(data.dtype, np.floating)):
        raise PairsError(f"{path}: holds {data.dtype} values, not image intensities.")
    while data.ndim > 3 and data.shape[0] == 1:
        data = data[0]
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3 or min(data.shape[1:]) < 8:
        raise PairsError(
            f"{path}: shape {data.shape} is not an image (H x W) or a stack of images (N x H x W) "
            "of at least 8 x 8 pixels."
        )
    if not np.isfinite(data).all():
        raise PairsError(f"{path}: contains NaN or infinite values.")
    return data.astype(np.float32)


def image_files(folder: Path) -> dict[str, Path]:
    """The image files of a folder by name; anything else that is not hidden is refused."""
    if not folder.is_dir():
        raise PairsError(f"{folder}: folder not found.")
    files = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        if path.suffix.lower() not in SUFFIXES:
            raise PairsError(
                f"{path}: unsupported file type {path.suffix or '(none)'}; use TIFF or .npy."
            )
        files[path.name] = path
    if not files:
        raise PairsError(f"{folder}: no image files (TIFF or .npy) in it.")
    return files


def load_pairs(folder: str | Path) -> list[ImagePair]:
    """Every pair of ``folder/noisy/NAME`` and ``folder/clean/NAME``, checked and sorted by name."""
    folder = Path(folder)
    noisy_dir, clean_dir = folder / "noisy", folder / "clean"
    for sub in (noisy_dir, clean_dir):
        if not sub.is_dir():
            raise PairsError(
                f"{sub}: folder not found. A fine-tuning set is a folder with noisy/ and clean/ "
                "holding files of the same name."
            )
    noisy, clean = image_files(noisy_dir), image_files(clean_dir)
    for name in sorted(noisy.keys() ^ clean.keys()):
        have, lack = (noisy_dir, clean_dir) if name in noisy else (clean_dir, noisy_dir)
        raise PairsError(f"{have / name} has no partner: {lack / name} is missing.")
    pairs = []
    for name in sorted(noisy):
        x, y = read_frames(noisy[name]), read_frames(clean[name])
        if y.shape[0] == 1 and x.shape[0] > 1:
            y = np.broadcast_to(y, x.shape)  # repeats of a static field against their average
        if x.shape != y.shape:
            raise PairsError(
                f"{name}: noisy is {_shape(x)} but clean is {_shape(y)}; a pair must have the "
                "same shape (or one clean image for a noisy stack)."
            )
        pairs.append(ImagePair(name, x, y))
    return pairs


def usable_pairs(
    pairs: Sequence[ImagePair], say: Callable[[str], None] | None = None
) -> list[ImagePair]:
    """``pairs`` without the blank ones, whose noisy or clean image holds one value throughout (a
    closed shutter, an empty field): nothing to learn from, and a flat reference scores an infinite
    PSNR. ``say`` is given one line naming those skipped; PairsError when none is left."""
    blank = [p.name for p in pairs if np.ptp(p.noisy) == 0 or np.ptp(p.clean) == 0]
    if blank and len(blank) == len(pairs):
        raise PairsError(
            f"every pair is blank (one value throughout): {', '.join(blank)}; nothing to learn from."
        )
    if blank and say is not None:
        say(
            f"skipped {len(blank)} blank pair(s), one value throughout with nothing to learn from: "
            f"{', '.join(blank)}"
        )
    return [p for p in pairs if p.name not in blank]


def load_noisy(folder: str | Path) -> dict[str, np.ndarray]:
    """Noisy-only recordings for self-supervised fine-tuning: ``folder`` or its ``noisy/``."""
    folder = Path(folder)
    if (folder / "noisy").is_dir():
        folder = folder / "noisy"
    return {name: read_frames(path) for name, path in image_files(folder).items()}


def _shape(frames: np.ndarray) -> str:
    n, h, w = frames.shape
    return f"{h}x{w}" if n == 1 else f"{n}x{h}x{w}"
