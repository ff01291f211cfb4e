"""Whole-image denoising and quality for training reports (raw vs backbone vs fine-tuned).

A model in training is denoised exactly as it will be once saved: through a torch engine
(``inference.in_memory_engine``), frames tiled at ``TILE`` px, the size the models are trained around
(see ``batches``), in overlapping windows, every output kept (``inference.denoise_stack``).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from livedenoise.inference import denoise_stack, in_memory_engine
from livedenoise.metrics import Quality, quality
from livedenoise.model import CNNT, Normalization
from livedenoise.training.batches import TILE


def denoise(
    model: CNNT, norm: Normalization, frames: np.ndarray, window: int = 1, tile: int = TILE
) -> np.ndarray:
    """Denoise ``[N, H, W]`` frames, in overlapping ``window``-frame windows; input units, float32."""
    return denoise_stack(in_memory_engine(model, norm, tile), frames, window)


def mean_quality(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> Quality:
    """PSNR, SSIM and NRMSE (affine-fitted, see livedenoise.metrics) averaged over every frame."""
    scores = [quality(x, y) for image, ref in pairs for x, y in zip(image, ref, strict=True)]
    return Quality(*(float(np.mean(values)) for values in zip(*scores, strict=True)))
