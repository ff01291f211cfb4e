"""The one place where training decides a model's intensity normalisation.

Every model training writes normalises each window by its own percentiles (``TRAINED_NORMALIZATION``,
see ``Normalization``): taken of the noisy input, as inference will take them, and applied to input and
target alike, so a model learns in units that do not depend on the detector. ``fit_normalization`` maps a
clean image's dark and bright levels to 0 and 1, for making synthetic data and judging signal.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from livedenoise.model import Normalization

TRAINED_NORMALIZATION = Normalization(method="percentile")
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
