"""The one place where training decides a model's intensity normalisation.

A model's card holds a fixed ``Normalization(offset, scale)`` applied identically to every frame by every
backend, so a live stream never flickers with its content. Training fits it once to the training data by
robust percentiles: the dark level maps to about 0 and the bright signal to about 1. The backbone is
trained over a range of normalised levels (``augment.jitter_intensity``) so it tolerates data that lands
somewhat off those marks.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from livedenoise.model import Normalization

DARK_PERCENTILE = 0.5
BRIGHT_PERCENTILE = 99.9
_MAX_SAMPLES = 1_000_000  # pixels pooled for the percentiles (a subsample is as good and fast)


def fit_normalization(images: Iterable[np.ndarray], seed: int = 0) -> Normalization:
    """Offset and scale mapping the pooled dark and bright percentiles of ``images`` to 0 and 1."""
    pooled = np.concatenate([np.asarray(im, dtype=np.float32).ravel() for im in images])
    if pooled.size > _MAX_SAMPLES:
        pooled = np.random.default_rng(seed).choice(pooled, _MAX_SAMPLES, replace=False)
    dark, bright = np.percentile(pooled, [DARK_PERCENTILE, BRIGHT_PERCENTILE])
    scale = float(bright - dark)
    if not scale > 0:
        raise ValueError("the training images are uniform: no intensity range to normalise")
    return Normalization(offset=float(dark), scale=scale)
