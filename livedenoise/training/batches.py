"""Training batches: ``[B, T, 1, P, P]`` patches drawn from one or more sources, augmented.

A source gives registered (input, target) T-windows in normalised units. Each batch comes from one source
with one patch size and one T, so batches of several sizes and window lengths can be mixed; the batch
size follows from a fixed budget of pixels, so every step costs about the same time.

Patch sizes centre on ``TILE``, the size whole frames are later processed in: instance norm makes a CNNT
depend on the size of what it sees (measured on the real confocal pairs: a model trained on 64-128 px
patches lost 0.4 dB at 128 px tiles against 96 px, 2 dB at 256 px and 4.6 dB on whole 512 px frames),
so training and inference must agree on it, as in the reference implementation, which tiles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from livedenoise.model import Normalization
from livedenoise.training.augment import jitter_intensity, random_crop, random_dihedral
from livedenoise.training.pairs import ImagePair

TILE = 128  # px: the tile size our models process frames in, and the centre of their patch sizes


@dataclass(frozen=True)
class Batch:
    """Model inputs, targets, and (self-supervised masking only) where the loss counts."""

    inputs: Tensor
    targets: Tensor
    mask: Tensor | None = None

    def to(self, device: torch.device) -> Batch:
        mask = None if self.mask is None else self.mask.to(device, non_blocking=True)
        return Batch(
            self.inputs.to(device, non_blocking=True),
            self.targets.to(device, non_blocking=True),
            mask,
        )


class Source(Protocol):
    """Anything that draws registered (input, target) windows of ``[T, size, size]``."""

    @property
    def max_frames(self) -> int: ...

    @property
    def max_patch(self) -> int: ...

    def draw(
        self, size: int, frames: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]: ...


def pixel_weights(images: Sequence[np.ndarray]) -> np.ndarray:
    """Draw probabilities proportional to pixel count, so every pixel is equally likely to be trained on."""
    sizes = np.array([im.size for im in images], dtype=np.float64)
    return sizes / sizes.sum()


class PairSource:
    """T-windows of consecutive frames of recorded pairs, each pair drawn by its pixel count.

    A window is normalised as inference will normalise it: ``norm`` taken of the whole noisy window (the
    full frames, not the patch), applied to input and target alike.
    """

    def __init__(self, pairs: Sequence[ImagePair], norm: Normalization) -> None:
        if not pairs:
            raise ValueError("no training pairs")
        self.pairs = [
            (np.asarray(p.noisy, np.float32), np.asarray(p.clean, np.float32)) for p in pairs
        ]
        self.norm = norm
        self.weights = pixel_weights([x for x, _ in self.pairs])
        self._maps: dict[tuple[int, int, int], Normalization] = {}

    @property
    def max_frames(self) -> int:
        return min(x.shape[0] for x, _ in self.pairs)

    @property
    def max_patch(self) -> int:
        return min(min(x.shape[1:]) for x, _ in self.pairs)

    def draw(
        self, size: int, frames: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        i = int(rng.choice(len(self.pairs), p=self.weights))
        x, y = self.pairs[i]
        start = int(rng.integers(x.shape[0] - frames + 1))
        window = slice(start, start + frames)
        key = (i, start, frames)
        if key not in self._maps:
            self._maps[key] = self.norm.fitted(x[window])
        cx, cy = random_crop([x[window], y[window]], size, rng)
        return self._maps[key].forward(cx), self._maps[key].forward(cy)


@dataclass(frozen=True)
class BatchPlan:
    """How batches are shaped and augmented."""

    patch_sizes: tuple[int, ...] = (96, TILE, 160)
    frames: tuple[int, ...] = (1,)  # T of a window, drawn per batch (up to what a source can give)
    pixels: int = 8 * 96 * 96  # B x T x P x P per batch
    gain: tuple[float, float] = (1.0, 1.0)  # intensity jitter, see augment.jitter_intensity
    shift: float = 0.0


class Batches:
    """Draws augmented batches from weighted sources: call with a generator, get a ``Batch``."""

    def __init__(self, sources: Sequence[tuple[Source, float]], plan: BatchPlan) -> None:
        self.sources = [s for s, _ in sources]
        weights = np.array([w for _, w in sources], dtype=np.float64)
        self.weights = weights / weights.sum()
        self.plan = plan

    def __call__(self, rng: np.random.Generator) -> Batch:
        source = self.sources[rng.choice(len(self.sources), p=self.weights)]
        size = min(int(rng.choice(self.plan.patch_sizes)), source.max_patch)
        allowed = [t for t in self.plan.frames if t <= source.max_frames] or [1]
        frames = int(rng.choice(allowed))
        count = max(1, round(self.plan.pixels / (frames * size * size)))
        inputs, targets = [], []
        for _ in range(count):
            x, y = random_dihedral(source.draw(size, frames, rng), rng)
            if self.plan.gain != (1.0, 1.0) or self.plan.shift:
                x, y = jitter_intensity([x, y], rng, self.plan.gain, self.plan.shift)
            inputs.append(x)
            targets.append(y)
        return Batch(_tensor(inputs), _tensor(targets))


def _tensor(arrays: list[np.ndarray]) -> Tensor:
    """Stack ``[T, H, W]`` arrays into a contiguous float32 ``[B, T, 1, H, W]`` tensor."""
    return torch.from_numpy(np.stack(arrays).astype(np.float32, copy=False))[:, :, None]
