"""Fine-tuning data on disk: a folder with ``noisy/`` and ``clean/`` holding files of the same name.

Files are in any format ``livedenoise.imageio`` reads (TIFF, NumPy ``.npy``, OME-Zarr, ...): one
image (H x W), or a time series or z-stack (N x H x W), of one channel. A noisy stack may be paired
with a single clean image (repeats of a static field and their average). Every problem is reported
naming the file, because a user fixing a set of 10 pairs needs to know which one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from livedenoise.errors import LivedenoiseError
from livedenoise.events import Events
from livedenoise.imageio import ImageFileError, as_frames, format_of, known_formats, read_image


class PairsError(LivedenoiseError, ValueError):
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
        frames = as_frames(read_image(path))  # [N, C, H, W]
    except ImageFileError as err:
        reason = err.message.removeprefix(f"{path}: ").rstrip(".")
        raise PairsError(f"{path}: cannot be read as an image ({reason}).", path=path) from None
    if frames.shape[1] != 1:
        raise PairsError(
            f"{path}: holds {frames.shape[1]} channels; a pair's files hold one.", path=path
        )
    data = frames[:, 0]
    if min(data.shape[1:]) < 8:
        raise PairsError(
            f"{path}: shape {data.shape} is not an image (H x W) or a stack of images (N x H x W) "
            "of at least 8 x 8 pixels.",
            path=path,
        )
    if not np.isfinite(data).all():
        raise PairsError(f"{path}: contains NaN or infinite values.", path=path)
    return data.astype(np.float32)


def image_files(folder: Path) -> dict[str, Path]:
    """The image files of a folder by name (an OME-Zarr folder is one); any other file that is not
    hidden is refused, a folder of no image format skipped."""
    if not folder.is_dir():
        raise PairsError(f"{folder}: folder not found.", path=folder)
    files = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        try:
            format_of(path)
        except ImageFileError:
            if path.is_dir():
                continue
            raise PairsError(
                f"{path}: unsupported file type {path.suffix or '(none)'}; use {known_formats()}.",
                path=path,
            ) from None
        files[path.name] = path
    if not files:
        raise PairsError(f"{folder}: no image files ({known_formats()}) in it.", path=folder)
    return files


def load_pairs(folder: str | Path) -> list[ImagePair]:
    """Every pair of ``folder/noisy/NAME`` and ``folder/clean/NAME``, checked and sorted by name."""
    folder = Path(folder)
    noisy_dir, clean_dir = folder / "noisy", folder / "clean"
    for sub in (noisy_dir, clean_dir):
        if not sub.is_dir():
            raise PairsError(
                f"{sub}: folder not found. A fine-tuning set is a folder with noisy/ and clean/ "
                "holding files of the same name.",
                path=sub,
            )
    noisy, clean = image_files(noisy_dir), image_files(clean_dir)
    for name in sorted(noisy.keys() ^ clean.keys()):
        have, lack = (noisy_dir, clean_dir) if name in noisy else (clean_dir, noisy_dir)
        raise PairsError(
            f"{have / name} has no partner: {lack / name} is missing.", path=lack / name
        )
    pairs = []
    for name in sorted(noisy):
        x, y = read_frames(noisy[name]), read_frames(clean[name])
        if y.shape[0] == 1 and x.shape[0] > 1:
            y = np.broadcast_to(y, x.shape)  # repeats of a static field against their average
        if x.shape != y.shape:
            raise PairsError(
                f"{name}: noisy is {_shape(x)} but clean is {_shape(y)}; a pair must have the "
                "same shape (or one clean image for a noisy stack).",
                path=clean[name],
            )
        pairs.append(ImagePair(name, x, y))
    return pairs


def usable_pairs(pairs: Sequence[ImagePair], events: Events | None = None) -> list[ImagePair]:
    """``pairs`` without the blank ones, whose noisy or clean image holds one value throughout (a
    closed shutter, an empty field): nothing to learn from, and a flat reference scores an infinite
    PSNR. ``events`` gets a warning naming those skipped; PairsError when none is left."""
    blank = [p.name for p in pairs if np.ptp(p.noisy) == 0 or np.ptp(p.clean) == 0]
    if blank and len(blank) == len(pairs):
        raise PairsError(
            f"every pair is blank (one value throughout): {', '.join(blank)}; nothing to learn from."
        )
    if blank and events is not None:
        events.warning.emit(
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
