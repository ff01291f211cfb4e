"""The engine interface: what every backend shares (input checks, layout, normalisation, batching, tiling).

A backend only maps normalised float32 ``[B, T, C, H, W]`` to the same shape. Everything a user can get
wrong, and the card's intensity normalisation, lives here once, so every backend treats frames identically.

Layouts ``Engine.denoise`` takes (told apart by the number of axes and the model's channel count C):

==================  =======================================  ==========================
shape               meaning                                  models
==================  =======================================  ==========================
``[T, H, W]``       one window of T single-channel frames    C = 1
``[B, T, H, W]``    a batch of B such windows                C = 1
``[T, C, H, W]``    one window of C-channel frames           C > 1
``[B, T, C, H, W]`` a batch of windows                       any C
==================  =======================================  ==========================

A single frame is a window of one, ``frame[None]``. The result has the input's shape, is float32 and is in
the input's intensity units.
"""

from __future__ import annotations

import logging
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike
from pydantic import BaseModel, ConfigDict

from livedenoise.errors import LivedenoiseError
from livedenoise.inference.cache import cached_onnx
from livedenoise.inference.tiling import Tiling, frame_tiling, run_tiled
from livedenoise.inference.tta import VIEWS, self_ensemble
from livedenoise.model import CNNT, ModelCard
from livedenoise.model.cnnt import MIN_SIZE

log = logging.getLogger(__name__)

Shape5 = tuple[int, int, int, int, int]


class InputError(LivedenoiseError, ValueError):
    """A window the model cannot take; the message says what is wrong and what to do."""


class BackendError(LivedenoiseError, RuntimeError):
    """A backend that cannot run here (package missing, no GPU, failed build) or is not known;
    says what to do."""


@dataclass(frozen=True)
class Limits:
    """The largest call a backend takes at once; ``None`` means no limit of its own."""

    max_batch: int | None = None
    max_frames: int | None = None
    max_size: tuple[int, int] | None = None  # height, width in pixels


@dataclass
class EngineRequest:
    """What every backend may build from, whatever its own options: the saved model and the live shape.

    ``window`` and ``frame_size`` describe the acquisition (TensorRT plans its profile for them);
    ``memory_budget`` (bytes, None: the backend's default) bounds a call's activations, beyond
    which frames are tiled; ``onnx`` is an export of this model, made into the cache when needed.
    """

    net: CNNT
    card: ModelCard
    cache_dir: Path
    window: int = 8
    frame_size: tuple[int, int] = (512, 512)
    memory_budget: int | None = None
    onnx: Path | None = None

    def onnx_path(self) -> Path:
        """The model's ONNX export: the one given, else the cache's (exported on first use)."""
        if self.onnx is None:
            self.onnx = cached_onnx(self.net, self.card, self.cache_dir)
        return self.onnx


class BackendOptions(BaseModel, ABC):
    """A backend's own options, checked by name and type; its ``build`` makes the backend.

    Each backend subclasses this with its fields (ONNX Runtime's threads, TensorRT's precision);
    ``load_engine(model, name, **options)`` validates the options against the model of the backend
    ``name`` picks, so a misspelt option is refused instead of silently ignored.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    @abstractmethod
    def build(self, request: EngineRequest) -> Backend:
        """The backend with these options for ``request``; raises BackendError where it cannot run."""


class Backend(ABC):
    """Runs the network on normalised float32 ``[B, T, C, H, W]``; knows nothing of intensities.

    A backend built by name (``livedenoise.backends.REGISTRY``) names its ``Options`` model.
    ``preferred_because`` says why ``auto`` takes it, where it works, before timing the others
    (the GPU engines, in registry order); None: ``auto`` times it and takes the fastest.
    """

    name: str
    Options: ClassVar[type[BackendOptions]]
    preferred_because: ClassVar[str | None] = None

    def __init__(self) -> None:
        self._buffers: dict[Shape5, np.ndarray] = {}

    def input_buffer(self, shape: Shape5) -> np.ndarray:
        """A host buffer the engine writes normalised frames into, allocated once per shape."""
        if shape not in self._buffers:
            self._buffers[shape] = self._allocate(shape)
        return self._buffers[shape]

    def _allocate(self, shape: Shape5) -> np.ndarray:
        return np.empty(shape, dtype=np.float32)

    @abstractmethod
    def run(self, x: np.ndarray) -> np.ndarray:
        """The network's output for ``x`` (may be a buffer reused by the next call)."""

    def limits(self, frames: int) -> Limits:
        """What this backend takes at once for windows of ``frames`` frames."""
        return Limits()

    @abstractmethod
    def describe(self) -> str:
        """One line for logs and reports: device, precision, threads."""


def normalise_into(
    offset: np.ndarray, scale: np.ndarray, x: np.ndarray, out: np.ndarray
) -> np.ndarray:
    """``(x - offset) / scale`` written into a reused float32 buffer (see ``Normalization``)."""
    np.copyto(out, x, casting="unsafe")
    out -= offset
    out /= scale
    return out


def denormalise_into(
    offset: np.ndarray, scale: np.ndarray, y: np.ndarray, out: np.ndarray
) -> np.ndarray:
    """``y * scale + offset`` written into ``out``: the inverse of ``normalise_into``."""
    np.multiply(y, scale, out=out)
    out += offset
    return out


def nonfinite_frames(frames: np.ndarray) -> list[int]:
    """Indices along the first axis of ``frames`` holding NaN or infinity (none for integer input)."""
    if frames.dtype.kind != "f" or frames.size == 0:
        return []
    if np.isfinite(frames.min()) and np.isfinite(frames.max()):  # NaN and inf propagate, no mask
        return []
    finite = np.isfinite(frames.reshape(len(frames), -1)).all(axis=1)
    return [int(i) for i in np.flatnonzero(~finite)]


def frame_list(indices: list[int], shown: int = 10) -> str:
    """Frame numbers for a message: all of a few, else the first ``shown`` and how many in all."""
    if len(indices) <= shown:
        return str(indices)
    return f"[{', '.join(map(str, indices[:shown]))}, ...] ({len(indices)} frames)"


def check_finite(frames: np.ndarray, first: int = 0, of: str = "") -> None:
    """Raise InputError naming the frames (along the first axis, numbered from ``first``) that hold
    NaN or infinity; ``of`` says of what (" of the window")."""
    bad = nonfinite_frames(frames)
    if bad:
        raise InputError(
            f"frames {frame_list([first + i for i in bad])}{of} (counted from 0) contain NaN or "
            "infinite values; replace them (for example with np.nan_to_num) or drop those frames "
            "before denoising."
        )


def check_frame_size(height: int, width: int, of: str = "", hint: str = "") -> None:
    """Raise InputError for frames smaller than the model's minimum: padded up to it, they come out
    worse than they went in. The one rule for live runs, sequences and offline denoising; ``of``
    names whose frames (``"input.tif: "``), ``hint`` ends the message."""
    if min(height, width) < MIN_SIZE:
        raise InputError(
            f"{of}frames of {height}x{width} px are smaller than the model's minimum of "
            f"{MIN_SIZE}x{MIN_SIZE} px, where it would make them worse; denoise whole frames{hint}."
        )


def tiles_per_call(limits: Limits, tiling: Tiling, windows: int) -> int:
    """How many tiles of ``windows`` windows one call takes: the backend's batch limit, and its size
    limit as a budget of pixels (a call holds no more pixels than the largest frame it takes whole)."""
    count = sys.maxsize
    if limits.max_batch is not None:
        count = limits.max_batch // windows
    if limits.max_size is not None:
        count = min(count, limits.max_size[0] * limits.max_size[1] // (windows * tiling.tile**2))
    return max(1, count)


class Engine:
    """A saved CNNT model ready to denoise on one backend; construct it with ``load_engine``.

    ``tta``: each window is denoised in its 8 orientations and the results averaged (``tta.py``,
    the x8 self-ensemble of Lim et al., EDSR 2017): 8 backend runs per window, for offline work.
    """

    def __init__(
        self, backend: Backend, card: ModelCard, reason: str = "", *, tta: bool = False
    ) -> None:
        self.backend = backend
        self.card = card
        self.reason = reason or f"{backend.name} was asked for"
        self.channels = card.config.channels
        self.tta = tta

    @property
    def name(self) -> str:
        return self.backend.name

    def describe(self) -> str:
        ensemble = f", {VIEWS} orientations averaged (test-time augmentation)" if self.tta else ""
        return f"{self.backend.describe()} ({self.reason}){ensemble}"

    def warmup(self, frames: int, height: int, width: int) -> None:
        """Run one window of the live shape, so the first real frame pays no set-up (plans, graphs)."""
        self.denoise(np.zeros((1, frames, self.channels, height, width), dtype=np.float32))

    def tiling(self, frames: int, height: int, width: int) -> Tiling | None:
        """The tiling used for windows of this size, or None when the backend takes them whole."""
        max_size = self.backend.limits(frames).max_size
        if self.card.tile is not None:  # the size the model's per-tile statistics were trained at
            tile = self.card.tile
            h, w = max_size or (tile, tile)
            max_size = (min(h, tile), min(w, tile))
        if max_size is None or (height <= max_size[0] and width <= max_size[1]):
            return None
        return frame_tiling(self.card.config, min(max_size), height, width)

    def denoise(self, window: ArrayLike) -> np.ndarray:
        """Denoise a window (layouts in the module docstring); float32 in the input's intensity units.

        With ``tta``, the mean over the window's 8 orientations (H and W turned and mirrored, each
        result turned back; each view tiled by its own shape): 8 times the work.
        """
        raw = np.asarray(window)
        x = self._as_5d(raw)
        y = self_ensemble(self._denoise_5d, x) if self.tta else self._denoise_5d(x)
        return y.reshape(raw.shape)

    def _denoise_5d(self, x: np.ndarray) -> np.ndarray:
        """``[B, T, C, H, W]`` denoised: checked, normalised per window, tiled if too large."""
        b, t, _, h, w = x.shape
        limits = self.backend.limits(t)
        if limits.max_frames is not None and t > limits.max_frames:
            raise InputError(
                f"window has {t} frames but this {self.name} engine was built for at most "
                f"{limits.max_frames}; build it for a longer window (window={t}).",
                option="window",
                value=t,
            )
        check_frame_size(h, w)
        check_finite(x.swapaxes(0, 1), of=" of the window")  # before normalising spreads a NaN
        tiling = self.tiling(t, h, w)
        out = np.empty(x.shape, dtype=np.float32)
        step = limits.max_batch or b
        for start in range(0, b, step):
            chunk = x[start : start + step]
            # one map per window, taken before tiling, so every tile of a frame shares it
            offset, scale = self.card.normalization.window_affine(chunk)
            if tiling is None:
                buffer = self.backend.input_buffer(chunk.shape)
                y = self.backend.run(normalise_into(offset, scale, chunk, buffer))
            else:
                normalised = normalise_into(offset, scale, chunk, np.empty(chunk.shape, np.float32))
                per_call = tiles_per_call(limits, tiling, len(chunk))
                y = run_tiled(self._run, normalised, tiling, per_call)
            denormalise_into(offset, scale, y, out[start : start + step])
        return out

    def _run(self, x: np.ndarray) -> np.ndarray:
        """The network's output for normalised ``x``, passed through the backend's own buffer."""
        buffer = self.backend.input_buffer(x.shape)
        np.copyto(buffer, x)
        return self.backend.run(buffer)

    def _as_5d(self, x: np.ndarray) -> np.ndarray:
        """View ``x`` as ``[B, T, C, H, W]``, or say why it cannot be a window for this model."""
        if x.dtype.kind not in "uif":
            raise InputError(
                f"frames have dtype {x.dtype}; give integer or floating-point intensities."
            )
        c = self.channels
        layouts = "[T, H, W] or [B, T, H, W]" if c == 1 else "[T, C, H, W] or [B, T, C, H, W]"
        if x.ndim == 3 and c == 1:
            x = x[None, :, None]
        elif x.ndim == 4:
            x = x[:, :, None] if c == 1 else x[None]
        elif x.ndim != 5:
            hint = " A single frame is a window of one: frame[None]." if x.ndim == 2 else ""
            raise InputError(
                f"got an array of shape {x.shape}; this {c}-channel model takes {layouts}.{hint}"
            )
        if x.shape[2] != c:
            raise InputError(
                f"frames have {x.shape[2]} channels (shape {x.shape} as [B, T, C, H, W]) but the "
                f"model takes {c}; give {layouts} with C = {c}, or use a {x.shape[2]}-channel model."
            )
        if 0 in x.shape:
            raise InputError(f"window of shape {x.shape} is empty.")
        return x
