"""Fresh noise at the noise law of the user's own pairs: many noisy inputs from each of a few clean images.

Five to ten pairs hold one noise realisation each, which a model memorises within minutes. The pairs
also show how this detector's variance grows with the signal (Poisson-Gaussian: variance = gain x
(mean - offset)), so new realisations can be drawn on their clean images, at this detector's own law
rather than the broad range the backbone was pretrained on. Fine-tuning mixes them with the recorded
pairs, whose noise is the real thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from livedenoise.model import Normalization
from livedenoise.training.augment import random_crop
from livedenoise.training.batches import pixel_weights
from livedenoise.training.pairs import ImagePair

_BINS = 16  # intensity bins of the variance-vs-mean fit
_MIN_PIXELS = 200  # in a bin, for its variance to count


@dataclass(frozen=True)
class NoiseLaw:
    """Variance = ``gain`` x (mean - ``offset``), in the recording's units; values clip at ``full_scale``."""

    gain: float
    offset: float
    full_scale: float

    @classmethod
    def fit(cls, pair: ImagePair) -> NoiseLaw:
        """The law of ``pair``'s noise: a line through the residual variance of intensity bins."""
        clean = pair.clean.astype(np.float64).ravel()
        residual = pair.noisy.astype(np.float64).ravel() - clean
        edges = np.unique(np.percentile(clean, np.linspace(0, 99.5, _BINS + 1)))
        which = np.digitize(clean, edges[1:-1])
        means, variances = [], []
        for b in range(len(edges) - 1):
            inside = which == b
            if inside.sum() >= _MIN_PIXELS:
                means.append(clean[inside].mean())
                variances.append(residual[inside].var())
        if len(means) < 3:
            raise ValueError(f"{pair.name}: too few distinct intensities to fit a noise law")
        slope, intercept = np.polyfit(means, variances, 1)
        if slope <= 0:
            raise ValueError(
                f"{pair.name}: the noise does not grow with the signal (slope {slope:.3g}), so it "
                "has no Poisson-Gaussian law to draw fresh noise from"
            )
        full_scale = float(max(pair.noisy.max(), pair.clean.max()))
        return cls(gain=float(slope), offset=float(-intercept / slope), full_scale=full_scale)

    def sample(
        self, clean: np.ndarray, rng: np.random.Generator, gain_factor: float = 1.0
    ) -> np.ndarray:
        """A noisy recording of ``clean`` at this law (gain scaled by ``gain_factor``), quantised."""
        gain = self.gain * gain_factor
        photons = rng.poisson(np.clip(clean - self.offset, 0, None) / gain)
        return np.clip(np.rint(photons * gain + self.offset), 0, self.full_scale)


class ResampledSource:
    """T-windows of fresh noise on crops of the pairs' clean frames, at each pair's fitted law.

    The gain is scaled by a log-uniform factor in ``gain_range`` so the model also sees the same
    structures somewhat noisier and cleaner than recorded.
    """

    def __init__(
        self,
        items: Sequence[tuple[np.ndarray, NoiseLaw, Normalization]],
        gain_range: tuple[float, float] = (0.5, 2.0),
    ) -> None:
        self.items = list(items)
        self.gain_range = gain_range
        self.weights = pixel_weights([c for c, _, _ in self.items])

    @classmethod
    def of(cls, pairs: Sequence[ImagePair], norm: Normalization) -> ResampledSource | None:
        """A source over the pairs whose law fits (``None`` if none does: train on them as recorded).

        Each pair's windows are normalised by ``norm`` as taken of its recorded noisy frames.
        """
        items = []
        for p in pairs:
            try:
                law = NoiseLaw.fit(p)
            except ValueError:
                continue
            items.append((p.clean.astype(np.float32), law, norm.fitted(p.noisy)))
        return cls(items) if items else None

    @property
    def max_frames(self) -> int:
        return 16  # any number of fresh realisations of a static image

    @property
    def max_patch(self) -> int:
        return min(min(c.shape[1:]) for c, _, _ in self.items)

    def draw(
        self, size: int, frames: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        clean, law, norm = self.items[rng.choice(len(self.items), p=self.weights)]
        (patch,) = random_crop([clean[rng.integers(clean.shape[0])]], size, rng)
        factor = float(np.exp(rng.uniform(*np.log(self.gain_range))))
        noisy = np.stack([law.sample(patch, rng, factor) for _ in range(frames)])
        target = np.broadcast_to(patch, noisy.shape)
        return norm.forward(noisy), norm.forward(target)
